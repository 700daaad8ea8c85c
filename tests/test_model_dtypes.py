"""Where bfloat16 is asked for on a CPU that would emulate it, the user is told, and nothing changes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tunegate.models import dtypes
from tunegate.pipeline import warn_emulated_bf16

ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n"


@pytest.fixture
def x86(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dtypes.platform, "machine", lambda: "x86_64")


@pytest.mark.parametrize(("cpuinfo", "native"), [(ZEN3, False), (ZEN4, True), (SAPPHIRE, True)])
def test_native_bf16_is_read_from_the_cpu_flags(x86, tmp_path: Path, cpuinfo: str, native: bool) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert dtypes.cpu_bf16_native(path) is native


def test_unknown_where_the_flags_cannot_be_read(x86, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dtypes.cpu_bf16_native(tmp_path / "missing") is None
    (tmp_path / "empty").write_text("processor\t: 0\n")
    assert dtypes.cpu_bf16_native(tmp_path / "empty") is None
    monkeypatch.setattr(dtypes.platform, "machine", lambda: "arm64")
    (tmp_path / "zen3").write_text(ZEN3)
    assert dtypes.cpu_bf16_native(tmp_path / "zen3") is None


@pytest.mark.parametrize(
    ("native", "value", "warned"),
    [
        (False, "bfloat16", True),
        (True, "bfloat16", False),
        (None, "bfloat16", False),
        (False, "float32", False),
    ],
)
def test_warning_only_for_bf16_on_a_cpu_known_to_emulate_it(
    monkeypatch: pytest.MonkeyPatch, native: bool | None, value: str, warned: bool
) -> None:
    monkeypatch.setattr(dtypes, "cpu_bf16_native", lambda: native)
    message = dtypes.slow_bf16_warning("sft.precision", value)
    assert (message is not None) is warned
    if warned:
        assert message.startswith("sft.precision: bfloat16") and "float32" in message


def test_pipeline_prints_one_warning_per_bf16_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dtypes, "cpu_bf16_native", lambda: False)
    out = io.StringIO()
    warn_emulated_bf16(
        Console(file=out, width=400),
        ("sft.precision", "bfloat16"),
        ("sft.inference_dtype", "float32"),
        ("train.inference_dtype", "bfloat16"),
    )
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["sft.precision", "train.inference_dtype"]
    assert all(line.startswith("warning:") for line in lines)
