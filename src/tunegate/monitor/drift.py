"""Drift of served inputs away from the training data, measured on encoder embeddings.

The score of a window of served texts is the squared maximum mean discrepancy (MMD², the unbiased
estimate, Gretton et al. 2012) between the window's embeddings and a reference sample of training
embeddings, with a Gaussian kernel whose bandwidth is the median pairwise distance in the reference.
MMD² is zero in expectation when both come from one distribution and grows with any difference
(topic mix, label mix, length, language), not only with a moved mean.

The alarm threshold is *calibrated*, not guessed: training rows that are not in the reference are
cut into many windows of the serving window's size (drawn with replacement, which makes the windows
vary at least as much as fresh traffic does), each is scored, and the threshold is the
(1 - false_alarm_rate) quantile of those scores. Unchanged traffic then alarms in about
false_alarm_rate of windows; shifted traffic alarms when its score clears what chance produces.

Pure functions on arrays: embedding the texts, windowing the request stream and acting on an alarm
live in `monitor.service`. Written by hand (30 lines of NumPy): the libraries that offer MMD
(alibi-detect, torch-two-sample) bring TensorFlow or unmaintained code for one formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from tunegate.errors import MonitorError

# The matrices are small (a window x the reference): one BLAS thread is fastest, and on a busy
# machine several threads per product thrash (measured 20x slower on 2 shared cores).
_ONE_BLAS_THREAD = {"limits": 1, "user_api": "blas"}


def median_bandwidth(reference: np.ndarray, max_points: int = 500, seed: int = 0) -> float:
    """The median pairwise Euclidean distance within the reference (the usual kernel width)."""
    rng = np.random.default_rng(seed)
    sample = reference[rng.permutation(len(reference))[:max_points]]
    d2 = _sq_dists(sample, sample)
    upper = d2[np.triu_indices(len(sample), k=1)]
    bandwidth = float(np.sqrt(np.median(upper)))
    if not bandwidth > 0:
        raise MonitorError("drift reference has no spread (all embeddings equal); cannot set a kernel width")
    return bandwidth


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def mmd2(
    window: np.ndarray, reference: np.ndarray, bandwidth: float, k_ref_mean: float | None = None
) -> float:
    """Unbiased MMD² with kernel exp(-d² / (2 bandwidth²)). `k_ref_mean` caches the reference's own term."""
    n, m = len(window), len(reference)
    if n < 2 or m < 2:
        raise MonitorError(f"MMD needs at least 2 points on each side (window {n}, reference {m})")
    gamma = 1.0 / (2.0 * bandwidth * bandwidth)
    k_xx = np.exp(-gamma * _sq_dists(window, window))
    k_xy = np.exp(-gamma * _sq_dists(window, reference))
    if k_ref_mean is None:
        k_ref_mean = reference_self_term(reference, bandwidth)
    xx = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    return float(xx + k_ref_mean - 2.0 * k_xy.mean())


def reference_self_term(reference: np.ndarray, bandwidth: float) -> float:
    m = len(reference)
    k_yy = np.exp(-_sq_dists(reference, reference) / (2.0 * bandwidth * bandwidth))
    return float((k_yy.sum() - np.trace(k_yy)) / (m * (m - 1)))


@dataclass(frozen=True)
class DriftDetector:
    """A reference sample, its kernel width, and the calibrated alarm threshold for one window size."""

    reference: np.ndarray
    bandwidth: float
    k_ref_mean: float
    threshold: float
    window_size: int
    false_alarm_rate: float
    calibration_windows: int

    def score(self, window: np.ndarray) -> float:
        with threadpool_limits(**_ONE_BLAS_THREAD):
            return mmd2(np.asarray(window, dtype=np.float64), self.reference, self.bandwidth, self.k_ref_mean)

    def alarms(self, window: np.ndarray) -> bool:
        return self.score(window) > self.threshold

    def describe(self) -> dict[str, float | int]:
        return {
            "threshold": self.threshold,
            "bandwidth": self.bandwidth,
            "window_size": self.window_size,
            "reference_size": len(self.reference),
            "false_alarm_rate": self.false_alarm_rate,
            "calibration_windows": self.calibration_windows,
        }


def calibrate(
    reference: np.ndarray,
    held_out: np.ndarray,
    *,
    window_size: int,
    false_alarm_rate: float = 0.002,
    windows: int = 2000,
    seed: int = 0,
) -> DriftDetector:
    """Threshold from `windows` windows of held-out training embeddings (drawn with replacement)."""
    reference = np.asarray(reference, dtype=np.float64)
    held_out = np.asarray(held_out, dtype=np.float64)
    if len(held_out) < 20:
        raise MonitorError(
            f"drift calibration needs at least 20 held-out training rows, got {len(held_out)}; "
            "lower monitor.drift_reference_size or add training data"
        )
    if not 0 < false_alarm_rate < 1:
        raise MonitorError(f"monitor.drift_false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
    with threadpool_limits(**_ONE_BLAS_THREAD):
        bandwidth = median_bandwidth(reference, seed=seed)
        k_ref = reference_self_term(reference, bandwidth)
        rng = np.random.default_rng(seed)
        scores = np.array(
            [
                mmd2(held_out[rng.integers(0, len(held_out), window_size)], reference, bandwidth, k_ref)
                for _ in range(windows)
            ]
        )
    threshold = float(np.quantile(scores, 1.0 - false_alarm_rate))
    return DriftDetector(reference, bandwidth, k_ref, threshold, window_size, false_alarm_rate, windows)


def split_reference(
    embeddings: np.ndarray, reference_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(reference, held out): a seeded random split of the training embeddings."""
    if len(embeddings) < reference_size + 20:
        reference_size = max(2, len(embeddings) // 2)  # small data: half to each side
    order = np.random.default_rng(seed).permutation(len(embeddings))
    return embeddings[order[:reference_size]], embeddings[order[reference_size:]]
