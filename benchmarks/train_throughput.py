"""GPU training throughput: HF + PEFT default vs the strongest plain HF + PEFT + Liger vs tunegate.

One GPU, one command (1B and 8B Llama shapes at sequence 2048, the 8B shape at 8192):
    python benchmarks/train_throughput.py --out-dir $OUT
Several GPUs (FSDP2 through accelerate; LoRA on 1, 2 and 4 GPUs, full fine-tuning on 2 and 4):
    python benchmarks/train_throughput.py --multi-gpu 2,4 --out-dir $OUT
Every path on the CPU with a tiny model (a smoke test of this script, no numbers worth reading):
    python benchmarks/train_throughput.py --tiny
Rewrite the "GPU training throughput" section of benchmarks/RESULTS.md from saved results:
    python benchmarks/train_throughput.py --render results_single.json results_multi.json

Configurations, all on the same synthetic data (random token ids; lognormal lengths, median 512
tokens, capped at 2048; the first 20-60% of each example is prompt, the rest is trained on), LoRA
r=16, alpha=32 on every linear layer of a randomly initialised model, bf16:
  (a) HF + PEFT as a Trainer runs it by default: batches of 8 examples padded to the longest,
      gradient checkpointing, SDPA attention, bf16 autocast.
  (b) the strongest plain setup: the same rows packed as (c) packs them (position ids restart per
      example; transformers then masks attention per document), Liger's RMSNorm, SwiGLU, RoPE and
      fused linear cross-entropy, no checkpointing; attention (SDPA, FlexAttention) and
      micro-batch are swept and the fastest is reported.
  (c) tunegate's engine (`tunegate.train.engine.train_sft`) with its own planner's choices.
Each configuration runs in its own process (Liger patches transformers' classes; memory peaks stay
separate). Throughput counts useful (non-padding) tokens; MFU is useful model FLOPs
(tunegate/train/engine/flops.py) over time over the bf16 matmul rate this script measures.

Longer than the house limit because it holds three training paths and their launcher side by side;
splitting them would make the comparison harder to audit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LLAMA_3_2_1B = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    rope_theta=500000.0,
    rope_scaling={
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
)
LLAMA_3_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    rope_theta=500000.0,
)
TINY = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
SHAPES = {"1b": LLAMA_3_2_1B, "8b": LLAMA_3_8B, "tiny": TINY}
LORA_RANK, LORA_ALPHA = 16, 32.0
GIB = 1024**3


# --- data ---------------------------------------------------------------------------------------


def make_examples(n: int, vocab: int, median: int, cap: int, seed: int = 0) -> list:
    from tunegate.train.engine import TokenExample

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = max(16, min(cap, int(rng.lognormvariate(math.log(median), 0.8))))
        prompt = int(length * rng.uniform(0.2, 0.6))
        ids = tuple(rng.randrange(vocab) for _ in range(length))
        out.append(TokenExample(ids, (False,) * prompt + (True,) * (length - prompt)))
    return out


def packed_rows(examples: list, seq: int) -> list[list[int]]:
    from tunegate.train.engine import plan_steps

    # One row per "step": the same shuffled, packed row order the engine uses with seed 0.
    return [s[0] for s in plan_steps([len(e) for e in examples], seq, rows_per_step=1, seed=0)]


def hf_labels(ex) -> list[int]:
    # transformers shifts labels inside the loss; the first token of a document is never a target.
    return [
        -100 if (i == 0 or not lab) else t
        for i, (t, lab) in enumerate(zip(ex.input_ids, ex.labelled, strict=True))
    ]


# --- measurement helpers ------------------------------------------------------------------------


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_bf16_tflops() -> float:
    import torch

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * n**3 / statistics.median(times) / 1e12


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "peft", "liger-kernel", "accelerate", "triton"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "-"
    return out


def model_config(shape: str):
    from transformers import LlamaConfig

    return LlamaConfig(**SHAPES[shape])


def build_hf_model(shape: str, device: str, attn: str):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    config = model_config(shape)
    config._attn_implementation = attn
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(prev)
    lora = LoraConfig(
        r=LORA_RANK,
        lora_alpha=LORA_ALPHA,
        target_modules="all-linear",
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora).train()


def doc_stats(examples: list, groups: list[list[int]]) -> tuple[int, int, list[int]]:
    docs = [len(examples[i]) for g in groups for i in g]
    labelled = sum(sum(examples[i].labelled[1:]) for g in groups for i in g)
    return sum(docs), labelled, docs


def run_hf_steps(
    model, batches: list[dict], groups: list[list[int]], examples: list, warmup: int, device: str
) -> dict:
    """Optimizer step per batch; times the batches after `warmup`. HF Trainer's bf16 = autocast."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")
    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**{k: v.to(device, non_blocking=True) for k, v in batch.items()}).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    seconds = time.perf_counter() - t0
    useful, labelled, docs = doc_stats(examples, groups[warmup:])
    del opt
    return {
        "seconds": seconds,
        "useful_tokens": useful,
        "labelled_tokens": labelled,
        "docs": docs,
        "last_loss": float(loss.detach()),
    }


