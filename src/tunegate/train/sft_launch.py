"""`tunegate train --gpus N`: the SFT training step in N processes started by accelerate's launcher.

The CLI's process checks what it can before any process starts (the devices, the data, the spec
against the engine), then calls `accelerate launch` through accelerate's own Python entry points
(`launch_command_parser` / `launch_command`, the code behind the `accelerate launch` command), which
starts N copies of this module through torch's elastic launcher and waits for them. Each copy is one
rank: it runs the whole training step (`sft_register.train_sft_version`) with tunegate's engine,
which joins the process group and shards the model with FSDP2 (`train/engine/distributed.py`);
rank 0 alone writes the artifact, registers the version and writes its reference into a file the
launching process reads back. If any rank fails, the launcher stops the others and raises, and
this turns into one TrainError naming the rank and its exit code.

`TUNEGATE_DISTRIBUTED_CPU=1` is for tests only: the same launch runs N CPU processes over gloo
(CUDA hidden from them), so the wiring is tested on machines without GPUs. It is not a way to
train faster on CPUs.

Nothing here spawns or coordinates processes by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from tunegate.errors import TrainError, TunegateError
from tunegate.spec.load import LoadedSpec
from tunegate.store import Store, VersionRecord

CPU_ENV = "TUNEGATE_DISTRIBUTED_CPU"
RANK_MODULE = "tunegate.train.sft_launch"


def check_devices(gpus: int) -> bool:
    """Raises unless `gpus` CUDA devices are visible; True when the test-only CPU mode is on."""
    if gpus < 1:
        raise TrainError(f"--gpus {gpus}: give at least 1")
    if os.environ.get(CPU_ENV) == "1":
        return True
    import torch

    found = torch.cuda.device_count()
    if found < gpus:
        raise TrainError(f"--gpus {gpus} needs {gpus} CUDA devices; this machine has {found}")
    return False


def launch_sft_training(
    loaded: LoadedSpec,
    store: Store,
    console: Console,
    gpus: int,
    report: Any = None,  # a ChatDataReport already made (tunegate run); None: check the data here
    resume: bool = False,
) -> VersionRecord:
    """Train on `gpus` processes (gpus >= 2) and return the version rank 0 registered."""
    from accelerate.commands.launch import launch_command, launch_command_parser
    from accelerate.utils import patch_environment
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from tunegate.models.causal_lm import resolve_causal_lm
    from tunegate.train.sft_engine import choose_engine, read_base_config
    from tunegate.train.sft_register import checked_report

    on_cpu = check_devices(gpus)
    # Refusals before any process starts (and the packaged base converted once, not once per rank).
    checked_report(loaded, store, report)
    base_path = resolve_causal_lm(loaded.spec.base_model, store.workspace.cache_dir, loaded.root)
    choose_engine(
        loaded.spec.sft, read_base_config(base_path), resume=resume, cuda=not on_cpu, processes=gpus
    )

    console.print(
        f"launching {gpus} processes with accelerate ({'CPU, gloo: test mode' if on_cpu else 'FSDP2'})"
    )
    with tempfile.TemporaryDirectory(prefix=".launch-", dir=store.workspace.root) as tmp:
        result_file = Path(tmp) / "version.json"
        args = launch_command_parser().parse_args(
            [
                "--multi_gpu",
                "--num_processes",
                str(gpus),
                "--num_machines",
                "1",
                "--mixed_precision",
                "no",  # the engine chooses its own precision (bf16 compute, fp32 adapters/reductions)
                "--dynamo_backend",
                "no",  # the engine compiles its decoder layer itself
                "--main_process_port",
                "0",  # a free port
                "--module",
                RANK_MODULE,
                str(loaded.path),
                "--workspace",
                str(store.workspace.root),
                "--result",
                str(result_file),
            ]
        )
        # NCCL's NVLink multicast misbehaves on shared hosts; the process group needs no multicast.
        env = (
            {"CUDA_VISIBLE_DEVICES": ""}
            if on_cpu
            else {"NCCL_NVLS_ENABLE": os.environ.get("NCCL_NVLS_ENABLE", "0")}
        )
        try:
            with patch_environment(**env):
                launch_command(args)
        except ChildFailedError as exc:
            failed = ", ".join(
                f"rank {rank} (exit code {f.exitcode})" for rank, f in sorted(exc.failures.items())
            )
            raise TrainError(
                f"--gpus {gpus}: training failed in {failed}; the failing rank's error is printed above"
            ) from None
        if not result_file.is_file():
            raise TrainError(f"--gpus {gpus}: every process finished, but rank 0 registered no version")
        ref = json.loads(result_file.read_text())["ref"]
    return store.meta.resolve(ref)


def _rank_main(argv: list[str]) -> int:
    """One rank of the launch: train, and on rank 0 register and write the version's reference."""
    from tunegate.spec import load_spec
    from tunegate.store import open_store
    from tunegate.train.sft_register import train_sft_version

    parser = argparse.ArgumentParser(prog=RANK_MODULE)
    parser.add_argument("spec")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    console = Console(quiet=rank != 0)
    try:
        version = train_sft_version(
            load_spec(args.spec),
            open_store(args.workspace),
            console,
            processes=int(os.environ.get("WORLD_SIZE", "1")),
        )
    except TunegateError as exc:
        Console(stderr=True).print(f"[red]error (rank {rank}):[/] {exc}", highlight=False)
        return 2
    if version is not None:
        Path(args.result).write_text(json.dumps({"ref": version.ref}))
    import torch.distributed

    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(_rank_main(sys.argv[1:]))
