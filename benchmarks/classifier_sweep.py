"""Accuracy sweep for the few-shot trainer's settings (a tuning tool, not the reported benchmark).

    python benchmarks/classifier_sweep.py --encoder PATH --sizes 8 16 64 0 --seeds 0 1 2 --device cuda

Trains tunegate's classifier under several settings on the same sampled rows of the support-intents
example and prints test macro-F1, beside the frozen-encoder + logistic-regression baseline and,
with --setfit, SetFit at its defaults. Size 0 means every training row. Accuracy does not depend on
the device, so this can run on a GPU to save CPU hours; timings for the README come from
benchmarks/classifier_vs_setfit.py on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CONFIGS = {
    "default": {},
    "lr6e-5": {"learning_rate": 6e-5},
    "lr1e-4": {"learning_rate": 1e-4},
    "epochs2x": {"epochs": "2x"},
    "lr6e-5+epochs2x": {"learning_rate": 6e-5, "epochs": "2x"},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 64, 0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--setfit", type=int, nargs="*", default=[], help="Sizes to also run SetFit at.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from tunegate.data.readers import read_examples
    from tunegate.models import load_encoder
    from tunegate.train.classifier import FewShotConfig, auto_epochs, sample_per_class, train_fewshot

    data = ROOT / "examples" / "support-intents" / "data"
    train_all = read_examples(data / "train.jsonl").examples
    test = read_examples(data / "test.jsonl").examples
    y_test = [ex.label for ex in test]
    frozen = load_encoder(args.encoder, 128, device=args.device)
    embed = lambda rows: frozen.encode([r.text for r in rows], normalize_embeddings=True, batch_size=64)  # noqa: E731
    test_emb = embed(test)
    rows = []

    def record(**row) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            args.out.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    for size in args.sizes:
        for seed in args.seeds:
            train = sample_per_class(train_all, size or None, seed)
            train_emb = embed(train)
            for c in (1.0, 10.0):
                lr = LogisticRegression(C=c, max_iter=2000).fit(train_emb, [r.label for r in train])
                record(
                    size=size,
                    seed=seed,
                    method=f"frozen+LR C={c:g}",
                    macro_f1=f1_score(y_test, lr.predict(test_emb), average="macro"),
                    train_s=0,
                )
            for name in args.configs:
                overrides = dict(CONFIGS[name])
                if overrides.get("epochs") == "2x":
                    overrides["epochs"] = 2 * auto_epochs(len(train))
                config = replace(FewShotConfig(seed=seed, device=args.device), **overrides)
                started = time.perf_counter()
                result = train_fewshot(train, args.encoder, config)
                pred = [p.label for p in result.classifier.predict([r.text for r in test])]
                record(
                    size=size,
                    seed=seed,
                    method=f"tunegate {name}",
                    train_s=time.perf_counter() - started,
                    macro_f1=f1_score(y_test, pred, average="macro"),
                )
            if size in args.setfit:
                from datasets import Dataset
                from setfit import SetFitModel, Trainer, TrainingArguments

                started = time.perf_counter()
                model = SetFitModel.from_pretrained(
                    str(args.encoder), local_files_only=True, device=args.device
                )
                ds = Dataset.from_dict({"text": [r.text for r in train], "label": [r.label for r in train]})
                Trainer(
                    model=model,
                    args=TrainingArguments(seed=seed, report_to="none", show_progress_bar=False),
                    train_dataset=ds,
                ).train()
                pred = [str(p) for p in model.predict([r.text for r in test])]
                record(
                    size=size,
                    seed=seed,
                    method="setfit default",
                    train_s=time.perf_counter() - started,
                    macro_f1=f1_score(y_test, pred, average="macro"),
                )

    print("\nmean macro-F1 by size and method")
    for size in args.sizes:
        for method in dict.fromkeys(r["method"] for r in rows):
            values = [r["macro_f1"] for r in rows if r["size"] == size and r["method"] == method]
            if values:
                print(f"size {size:>2}  {method:28s} {statistics.mean(values):.4f}  (n={len(values)})")


if __name__ == "__main__":
    main()
