"""The number formats a stored model may be run in (classifier.json and sft.json alike)."""

from __future__ import annotations

from tunegate.errors import ModelError

INFERENCE_DTYPES = ("float32", "bfloat16")


def check_inference_dtype(dtype: str, where: str = "") -> str:
    """`dtype` if tunegate can run a model in it, else a ModelError naming it (and `where` it came from)."""
    if dtype not in INFERENCE_DTYPES:
        prefix = f"{where}: " if where else ""
        raise ModelError(f"{prefix}inference_dtype {dtype!r} is not one of {', '.join(INFERENCE_DTYPES)}")
    return dtype