def flops_of(shape: str, docs: list[int], labelled: int, lora: bool) -> float:
    from tunegate.train.engine import ModelShape, step_flops

    return step_flops(
        ModelShape.from_config(model_config(shape)), docs, labelled, LORA_RANK if lora else None
    )


# --- the configurations -------------------------------------------------------------------------


def cell_a(spec: dict, examples: list, device: str) -> dict:
    import torch

    model = build_hf_model(spec["shape"], device, "sdpa")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    per_batch, steps = 8, spec["warmup"] + spec["steps"]
    groups = [list(range(s * per_batch, (s + 1) * per_batch)) for s in range(steps)]
    batches = []
    for g in groups:
        width = max(len(examples[i]) for i in g)
        ids = torch.zeros((len(g), width), dtype=torch.long)
        attn = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for b, i in enumerate(g):
            n = len(examples[i])
            ids[b, :n] = torch.tensor(examples[i].input_ids)
            attn[b, :n] = 1
            labels[b, :n] = torch.tensor(hf_labels(examples[i]))
        batches.append({"input_ids": ids, "attention_mask": attn, "labels": labels})
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    res = run_hf_steps(model, batches, groups, examples, spec["warmup"], device)
    res["settings"] = f"padded batches of {per_batch}, checkpointing, sdpa"
    return res


def hf_packed_batches(
    examples: list, rows: list[list[int]], seq: int, mb: int, steps: int
) -> tuple[list, list]:
    import torch

    from tunegate.train.engine import build_batch

    batches, groups = [], []
    for s in range(steps):
        chunk = [rows[(s * mb + j) % len(rows)] for j in range(mb)]
        pb = build_batch(examples, chunk, seq, pad_id=0)
        labels = torch.full_like(pb.input_ids, -100)
        for r, row in enumerate(chunk):
            start = 0
            for i in row:
                n = len(examples[i])
                labels[r, start : start + n] = torch.tensor(hf_labels(examples[i]))
                start += n
        batches.append({"input_ids": pb.input_ids, "position_ids": pb.position_ids, "labels": labels})
        groups.append([i for row in chunk for i in row])
    return batches, groups


