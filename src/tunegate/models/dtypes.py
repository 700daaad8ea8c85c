"""The number formats a stored model may be run in (classifier.json and sft.json alike).

bfloat16 pays only where the CPU computes it natively (AVX512-BF16 or AMX); elsewhere PyTorch emulates
it and it is several times *slower* than float32. Measured 2026-12-02, MiniLM encoder, one thread,
16-text batches: 119 ms per text in bf16 vs 24.6 in float32 on an AMD EPYC Zen 3 (AVX2 only), while on
a Zen 4 (AVX512-BF16) bf16 was 7.7 vs 14.6. The stored format is part of what the gate judged, so
tunegate does not switch it per machine; it warns (`slow_bf16_warning`) where a run asks for bf16 on
a CPU without it.
"""

from __future__ import annotations

import platform
from pathlib import Path

from tunegate.errors import ModelError

INFERENCE_DTYPES = ("float32", "bfloat16")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def check_inference_dtype(dtype: str, where: str = "") -> str:
    """`dtype` if tunegate can run a model in it, else a ModelError naming it (and `where` it came from)."""
    if dtype not in INFERENCE_DTYPES:
        prefix = f"{where}: " if where else ""
        raise ModelError(f"{prefix}inference_dtype {dtype!r} is not one of {', '.join(INFERENCE_DTYPES)}")
    return dtype


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def cpu_bf16_native(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this x86 CPU has bf16 matmul instructions; None where that cannot be told."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        flags = cpu_flags(cpuinfo_path.read_text())
    except OSError:
        return None
    return bool(flags & NATIVE_BF16_FLAGS) if flags else None


def slow_bf16_warning(setting: str, value: str) -> str | None:
    """A warning for `setting: value` when it asks for bfloat16 on a CPU known to emulate it."""
    if value != "bfloat16" or cpu_bf16_native() is not False:
        return None
    return (
        f"{setting}: bfloat16, but this CPU has no AVX512-BF16 or AMX, so bf16 is emulated: measured "
        "3-5x slower than float32 on such a CPU. Use float32 on this machine, or run on one with "
        "native bf16 (the stored format is what the gate judges, so tunegate does not change it for you)."
    )
