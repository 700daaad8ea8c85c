"""Few-shot classifier training: fine-tune the sentence encoder, then fit a calibrated linear head.

The recipe follows SetFit's two stages (adapt the encoder so same-class texts sit together, then fit a
logistic-regression head on the adapted embeddings) but spends far less compute on stage one:

* SetFit trains on sentence *pairs*; with its default oversampling the number of pairs grows with the
  square of the training set (640 texts -> ~370k pairs). Here every optimisation step encodes a
  class-balanced batch once and scores it against all classes, so one text encoding does the work of
  many pairs, and the step count grows linearly with the data (`auto_epochs`).
* The step-one objective is cross-entropy through a cosine head initialised at the class centroids of
  the frozen encoder, i.e. training starts from a nearest-centroid classifier instead of from scratch.
* Stage two is scikit-learn's LogisticRegression on the adapted, normalised embeddings; its weights are
  stored as arrays (safetensors), never pickled. A temperature fitted on out-of-fold logits calibrates
  the probabilities.

The loop is written by hand (about 40 lines) rather than through sentence-transformers' Trainer:
on a 2-core CPU the Trainer's dataset and callback machinery costs more than the steps themselves.
Nothing here touches the registry directly; `register_classifier` is the one call that stores.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunegate.data.examples import Example
from tunegate.errors import TrainError
from tunegate.models import LinearHead, TextClassifier, inference_autocast, load_encoder, softmax


@dataclass(frozen=True)
class FewShotConfig:
    seed: int = 42
    epochs: int | None = None  # None: auto_epochs(len(train))
    batch_size: int = 32
    learning_rate: float = 1e-4  # best of {3e-5, 1e-4, 2x epochs} in benchmarks/classifier_sweep.py
    max_length: int = 128
    logit_scale: float = 20.0  # cosine-softmax temperature of the stage-one head
    head_c: float = 10.0  # inverse L2 strength of the logistic-regression head
    device: str = "cpu"  # "cuda" trains on a GPU; the stored classifier always runs on the CPU
    inference_dtype: str = "float32"  # the stored classifier's matmul format; the head is fit in it too
    inference_runtime: str = "torch"  # what runs the stored classifier's encoder (models/onnx_encoder.py)


@dataclass
class TrainResult:
    classifier: TextClassifier
    wall_s: float
    steps: int
    epochs: int
    losses: list[float] = field(default_factory=list)
    temperature: float = 1.0


def auto_epochs(n_examples: int) -> int:
    """About 2,400 text encodings in total, between 3 and 24 passes: few-shot sets get more passes."""
    return int(min(24, max(3, math.ceil(2400 / max(n_examples, 1)))))


def sample_per_class(examples: Sequence[Example], per_class: int | None, seed: int) -> list[Example]:
    """At most `per_class` rows of each label, drawn with a fixed seed; order is deterministic."""
    if per_class is None:
        return list(examples)
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for ex in examples:
        by_label.setdefault(ex.label, []).append(ex)
    chosen: list[Example] = []
    for label in sorted(by_label):
        rows = by_label[label]
        chosen.extend(rng.sample(rows, min(per_class, len(rows))))
    return chosen


def _balanced_batches(labels: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of indices, shuffled per class and interleaved so every batch mixes classes."""
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    queues = [rng.sample(idx, len(idx)) for _, idx in sorted(by_class.items())]
    order: list[int] = []
    while any(queues):
        for q in rng.sample(queues, len(queues)):
            if q:
                order.append(q.pop())
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _group_by_length(
    batches: list[list[int]], lengths: list[int], rng: random.Random, window: int = 8
) -> list[list[int]]:
    """Re-cut each run of `window` batches so that texts of similar length share a batch.

    Padding is the main waste on a CPU: support tickets range from 3 to 100+ tokens, and a random batch
    pads every text to its longest. Sorting within a window of batches (HF's group_by_length idea)
    keeps most of the shuffling and class mixing while cutting padded tokens severalfold.
    """
    out: list[list[int]] = []
    for start in range(0, len(batches), window):
        chunk = [i for batch in batches[start : start + window] for i in batch]
        chunk.sort(key=lambda i: lengths[i])
        size = len(batches[start])
        out.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
    rng.shuffle(out)
    return out