def cell_b(spec: dict, examples: list, device: str) -> dict:
    import torch

    liger = "Liger"
    if device == "cuda":
        try:
            from liger_kernel.transformers import apply_liger_kernel_to_llama

            apply_liger_kernel_to_llama(
                rope=True, rms_norm=True, swiglu=True, fused_linear_cross_entropy=True
            )
        except Exception as e:  # report (b) without Liger rather than not at all
            liger = f"no Liger ({type(e).__name__}: {str(e)[:100]})"
            print(f"  (b) Liger failed: {e!r}", flush=True)
    else:
        liger = "no Liger (CPU)"
    seq = spec["seq"]
    rows = packed_rows(examples, seq)
    model = build_hf_model(spec["shape"], device, "sdpa")

    def time_b(steps: int, mb: int) -> dict:
        """`steps` timed optimizer steps of micro-batch `mb` after the warm-up, with the peak memory."""
        batches, groups = hf_packed_batches(examples, rows, seq, mb, spec["warmup"] + steps)
        if device == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        res = run_hf_steps(model, batches, groups, examples, spec["warmup"], device)
        res["peak_memory_bytes"] = torch.cuda.max_memory_allocated() if device == "cuda" else 0
        res["tok_s"] = res["useful_tokens"] / res["seconds"]
        return res

    tried, best, best_at = [], None, ("sdpa", 0)
    deadline = time.perf_counter() + spec.get("budget_s", 240)
    for attn in spec["b_attn"]:
        model.set_attn_implementation(attn)
        for mb in spec["b_micro_batches"]:
            if time.perf_counter() > deadline:
                break
            try:
                res = time_b(spec["b_steps"], mb)
            except torch.OutOfMemoryError:
                tried.append({"attn": attn, "micro_batch": mb, "result": "out of memory"})
                model.zero_grad(set_to_none=True)
                break
            except Exception as e:  # one failing attention backend must not hide the others
                tried.append(
                    {"attn": attn, "micro_batch": mb, "result": f"failed: {type(e).__name__}: {str(e)[:200]}"}
                )
                print(f"  (b) {attn} mb {mb} failed: {e!r}"[:400], flush=True)
                model.zero_grad(set_to_none=True)
                break
            res["settings"] = f"packed, {liger}, no checkpointing, {attn}, micro-batch {mb} x {seq}"
            tried.append(
                {
                    "attn": attn,
                    "micro_batch": mb,
                    "tok_s": round(res["tok_s"]),
                    "peak_gib": round(res["peak_memory_bytes"] / GIB, 1),
                }
            )
            print(
                f"  (b) {attn} mb {mb}: {res['tok_s']:.0f} tok/s, {res['peak_memory_bytes'] / GIB:.1f} GiB",
                flush=True,
            )
            if best is None or res["tok_s"] > best["tok_s"]:
                best, best_at = res, (attn, mb)
    if best is None:
        raise RuntimeError(f"(b): no configuration ran: {tried}")
    if spec.get("b_confirm", True) and spec["steps"] > spec["b_steps"]:
        # The sweep's winner is the maximum of several short, noisy timings, so it is biased upward:
        # it is timed again, over as many steps as (c), and that second timing is reported.
        attn, mb = best_at
        model.set_attn_implementation(attn)
        confirmed = time_b(spec["steps"], mb)
        confirmed["settings"] = (
            best["settings"] + f" (best of the sweep, re-timed over {spec['steps']} steps)"
        )
        confirmed["sweep_best_tok_s"] = round(best["tok_s"])
        print(f"  (b) {attn} mb {mb} re-timed: {confirmed['tok_s']:.0f} tok/s", flush=True)
        best = confirmed
    best["tried"] = tried
    return best


def cell_c(spec: dict, examples: list, device: str) -> dict:
    from tunegate.train.engine import EngineConfig, train_sft

    model = build_hf_model(spec["shape"], device, "sdpa")
    # The planner picks the micro-batch (spec["micro_tokens"] overrides its target); one optimizer
    # step per micro-batch, as in (a) and (b).
    cfg = EngineConfig(
        seq_len=spec["seq"],
        tokens_per_step=None,
        max_steps=spec["warmup"] + spec["steps"],
        timing_warmup_steps=spec["warmup"],
        learning_rate=1e-4,
        micro_batch_tokens=spec.get("micro_tokens"),
        log_every=1000,
        compile=spec.get("compile"),
        attention=spec.get("attention", "auto"),
    )
    lines: list[str] = []
    result = train_sft(
        model, None, examples, cfg, log=lambda m: (lines.append(m), print("  " + m, flush=True))
    )
    return engine_result_dict(result, lines)


def engine_result_dict(result, lines: list[str]) -> dict:
    s = result.settings
    return {
        "seconds": result.timed_seconds,
        "useful_tokens": result.timed_useful_tokens,
        "model_flops": result.model_flops,
        "peak_memory_bytes": result.peak_memory_bytes,
        "last_loss": result.losses[-1],
        "plan": lines[0] if lines else "",
        "settings": f"packed, {s['attention']}, compile {'on' if s['compile'] else 'off'}, fused loss "
        f"{'on' if s['fused_loss'] else 'off'}, checkpointing {s['checkpoint_layers']} layers, "
        f"micro-batch {s['micro_batch_rows']} rows",
        "world_size": result.world_size,
    }


