"""Dashboard charts drawn by matplotlib on the server, as base64 PNG for `<img src="data:...">`.

The gate report's own figures (confusion matrix, calibration, latency histogram) come from
`tunegate.gate.plots` unchanged; this module adds the two the gate has no use for: the training loss
curve and the monitoring panels. Object API (`Figure` + Agg), never pyplot: no global state, so it
is safe from the server's threads. Each function returns None when there is nothing to draw.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_COLOURS = {"production": "tab:blue", "canary": "tab:orange"}


def _png(figure: Figure) -> str:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def loss_curve_png(losses: list[float]) -> str | None:
    if not losses:
        return None
    figure = Figure(figsize=(6, 3.2))
    ax = figure.subplots()
    ax.plot(range(1, len(losses) + 1), losses, color="tab:blue", linewidth=1.2)
    ax.set_xlabel("logged step")
    ax.set_ylabel("training loss")
    ax.set_title(f"Training loss ({len(losses)} steps)")
    ax.grid(alpha=0.3)
    return _png(figure)


def monitoring_png(versions: list[dict[str, Any]], now_s: float | None = None) -> str | None:
    """Four panels (latency percentiles, error rate, drift score, negative feedback), one line per version.

    `now_s`: the monitor's clock when it wrote the state (windows are placed in minutes before it).
    """
    if not any(v.get("windows") or v.get("drift", {}).get("scores") for v in versions):
        return None
    now_s = time.time() if now_s is None else now_s
    figure = Figure(figsize=(10, 6.5))
    (lat, err), (drift, feedback) = figure.subplots(2, 2)
    for v in versions:
        colour = _COLOURS.get(v["role"])
        label = f"{v['ref']} ({v['role']})"
        windows = v.get("windows") or []
        minutes_ago = [(w["end_s"] - now_s) / 60 for w in windows]
        for key, style in (("p50_latency_ms", ":"), ("p95_latency_ms", "-"), ("p99_latency_ms", "--")):
            points = [
                (x, w[key]) for x, w in zip(minutes_ago, windows, strict=True) if w.get(key) is not None
            ]
            if points:
                lat.plot(
                    *zip(*points, strict=True), style, color=colour, marker=".", label=f"{label} {key[:3]}"
                )
        err.plot(minutes_ago, [w["error_rate"] for w in windows], color=colour, marker=".", label=label)
        fb = [(x, w["negative_feedback_rate"]) for x, w in zip(minutes_ago, windows, strict=True)]
        fb = [(x, y) for x, y in fb if y is not None]
        if fb:
            feedback.plot(*zip(*fb, strict=True), color=colour, marker=".", label=label)
        scores = (v.get("drift") or {}).get("scores") or []
        if scores:
            drift.plot(range(1, len(scores) + 1), scores, color=colour, marker=".", label=label)
            threshold = v["drift"].get("threshold")
            if isinstance(threshold, float):
                drift.axhline(threshold, color=colour, linestyle="--", linewidth=0.8)
    for ax, title, xlabel in (
        (lat, "Latency p50 / p95 / p99 (ms)", "window end, minutes ago"),
        (err, "Error rate (5xx share)", "window end, minutes ago"),
        (drift, "Drift score (MMD²; dashed: threshold)", "drift window"),
        (feedback, "Negative feedback rate", "window end, minutes ago"),
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    figure.tight_layout()
    return _png(figure)
