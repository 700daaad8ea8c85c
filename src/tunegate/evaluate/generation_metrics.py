"""Per-answer scores and their 95% bootstrap intervals, candidate and base side by side.

Every generation suite scores each test answer on its own (a number, or None when the suite does
not apply to that answer) and reports the mean with a percentile-bootstrap interval over the test
rows. Candidate and base are resampled on the same rows (`metrics.resample_indices` with one seed),
so the paired difference has its own interval, and `beats` says whether the candidate's interval
lies wholly above the base's (non-overlapping intervals: the stricter reading of "better").

Reference metrics come from libraries: chrF from sacrebleu (sentence level), ROUGE-L F1 from
rouge-score. Both are averaged over answers; corpus-level chrF would weight long answers more.

Pure functions; running models is `generation.py`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunegate.evaluate.metrics import CONFIDENCE_LEVEL, Interval, resample_indices


def _percentile_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None, None
    tail = (1.0 - CONFIDENCE_LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def mean_interval(scores: Sequence[float | None], samples: int, seed: int) -> Interval:
    """Mean of the scores that apply (None skipped) with a 95% bootstrap interval."""
    values = np.array([s for s in scores if s is not None], dtype=float)
    if values.size == 0:
        return Interval(None)
    if values.size == 1:
        return Interval(float(values[0]), float(values[0]), float(values[0]))
    means = np.concatenate([values[idx].mean(axis=1) for idx in resample_indices(values.size, samples, seed)])
    low, high = _percentile_interval(means)
    return Interval(float(values.mean()), low, high)


def compare(
    candidate: Sequence[float | None], base: Sequence[float | None], samples: int, seed: int
) -> dict[str, Any]:
    """Candidate, base and their paired difference, each as {value, low, high}; plus `beats`."""
    pairs = [(c, b) for c, b in zip(candidate, base, strict=True) if c is not None and b is not None]
    cand = mean_interval([c for c, _ in pairs], samples, seed)
    base_iv = mean_interval([b for _, b in pairs], samples, seed)
    diff = mean_interval([c - b for c, b in pairs], samples, seed)
    beats = None
    if cand.low is not None and base_iv.high is not None:
        beats = bool(cand.low > base_iv.high)
    return {
        "candidate": cand.to_dict(),
        "base": base_iv.to_dict(),
        "difference": diff.to_dict(),
        "beats": beats,
        "n": len(pairs),
    }


def chrf_scores(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """Sentence-level chrF (0-100) of each output against its reference."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    return [float(chrf.sentence_score(o, [r]).score) for o, r in zip(outputs, references, strict=True)]


def rouge_l_scores(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F1 (0-1) of each output against its reference, with stemming."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    return [float(scorer.score(r, o)["rougeL"].fmeasure) for o, r in zip(outputs, references, strict=True)]


def ratio_interval(
    candidate_nll: Sequence[float], base_nll: Sequence[float], tokens: Sequence[int], samples: int, seed: int
) -> dict[str, Any]:
    """Perplexity of each model over documents (token-weighted) and the relative increase, with intervals.

    increase = exp(candidate mean NLL - base mean NLL) - 1 = candidate perplexity / base perplexity - 1.
    """
    c, b, n = (np.asarray(x, dtype=float) for x in (candidate_nll, base_nll, tokens))
    if n.size == 0:
        return {"candidate": None, "base": None, "increase": Interval(None).to_dict(), "documents": 0}

    def ppl(nll: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.exp(nll[idx].sum(axis=-1) / n[idx].sum(axis=-1))

    everything = np.arange(n.size)
    cand_ppl, base_ppl = float(ppl(c, everything)), float(ppl(b, everything))
    increases = np.concatenate(
        [ppl(c, idx) / ppl(b, idx) - 1 for idx in resample_indices(n.size, samples, seed)]
    )
    low, high = _percentile_interval(increases)
    return {
        "candidate": cand_ppl,
        "base": base_ppl,
        "increase": Interval(cand_ppl / base_ppl - 1, low, high).to_dict(),
        "documents": int(n.size),
        "tokens": int(n.sum()),
    }