def cell_fsdp(spec: dict, examples: list) -> dict:
    """The engine from a meta-initialised model sharded with FSDP2 (or one GPU when world is 1)."""
    import torch
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from tunegate.train.engine import EngineConfig, PackedCausalLM, train_sft
    from tunegate.train.engine import distributed as dist

    info = dist.dist_info()
    lora = spec["mode"] == "lora"
    config = model_config(spec["shape"])
    dtype = torch.bfloat16 if lora else torch.float32  # full: fp32 master shards, bf16 compute
    torch.manual_seed(0)
    engine = PackedCausalLM.from_config(
        config,
        LORA_RANK if lora else None,
        LORA_ALPHA,
        attention=spec.get("attention", "flex"),
        dtype=dtype,
        device="meta",
    )
    if spec.get("force_shard") and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            "nccl" if torch.cuda.is_available() else "gloo"
        )  # a 1-GPU FSDP2 check
    if info.world_size > 1 or spec.get("force_shard"):
        dist.shard(engine, lora=lora, replicate_base=bool(spec.get("replicate_base")))
    engine.to_empty(device=info.device)
    init_random_(engine, config.initializer_range)
    engine.rotary = LlamaRotaryEmbedding(config).to(info.device)
    tokens = spec.get("micro_tokens", 8192)
    accum = spec.get("accum", 1)
    cfg = EngineConfig(
        seq_len=spec["seq"],
        mode=spec["mode"],
        tokens_per_step=tokens * accum * info.world_size,
        max_steps=spec["warmup"] + spec["steps"],
        timing_warmup_steps=spec["warmup"],
        learning_rate=1e-5,
        micro_batch_tokens=tokens,
        log_every=1000,
    )
    lines: list[str] = []
    say = (lambda m: (lines.append(m), print("  " + m, flush=True))) if info.is_main else (lambda m: None)
    result = train_sft(None, None, examples, cfg, log=say, engine_model=engine)
    out = engine_result_dict(result, lines)
    out["mode"] = spec["mode"]
    return out


def init_random_(engine, std: float) -> None:
    import torch

    with torch.no_grad():
        for name, p in engine.named_parameters():
            t = p.to_local() if hasattr(p, "to_local") else p
            if "lora_B" in name:
                t.zero_()
            elif "lora_A" in name:
                t.uniform_(
                    -1 / math.sqrt(t.shape[-1] if t.dim() > 1 else 1), 1 / math.sqrt(max(t.shape[-1], 1))
                )
            elif name.endswith(("ln1", "ln2", "norm_w")):
                t.fill_(1.0)
            else:
                t.normal_(0.0, std)


def run_cell(spec: dict) -> dict:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    seq = spec["seq"]
    # Chat-like lengths for rows of 2048; four times longer documents for rows of 8192 (so the
    # longer rows exercise longer attention, not just more documents); tiny rows scale down.
    median, cap = (512, 2048) if seq == 2048 else (seq // 4, seq)
    vocab = SHAPES[spec["shape"]]["vocab_size"]
    examples = make_examples(spec.get("examples", 4000), vocab, median, cap, seed=0)
    t0 = time.perf_counter()
    if spec["config"] == "a":
        res = cell_a(spec, examples, device)
    elif spec["config"] == "b":
        res = cell_b(spec, examples, device)
    elif spec["config"] == "c":
        res = cell_c(spec, examples, device)
    else:
        res = cell_fsdp(spec, examples)
    if "model_flops" not in res:
        res["model_flops"] = flops_of(spec["shape"], res.pop("docs"), res["labelled_tokens"], lora=True)
    res.pop("docs", None)
    if "peak_memory_bytes" not in res:
        res["peak_memory_bytes"] = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    res["tok_s"] = res["useful_tokens"] / res["seconds"] if res["seconds"] else 0.0
    res["tflops"] = res["model_flops"] / res["seconds"] / 1e12 if res["seconds"] else 0.0
    res["cell_seconds"] = time.perf_counter() - t0
    return res


# --- orchestration ------------------------------------------------------------------------------


def launch(spec: dict, timeout_s: float) -> dict:
    """Runs one cell in a fresh process (several processes through accelerate when world > 1)."""
    world = spec.get("world", 1)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cell", json.dumps(spec)]
    if world > 1:
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            str(world),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--multi_gpu",
            *cmd[1:],
        ]
    env = dict(os.environ)
    # NVLink multicast stays off on shared hosts (KINDS.md).
    env.update(
        NCCL_NVLS_ENABLE="0",
        TORCH_SYMM_MEM_DISABLE_MULTICAST="1",
        NVSHMEM_DISABLE_NVLS="1",
        PYTHONUNBUFFERED="1",
        TOKENIZERS_PARALLELISM="false",
    )
    t0 = time.perf_counter()
    # Own process group, so a timeout ends the launcher and every worker it started.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=max(timeout_s, 10))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        stdout, _ = proc.communicate()
        return {"error": f"timed out after {timeout_s:.0f} s", "tail": stdout[-1500:]}
    proc = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    sys.stdout.write(
        "".join(line + "\n" for line in proc.stdout.splitlines() if not line.startswith("RESULT "))
    )
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        return {
            "error": f"exit {proc.returncode}",
            "tail": proc.stderr[-3000:],
            "wall_s": time.perf_counter() - t0,
        }
    return results[0]