def train_fewshot(
    train: Sequence[Example],
    encoder_path: Any,
    config: FewShotConfig,
    *,
    on_step: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Fine-tune the encoder at `encoder_path` on `train` and return a ready TextClassifier."""
    import torch
    from torch.nn import functional as F

    labels = sorted({ex.label for ex in train})
    if len(labels) < 2:
        raise TrainError(f"a classifier needs at least 2 labels in the training data, found {labels}")
    label_index = {label: i for i, label in enumerate(labels)}
    texts = [ex.text for ex in train]
    lengths = [len(t) for t in texts]  # characters: a cheap, monotone stand-in for token counts
    y = [label_index[ex.label] for ex in train]

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    encoder = load_encoder(encoder_path, config.max_length, device=config.device)
    epochs = config.epochs or auto_epochs(len(train))

    # Stage one: cosine head initialised at the frozen encoder's class centroids.
    with torch.no_grad():
        frozen = _encode(encoder, texts, config.batch_size)
    y_tensor = torch.tensor(y, device=encoder.device)
    centroids = torch.stack([frozen[y_tensor == c].mean(0) for c in range(len(labels))])
    head = torch.nn.Parameter(F.normalize(centroids, dim=-1))
    optimizer = torch.optim.AdamW(
        [
            {"params": list(encoder.parameters()), "lr": config.learning_rate},
            {"params": [head], "lr": config.learning_rate * 100},  # the head moves on a coarser scale
        ],
        weight_decay=0.01,
    )
    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = epochs * batches_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, total_steps // 10)) * (1 - step / total_steps)
    )
    losses: list[float] = []
    encoder.train()
    step = 0
    for _ in range(epochs):
        for batch in _group_by_length(_balanced_batches(y, config.batch_size, rng), lengths, rng):
            features = _to(encoder.preprocess([texts[i] for i in batch]), encoder.device)
            embeddings = F.normalize(encoder(features)["sentence_embedding"], dim=-1)
            logits = config.logit_scale * embeddings @ F.normalize(head, dim=-1).T
            loss = F.cross_entropy(logits, y_tensor[batch], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(float(loss.detach()))
            if on_step:
                on_step(step, total_steps, losses[-1])
    encoder.eval()

    # Stage two: logistic regression on the adapted embeddings, temperature from out-of-fold logits.
    with torch.no_grad(), inference_autocast(config.inference_dtype, encoder.device.type):
        adapted = _encode(encoder, texts, config.batch_size).float().cpu().numpy().astype(np.float64)
    encoder.to("cpu")
    weight, bias = _fit_head(adapted, np.asarray(y), len(labels), config.head_c, config.seed)
    temperature = _fit_temperature(adapted, np.asarray(y), len(labels), config.head_c, config.seed)
    classifier = TextClassifier(
        encoder,
        LinearHead(weight, bias, temperature),
        labels,
        config.max_length,
        info={
            "method": "fewshot",
            "logit_scale": config.logit_scale,
            "head_c": config.head_c,
            "inference_dtype": config.inference_dtype,
            "inference_runtime": config.inference_runtime,
        },
    )
    return TrainResult(classifier, time.perf_counter() - started, step, epochs, losses, temperature)


def _encode(encoder: Any, texts: list[str], batch_size: int) -> Any:
    import torch
    from torch.nn import functional as F

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths, little padding
    parts = []
    for i in range(0, len(order), batch_size):
        features = _to(encoder.preprocess([texts[j] for j in order[i : i + batch_size]]), encoder.device)
        parts.append(F.normalize(encoder(features)["sentence_embedding"], dim=-1))
    embeddings = torch.cat(parts)
    restored = torch.empty_like(embeddings)
    restored[torch.tensor(order, device=embeddings.device)] = embeddings
    return restored


def _to(features: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


def _logistic_regression(c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


def _fit_head(
    x: np.ndarray, y: np.ndarray, n_classes: int, c: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    model = _logistic_regression(c, seed).fit(x, y)
    return model.coef_.astype(np.float64), model.intercept_.astype(np.float64)


def _fit_temperature(x: np.ndarray, y: np.ndarray, n_classes: int, c: float, seed: int) -> float:
    """Temperature minimising the negative log-likelihood of out-of-fold logits (1.0 if too few rows)."""
    from scipy.optimize import minimize_scalar
    from sklearn.model_selection import StratifiedKFold

    folds = min(5, int(np.bincount(y, minlength=n_classes).min()))
    if folds < 2:
        return 1.0
    oof = np.zeros((len(y), n_classes))
    for fit_idx, held_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = _logistic_regression(c, seed).fit(x[fit_idx], y[fit_idx])
        oof[held_idx] = model.decision_function(x[held_idx])

    def nll(log_t: float) -> float:
        probs = softmax(oof / math.exp(log_t))
        return float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())

    best = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(math.exp(best.x))
