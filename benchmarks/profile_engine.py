"""Where a step of tunegate's training engine spends its GPU time (torch.profiler), one shape per run.

    python benchmarks/profile_engine.py --shape 1b --micro-tokens 16384 --out $OUT/profile_1b.json

Same synthetic data and random-initialised Llama shapes as benchmarks/train_throughput.py. Times
`--steps` steps after the warm-up without the profiler (useful tokens/s), then profiles two more
and groups the kernels: matmuls, attention, Inductor's fused kernels, loss, optimizer, the rest.
`gpu_busy` is kernel time over wall time of the profiled steps: well under 1 means the GPU waits
for the CPU (Python, launches, host-device copies). Numbers only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import SHAPES, build_hf_model, make_examples

GROUPS = (  # first match wins; names are lower-cased kernel names
    ("flash attention (varlen)", ("flash_fwd", "flash_bwd")),
    ("flex attention", ("flex_attention", "triton_tem_fused")),
    ("matmul", ("gemm", "cutlass", "xmma", "nvjet", "cublas", "sm90_", "splitk")),
    ("loss (Liger)", ("liger", "cross_entropy", "_ce_")),
    ("optimizer / clipping", ("multi_tensor", "foreach", "adam", "norm_kernel")),
    ("Inductor fused", ("triton_",)),
    ("copies", ("memcpy", "memset", "copy_")),
)


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other aten"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--micro-tokens", type=int, default=None)
    ap.add_argument("--attention", choices=["auto", "varlen", "flex", "sdpa"], default="auto")
    ap.add_argument("--steps", type=int, default=8, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--no-profile", action="store_true", help="time only")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from tunegate.train.engine import EngineConfig, train_sft

    cuda = torch.cuda.is_available()
    warmup, profiled = 3, 0 if args.no_profile else 2
    median = 512 if args.seq >= 2048 else args.seq // 4
    examples = make_examples(
        4000 if cuda else 200, SHAPES[args.shape]["vocab_size"], median, args.seq, seed=0
    )
    model = build_hf_model(args.shape, "cuda" if cuda else "cpu", "sdpa")
    step_ends: list[float] = []
    prof = profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else []))
    total = warmup + args.steps + profiled

    def on_log(message: str) -> None:
        if not message.startswith("step ") or "validation" in message:
            print(message, flush=True)
            return
        step_ends.append(time.perf_counter())  # the log line read the loss: the step has finished
        done = len(step_ends)
        if profiled and done == warmup + args.steps:
            prof.start()
        if profiled and done == total:
            if cuda:
                torch.cuda.synchronize()
            prof.stop()

    cfg = EngineConfig(
        seq_len=args.seq,
        tokens_per_step=None,
        max_steps=total,
        timing_warmup_steps=warmup,
        learning_rate=1e-4,
        micro_batch_tokens=args.micro_tokens,
        attention=args.attention,
        log_every=1,
    )
    result = train_sft(model, None, examples, cfg, log=on_log)
    timed = step_ends[warmup + args.steps - 1] - step_ends[warmup - 1]
    useful = sum(len(examples[i]) for s in result.step_examples[warmup : warmup + args.steps] for i in s)
    report: dict = {
        "shape": args.shape,
        "seq": args.seq,
        "settings": {k: v for k, v in result.settings.items() if k != "peft_model"},
        "timed_steps": args.steps,
        "useful_tok_s": useful / timed,
        "step_ms": 1000 * timed / args.steps,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    if profiled:
        wall_us = 1e6 * (step_ends[total - 1] - step_ends[total - 1 - profiled])
        groups: dict[str, float] = {}
        kernels = []
        for e in prof.key_averages():
            us = float(getattr(e, "self_device_time_total", 0.0) or 0.0)
            if us <= 0 or e.device_type.name != ("CUDA" if cuda else "CPU"):
                continue
            groups[group_of(e.key)] = groups.get(group_of(e.key), 0.0) + us
            kernels.append((us, e.count, e.key[:120]))
        busy = sum(groups.values())
        report["gpu_busy"] = busy / wall_us
        report["groups_pct_of_kernel_time"] = {
            g: round(100 * us / busy, 1) for g, us in sorted(groups.items(), key=lambda kv: -kv[1])
        }
        report["top_kernels"] = [
            {"ms_per_step": round(us / 1000 / profiled, 2), "calls_per_step": c // profiled, "name": k}
            for us, c, k in sorted(kernels, reverse=True)[:25]
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "top_kernels"}, indent=1), flush=True)


if __name__ == "__main__":
    main()