def single_gpu_cells(tiny: bool) -> list[dict]:
    if tiny:
        base = {
            "shape": "tiny",
            "seq": 256,
            "warmup": 1,
            "steps": 2,
            "b_steps": 2,
            "examples": 300,
            "b_attn": ["sdpa"],
            "b_micro_batches": [2, 4],
            "micro_tokens": 512,
        }  # no flex backward on CPU
        return [{**base, "config": c} for c in ("a", "b", "c")]
    cells = []
    one_b = {
        "shape": "1b",
        "seq": 2048,
        "warmup": 2,
        "steps": 12,
        "b_steps": 3,
        "b_attn": ["sdpa", "flex_attention"],
        "b_micro_batches": [8, 16, 32],
    }
    eight_b = {
        "shape": "8b",
        "seq": 2048,
        "warmup": 2,
        "steps": 10,
        "b_steps": 3,
        "b_attn": ["sdpa", "flex_attention"],
        "b_micro_batches": [4, 8],
    }
    long_8b = {
        "shape": "8b",
        "seq": 8192,
        "warmup": 2,
        "steps": 8,
        "b_steps": 3,
        "b_attn": ["flex_attention", "sdpa"],
        "b_micro_batches": [1, 2],
    }
    for base in (one_b, eight_b):
        cells += [
            {
                **base,
                "config": "a",
                **({"warmup": 2, "steps": 6} if base is one_b else {"warmup": 1, "steps": 4}),
            },
            {**base, "config": "b"},
            {**base, "config": "c"},
        ]
    cells += [{**long_8b, "config": "b"}, {**long_8b, "config": "c"}]
    return cells


