"""FSDP2 over two processes (gloo, CPU) trains the same adapters as one process.

The test launches this file with torchrun; as a script it is the worker. Slow (two Python
processes with torch), so marked `slow`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def _config(replicate: bool):
    from tunegate.train.engine import EngineConfig

    # 4 rows per step over 2 ranks, 1 row per micro-batch: each rank accumulates 2 micro-batches.
    return EngineConfig(
        seq_len=64,
        tokens_per_step=256,
        micro_batch_rows=1,
        epochs=3,
        max_steps=6,
        learning_rate=1e-2,
        compile=False,
        attention="sdpa",
        log_every=100,
        fsdp_lora_replicate_base=replicate,
    )


def _train(replicate: bool) -> tuple[object, dict]:
    sys.path.insert(0, str(HERE))
    from test_engine_exact import random_examples, tiny_llama, with_lora
    from tunegate.train.engine import train_sft

    model = with_lora(tiny_llama())
    result = train_sft(model, None, random_examples(60, seed=11), _config(replicate), log=lambda _m: None)
    return model, result


def _worker() -> None:
    _model, result = _train(replicate=os.environ["REPLICATE"] == "1")
    if result.adapter_state is not None:  # rank 0
        state = {k: v.tolist() for k, v in result.adapter_state.items()}
        Path(os.environ["OUT_JSON"]).write_text(json.dumps({"state": state, "losses": result.losses}))


@pytest.mark.slow
@pytest.mark.parametrize("replicate", [False, True], ids=["sharded", "replicated-base"])
def test_two_process_fsdp2_matches_one_process(tmp_path: Path, replicate: bool) -> None:
    out = tmp_path / "rank0.json"
    env = {**os.environ, "REPLICATE": "1" if replicate else "0", "OUT_JSON": str(out), "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        __file__,
    ]
    # Own process group: on a timeout the workers go too, not just the launcher.
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise
    assert proc.returncode == 0, stderr[-3000:]
    got = json.loads(out.read_text())

    model, single = _train(replicate=False)
    assert got["losses"] == pytest.approx(single.losses, abs=1e-5)
    params = dict(model.named_parameters())
    assert len(got["state"]) == 2 * 7 * 2
    for key, value in got["state"].items():
        name = key.replace(".weight", ".default.weight")
        assert (torch.tensor(value) - params[name].detach()).abs().max() < 1e-5, key


if __name__ == "__main__":
    _worker()
