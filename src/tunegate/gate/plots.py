"""The gate report's figures, as base64 PNG strings for inline `<img>` tags.

Built on matplotlib's object API (`Figure` + the Agg canvas), never pyplot: no global figure state, so
rendering is safe from a server thread. PNG metadata is stripped so the same results give the same bytes.

Each function takes the results dict's own sections and returns None when that evidence is missing;
the report then says "not measured" instead of drawing an empty chart.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _png_base64(figure: Figure) -> str:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def confusion_matrix_png(confusion: list[list[int]] | None, labels: list[str]) -> str | None:
    if not confusion or not labels:
        return None
    matrix = np.asarray(confusion, dtype=float)
    size = max(3.5, 0.55 * len(labels) + 2)
    figure = Figure(figsize=(size, size * 0.85))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test rows)")
    threshold = matrix.max() / 2 if matrix.size else 0
    # Counts written in the cells: colour alone is unreadable for small differences.
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if matrix[i, j] > threshold else "black",
            )
    return _png_base64(figure)


def calibration_curve_png(calibration: dict[str, Any] | None) -> str | None:
    bins = (calibration or {}).get("bins") or []
    filled = [b for b in bins if b.get("count")]
    if not filled:
        return None
    figure = Figure(figsize=(4.5, 4.2))
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    confidence = [b["mean_confidence"] for b in filled]
    accuracy = [b["accuracy"] for b in filled]
    ax.plot(confidence, accuracy, marker="o", color="tab:blue", label="model")
    width = bins[0]["high"] - bins[0]["low"]
    ax.bar(
        [b["low"] for b in filled],
        [b["count"] / sum(b["count"] for b in filled) for b in filled],
        width=width,
        align="edge",
        alpha=0.2,
        color="tab:blue",
        label="share of rows",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ece = calibration.get("ece") if calibration else None
    ax.set_title("Reliability diagram" + (f" (ECE {ece:.3f})" if isinstance(ece, float) else ""))
    ax.legend(loc="upper left", fontsize=8)
    return _png_base64(figure)


def latency_histogram_png(latency: dict[str, Any] | None) -> str | None:
    run = ((latency or {}).get("by_batch_size") or {}).get("1")
    if not run or not run.get("samples_ms"):
        return None
    figure = Figure(figsize=(5.5, 3.5))
    ax = figure.subplots()
    ax.hist(
        run["samples_ms"], bins=min(40, max(10, len(run["samples_ms"]) // 5)), color="tab:blue", alpha=0.7
    )
    ax.axvline(run["p50_ms"], color="tab:green", linestyle="--", label=f"p50 {run['p50_ms']:.3g} ms")
    ax.axvline(run["p95_ms"], color="tab:red", linestyle="--", label=f"p95 {run['p95_ms']:.3g} ms")
    ax.set_xlabel("latency per request, batch size 1 (ms)")
    ax.set_ylabel("requests")
    ax.set_title(f"Latency of {len(run['samples_ms'])} single requests")
    ax.legend(fontsize=8)
    return _png_base64(figure)