def multi_gpu_cells(worlds: list[int]) -> list[dict]:
    base = {"shape": "8b", "seq": 2048, "config": "fsdp", "warmup": 2, "steps": 6, "examples": 3000}
    top = max(worlds)
    # Most needed first, in case the time budget runs out: LoRA on the most GPUs, full fine-tuning
    # (which needs several GPUs), then the smaller LoRA runs that scaling is measured against.
    cells = [{**base, "mode": "lora", "world": top}]
    cells += [
        {**base, "mode": "full", "world": w, "accum": 2, "steps": 4} for w in sorted(worlds, reverse=True)
    ]
    cells += [{**base, "mode": "lora", "world": w} for w in [1, *sorted(worlds)] if w != top]
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run with a tiny model")
    ap.add_argument("--multi-gpu", default="", help="comma-separated GPU counts, e.g. 2,4")
    ap.add_argument(
        "--only", default="", help="comma-separated shape[@seq]:config filters, e.g. 1b:c,8b@8192:b"
    )
    ap.add_argument(
        "--set", action="append", default=[], help="override a cell field, e.g. b_micro_batches=[16]"
    )
    ap.add_argument("--budget-s", type=float, default=510, help="stop starting cells after this many seconds")
    ap.add_argument("--out-dir", default=os.environ.get("OUT", ""), help="where results.json goes")
    ap.add_argument("--results-md", default=str(REPO / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--render", nargs="*", help="rewrite RESULTS.md's section from these result files")
    args = ap.parse_args()

    if args.cell:
        result = run_cell(json.loads(args.cell))
        if int(os.environ.get("RANK", "0")) == 0:
            print("RESULT " + json.dumps(result), flush=True)
        return
    if args.render:
        runs = [json.loads(Path(p).read_text()) for p in args.render]
        write_results_md(Path(args.results_md), runs)
        return

    import torch

    t_start = time.perf_counter()
    worlds = [int(w) for w in args.multi_gpu.split(",") if w]
    cells = multi_gpu_cells(worlds) if worlds else single_gpu_cells(args.tiny)
    if args.only:
        # "8b:c" (every 8B cell of config c), "8b" (every 8B cell), "8b@8192:b" (one sequence length)
        keep = {tuple(f.split(":")) for f in args.only.split(",")}

        def names(c: dict) -> set[tuple[str, ...]]:
            at = f"{c['shape']}@{c['seq']}"
            return {(c["shape"],), (c["shape"], c["config"]), (at,), (at, c["config"])}

        cells = [c for c in cells if names(c) & keep]
    for item in args.set:
        key, value = item.split("=", 1)
        cells = [{**c, key: json.loads(value)} for c in cells]
    run = {
        "date": dt.date.today().isoformat(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "gpus": torch.cuda.device_count(),
        "mode": "multi" if worlds else "single",
        "cells": [],
    }
    run["peak_tflops"] = peak_bf16_tflops() if torch.cuda.is_available() else 1.0
    print(
        f"{run['gpu']} x{run['gpus']}: bf16 matmul peak {run['peak_tflops']:.0f} TFLOP/s; {run['versions']}",
        flush=True,
    )
    for spec in cells:
        left = args.budget_s - (time.perf_counter() - t_start)
        if left < 30:
            run["cells"].append({"spec": spec, "result": {"error": "skipped: time budget spent"}})
            continue
        print(
            f"--- {spec['shape']} seq {spec['seq']} config {spec['config']} {spec.get('mode', '')} x{spec.get('world', 1)}",
            flush=True,
        )
        res = launch(spec, timeout_s=left)
        if "error" in res:
            print(f"  FAILED: {res['error']}\n{res.get('tail', '')}", flush=True)
        else:
            print(
                f"  {res['tok_s']:.0f} tok/s, {100 * res['tflops'] / run['peak_tflops'] / spec.get('world', 1):.1f}% MFU, "
                f"{res['peak_memory_bytes'] / GIB:.1f} GiB, cell {res['cell_seconds']:.0f} s",
                flush=True,
            )
        run["cells"].append({"spec": spec, "result": res})
        if args.out_dir:
            Path(args.out_dir).mkdir(parents=True, exist_ok=True)
            Path(args.out_dir, f"results_{run['mode']}.json").write_text(json.dumps(run, indent=1))
    print(render_tables(run))
    if not args.tiny:
        write_results_md(Path(args.results_md), [run])


# --- RESULTS.md ---------------------------------------------------------------------------------

SECTION = "## GPU training throughput"
LABELS = {
    "a": "(a) HF + PEFT default",
    "b": "(b) HF + PEFT + packing + Liger, best",
    "c": "(c) tunegate engine",
}


def render_tables(run: dict) -> str:
    peak = run["peak_tflops"]
    lines = [
        f"{run['date']}, {run['gpu']} x{run['gpus']}, bf16 matmul peak measured {peak:.0f} TFLOP/s; "
        + ", ".join(f"{k} {v}" for k, v in run["versions"].items()),
        f"Command: `{run['command']}`",
        "",
    ]
    if run["mode"] == "single":
        lines += [
            "| shape | seq | config | useful tok/s | MFU | peak GiB | settings |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in run["cells"]:
            s, r = c["spec"], c["result"]
            if "error" in r:
                lines.append(
                    f"| {s['shape']} | {s['seq']} | {LABELS[s['config']]} | failed | | | {r['error']} |"
                )
                continue
            lines.append(
                f"| {s['shape']} | {s['seq']} | {LABELS[s['config']]} | {r['tok_s']:,.0f} | "
                f"{100 * r['tflops'] / peak:.1f}% | {r['peak_memory_bytes'] / GIB:.1f} | {r['settings']} |"
            )
        lines += ["", *speedups(run)]
    else:
        lines += [
            "| shape | mode | GPUs | useful tok/s | per GPU | MFU | peak GiB/GPU | scaling |",
            "|---|---|---|---|---|---|---|---|",
        ]
        ok = [c for c in run["cells"] if "error" not in c["result"]]
        smallest = {}
        for c in sorted(ok, key=lambda c: c["spec"]["world"]):
            smallest.setdefault(c["spec"]["mode"], (c["spec"]["world"], c["result"]["tok_s"]))
        for c in sorted(run["cells"], key=lambda c: (c["spec"]["mode"], c["spec"]["world"])):
            s, r = c["spec"], c["result"]
            if "error" in r:
                lines.append(f"| {s['shape']} | {s['mode']} | {s['world']} | failed: {r['error']} | | | | |")
                continue
            w, mode = s["world"], s["mode"]
            w0, t0 = smallest[mode]
            scaling = (
                ""
                if w == w0
                else f"{r['tok_s'] / t0:.2f}x from {w0} GPU(s) ({100 * r['tok_s'] / t0 / (w / w0):.0f}% of linear)"
            )
            lines.append(
                f"| {s['shape']} | {mode} | {w} | {r['tok_s']:,.0f} | {r['tok_s'] / w:,.0f} | "
                f"{100 * r['tflops'] / peak / w:.1f}% | {r['peak_memory_bytes'] / GIB:.1f} | {scaling} |"
            )
    for c in run["cells"]:
        r = c["result"]
        if r.get("tried"):
            lines.append(
                f"\n(b) sweep, {c['spec']['shape']} seq {c['spec']['seq']}: "
                + "; ".join(
                    f"{t['attn']} mb {t['micro_batch']}: "
                    + (f"{t['tok_s']:,} tok/s, {t['peak_gib']} GiB" if "tok_s" in t else t["result"])
                    for t in r["tried"]
                )
            )
        if r.get("plan"):
            mode = f" {c['spec']['mode']}" if c["spec"].get("mode") else ""
            where = f"{c['spec']['shape']} seq {c['spec']['seq']} x{c['spec'].get('world', 1)}"
            lines.append(f"\n(c){mode} {where}: {r['plan']}")
    return "\n".join(lines)


def speedups(run: dict) -> list[str]:
    by = {}
    for c in run["cells"]:
        if "error" not in c["result"]:
            by[(c["spec"]["shape"], c["spec"]["seq"], c["spec"]["config"])] = c["result"]
    out = []
    for shape, seq in sorted({(k[0], k[1]) for k in by}):
        b, c = by.get((shape, seq, "b")), by.get((shape, seq, "c"))
        if b and c:
            out.append(
                f"- {shape} at seq {seq}: tunegate {c['tok_s'] / b['tok_s']:.2f}x (b)'s tokens/s, "
                f"peak memory {c['peak_memory_bytes'] / GIB:.1f} vs {b['peak_memory_bytes'] / GIB:.1f} GiB"
            )
    return out


def summary(runs: list[dict]) -> list[str]:
    """One line per shape from the latest single-GPU run that measured it, (c) against (b)."""
    latest: dict[tuple, tuple[dict, dict]] = {}
    for run in runs:
        if run["mode"] != "single":
            continue
        for c in run["cells"]:
            if "error" not in c["result"]:
                latest[(c["spec"]["shape"], c["spec"]["seq"], c["spec"]["config"])] = (c["result"], run)
    lines = [
        "| shape | seq | (a) tok/s | (b) tok/s | (c) tok/s | (c) MFU | (c) / (b) | peak GiB (b) -> (c) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape, seq in sorted({(k[0], k[1]) for k in latest}, key=lambda k: (k[1], k[0])):
        a, b, c = (latest.get((shape, seq, x)) for x in "abc")
        if not (b and c):
            continue
        ratio = c[0]["tok_s"] / b[0]["tok_s"]
        a_tok = f"{a[0]['tok_s']:,.0f}" if a else "-"
        lines.append(
            f"| {shape} | {seq} | {a_tok} | {b[0]['tok_s']:,.0f} | "
            f"{c[0]['tok_s']:,.0f} | {100 * c[0]['tflops'] / c[1]['peak_tflops']:.1f}% | {ratio:.2f}x | "
            f"{b[0]['peak_memory_bytes'] / GIB:.1f} -> {c[0]['peak_memory_bytes'] / GIB:.1f} |"
        )
    return lines


def write_results_md(path: Path, runs: list[dict]) -> None:
    body = [
        SECTION,
        "",
        "Written by `benchmarks/train_throughput.py` (see its docstring for what each configuration is).",
        "Summary (latest measurement of each cell; the runs below hold every number):",
        "",
        *summary(runs),
        "",
    ]
    for run in runs:
        body += [render_tables(run), ""]
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        # Hand-written notes under "### Notes" in this section survive a rewrite.
        old = text[start : nxt if nxt != -1 else len(text)]
        if "### Notes" in old:
            body += [old[old.index("### Notes") :].rstrip("\n"), ""]
        text = text[:start] + "\n".join(body) + ("\n" + text[nxt + 1 :] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body)
    path.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
