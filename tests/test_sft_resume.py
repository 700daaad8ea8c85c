"""Resume continues exactly: a run SIGKILLed at a random step and resumed ends where an uninterrupted run ends.

Real processes (tests/sft_resume_worker.py), a tiny random Llama, CPU float32, LoRA with dropout (so
the RNG state matters too). The kill step is drawn at random and printed on failure. Checked: the
adapter weights of the resumed run are within 1e-6 of the uninterrupted run's, and the examples
consumed per step (ids recorded inside the training loop) are the same, in the same order.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from sft_tiny import conversation, save_tiny_base, write_chat_jsonl
from tunegate.train.sft_checkpoints import committed_checkpoints

WORKER = Path(__file__).with_name("sft_resume_worker.py")
TOTAL_STEPS = 22  # 48 rows, 15% held out -> 41 train rows, batch 4 -> 11 steps/epoch, 2 epochs


def _prepare(folder: Path, base: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "base").symlink_to(base)
    write_chat_jsonl(folder / "train.jsonl", [conversation(i) for i in range(48)])
    return folder


def _env() -> dict[str, str]:
    # One thread: the same reduction order in every process, so float32 results can match bit for bit.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(folder: Path, *extra: str) -> None:
    done = subprocess.run(
        [sys.executable, str(WORKER), str(folder), *extra],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _steps_done(folder: Path) -> int:
    path = folder / "progress"
    lines = path.read_text().split() if path.exists() else []
    return int(lines[-1]) if lines else 0


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path: Path) -> None:
    base = save_tiny_base(tmp_path / "base", seed=1)
    kill_after = random.Random().randint(5, TOTAL_STEPS - 2)
    context = f"killed after step {kill_after}"

    straight = _prepare(tmp_path / "straight", base)
    _run(straight)

    broken = _prepare(tmp_path / "broken", base)
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(broken), "--step-delay-s", "0.3"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while _steps_done(broken) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"{context}: the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not (broken / "out").exists(), context
    checkpoints = committed_checkpoints(broken / "run" / "checkpoints")
    assert checkpoints, f"{context}: no complete checkpoint was committed"
    assert all(step <= kill_after + 1 for step, _ in checkpoints), context

    _run(broken, "--resume")
    resumed = json.loads((broken / "out" / "result.json").read_text())
    assert resumed["resumed_from"] == checkpoints[-1][0], context
    assert (
        resumed["steps"] == json.loads((straight / "out" / "result.json").read_text())["steps"] == TOTAL_STEPS
    )

    expected = load_file(str(straight / "out" / "adapter.safetensors"))
    actual = load_file(str(broken / "out" / "adapter.safetensors"))
    assert expected.keys() == actual.keys() and expected, context
    initial_b = [k for k in expected if "lora_B" in k]
    assert any(float(expected[k].abs().max()) > 0 for k in initial_b), (
        "LoRA B starts at zero: training must move it"
    )
    for key in expected:
        diff = float((expected[key] - actual[key]).abs().max())
        assert diff <= 1e-6, f"{context}: {key} differs by {diff}"

    consumed_straight = json.loads((straight / "out" / "consumed.json").read_text())
    consumed_resumed = json.loads((broken / "out" / "consumed.json").read_text())
    assert list(consumed_straight) == [str(s) for s in range(1, TOTAL_STEPS + 1)]
    assert consumed_resumed == consumed_straight, context
    assert len({i for ids in consumed_straight.values() for i in ids}) == 41  # every training row, each epoch
