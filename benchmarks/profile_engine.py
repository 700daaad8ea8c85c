"""Where a step of tunegate's training engine spends its GPU time (torch.profiler), one shape per run.

    python benchmarks/profile_engine.py --shape 1b --micro-tokens 16384 --out $OUT/profile_1b.json

Same synthetic data and random-initialised Llama shapes as benchmarks/train_throughput.py. Times
`--steps` steps after the warm-up without the profiler (useful tokens/s, the engine's own timing,
which never waits for the GPU between steps), then profiles `--profiled` more and groups the
kernels: matmuls, attention, Inductor's fused kernels, loss, optimizer, the rest.

Where the GPU waits: `gpu_busy` is the time some kernel or copy runs over the profiled GPU
timeline. Every idle gap is attributed from the trace: the engine phase (the `tunegate.*` labels
in engine/loop.py) and the CPU op that launched the kernel ending the gap, and the CUDA runtime
call that the CPU sat in during the gap (a synchronisation, a pinned-memory allocation...).
Numbers only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
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
    ap.add_argument("--profiled", type=int, default=2, help="profiled steps after the timed ones (0: none)")
    ap.add_argument("--trace", type=Path, default=None, help="also keep the Chrome trace here")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    from tunegate.train.engine import EngineConfig, train_sft

    cuda = torch.cuda.is_available()
    warmup, profiled = 3, args.profiled
    median = 512 if args.seq >= 2048 else args.seq // 4
    examples = make_examples(
        4000 if cuda else 200, SHAPES[args.shape]["vocab_size"], median, args.seq, seed=0
    )
    model = build_hf_model(args.shape, "cuda" if cuda else "cpu", "sdpa")
    # One profiler warm-up step, then the profiled ones; stepped without waiting for the GPU.
    prof = profile(
        activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else []),
        schedule=schedule(wait=warmup + args.steps - 1, warmup=1, active=profiled, repeat=1),
    )
    total = warmup + args.steps + profiled

    cfg = EngineConfig(
        seq_len=args.seq,
        tokens_per_step=None,
        max_steps=warmup + args.steps,
        timing_warmup_steps=warmup,
        learning_rate=1e-4,
        micro_batch_tokens=args.micro_tokens,
        attention=args.attention,
        log_every=10_000,
    )
    timed = train_sft(model, None, examples, cfg, log=print)
    report: dict = {
        "shape": args.shape,
        "seq": args.seq,
        "settings": {k: v for k, v in timed.settings.items() if k != "peft_model"},
        "timed_steps": args.steps,
        "useful_tok_s": timed.useful_tokens_per_s,
        "step_ms": 1000 * timed.timed_seconds / args.steps,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    if profiled:
        # The same model and adapter again (Inductor's cache makes the recompilation quick), profiled.
        cfg = dataclasses.replace(cfg, max_steps=total, timing_warmup_steps=1)
        peft_model = timed.settings["peft_model"]

        def step_profiler(step: int) -> None:
            if step == total and cuda:
                torch.cuda.synchronize()  # the last profiled step's kernels finish inside the window
            prof.step()

        with prof:
            train_sft(peft_model, None, examples, cfg, log=lambda _m: None, on_step_end=step_profiler)
        trace = args.trace or Path(tempfile.mkdtemp()) / "trace.json"
        prof.export_chrome_trace(str(trace))
        report.update(kernel_groups(prof, profiled, cuda))
        if cuda:
            report.update(gap_report(json.loads(trace.read_text()), profiled))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "top_kernels"}, indent=1), flush=True)


def kernel_groups(prof, profiled: int, cuda: bool) -> dict:
    groups: dict[str, float] = {}
    kernels = []
    for e in prof.key_averages():
        us = float(getattr(e, "self_device_time_total", 0.0) or 0.0)
        if us <= 0 or e.device_type.name != ("CUDA" if cuda else "CPU"):
            continue
        if e.key.startswith(("tunegate.", "ProfilerStep")):
            continue  # the labels' spans on the GPU timeline, not kernels
        groups[group_of(e.key)] = groups.get(group_of(e.key), 0.0) + us
        kernels.append((us, e.count, e.key[:120]))
    busy = sum(groups.values())
    return {
        "groups_pct_of_kernel_time": {
            g: round(100 * us / busy, 1) for g, us in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "top_kernels": [
            {"ms_per_step": round(us / 1000 / profiled, 2), "calls_per_step": c // profiled, "name": k}
            for us, c, k in sorted(kernels, reverse=True)[:25]
        ],
    }


GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")


def gap_report(trace: dict, profiled: int, min_gap_us: float = 20.0) -> dict:
    """GPU idle time in a Chrome trace, and what the CPU was doing while the GPU waited."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X" and "dur" in e]
    gpu = sorted((e for e in events if e.get("cat") in GPU_CATS), key=lambda e: e["ts"])
    if not gpu:
        return {}
    launches = {
        e["args"]["correlation"]: e
        for e in events
        if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})
    }
    cpu_ops = [e for e in events if e.get("cat") in ("cpu_op", "user_annotation")]
    runtime = [e for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver")]

    gaps = []
    busy_until = gpu[0]["ts"] + gpu[0]["dur"]
    busy = gpu[0]["dur"]
    for e in gpu[1:]:
        end = e["ts"] + e["dur"]
        if e["ts"] > busy_until:
            if e["ts"] - busy_until >= min_gap_us:
                gaps.append((busy_until, e["ts"], e))
            busy += e["dur"]
        elif end > busy_until:
            busy += end - busy_until
        busy_until = max(busy_until, end)
    span = busy_until - gpu[0]["ts"]

    causes: dict[tuple[str, str, str], list[float]] = {}
    for start, end, nxt in gaps:
        launch = launches.get(nxt.get("args", {}).get("correlation"))
        phase = op = "?"
        if launch is not None:
            around = [
                c
                for c in cpu_ops
                if c["tid"] == launch["tid"] and c["ts"] <= launch["ts"] <= c["ts"] + c["dur"]
            ]
            phases = [c["name"] for c in around if c["name"].startswith("tunegate.")]
            phase = min(phases, key=len) if phases else "outside the engine's phases"
            inner = [c for c in around if not c["name"].startswith("tunegate.")]
            op = min(inner, key=lambda c: c["dur"])["name"][:60] if inner else "?"
        waits = [
            (min(end, r["ts"] + r["dur"]) - max(start, r["ts"]), r["name"])
            for r in runtime
            if r["ts"] < end and r["ts"] + r["dur"] > start and "Launch" not in r["name"]
        ]
        wait = max(waits)[1] if waits and max(waits)[0] > 0.5 * (end - start) else "-"
        causes.setdefault((phase, op, wait), []).append(end - start)
    idle = span - busy
    top = sorted(causes.items(), key=lambda kv: -sum(kv[1]))[:15]
    return {
        "gpu_busy": busy / span,
        "idle_ms_per_step": idle / 1000 / profiled,
        "gaps_per_step": len(gaps) / profiled,
        "idle_by_cause": [
            {
                "ms_per_step": round(sum(v) / 1000 / profiled, 2),
                "gaps_per_step": round(len(v) / profiled, 1),
                "largest_ms": round(max(v) / 1000, 2),
                "phase": phase,
                "next_kernel_launched_by": op,
                "cpu_waiting_in": wait,
            }
            for (phase, op, wait), v in top
        ],
    }


if __name__ == "__main__":
    main()
