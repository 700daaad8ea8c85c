"""The bar a fine-tuned classifier must clear: the base encoder, unchanged, plus logistic regression.

If fine-tuning the encoder does not beat a linear model on its frozen embeddings, the training run
bought nothing, and the gate's `beat_baseline` target says so. The baseline is fitted on the same
training rows the candidate saw and scored on the same test rows, with the same metrics.

Also here: putting another classifier's predictions (a production model's) on the candidate's label
list, so it can be compared with the same code.

Deliberately not here: any training of the encoder (that is `train/`), hyperparameter search for the
baseline (default C, on purpose: it is a reference point, not a competitor to be tuned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression

from tunegate.data.examples import Example
from tunegate.errors import EvalError
from tunegate.models import load_encoder, resolve_encoder
from tunegate.spec.schema import Spec

BASELINE_KIND = "frozen-encoder + logistic regression"


class Scorer(Protocol):
    """What evaluation needs from a model: `TextClassifier` and `FrozenEncoderBaseline` both are one."""

    labels: list[str]

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray: ...


@dataclass
class FrozenEncoderBaseline:
    """Normalized embeddings of the unchanged base encoder, fed to a fitted LogisticRegression."""

    encoder: Any  # a sentence_transformers.SentenceTransformer (anything with the same .encode)
    model: LogisticRegression
    labels: list[str]

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return np.asarray(
            self.encoder.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            ),
            dtype=np.float64,
        )

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Probabilities in `self.labels` order; a label absent from the training rows gets 0."""
        fitted = self.model.predict_proba(self.embed(texts, batch_size=batch_size))
        out = np.zeros((len(texts), len(self.labels)))
        column = {label: i for i, label in enumerate(self.labels)}
        for j, label in enumerate(self.model.classes_):
            out[:, column[str(label)]] = fitted[:, j]
        return out


def load_base_encoder(spec: Spec, spec_root: Path | None = None) -> Any:
    """The base encoder exactly as training started from it (no fine-tuning applied)."""
    return load_encoder(resolve_encoder(spec.base_model, spec_root), spec.train.max_length)


def fit_frozen_baseline(
    train: Sequence[Example], labels: list[str], encoder: Any, *, seed: int = 0, batch_size: int = 32
) -> FrozenEncoderBaseline:
    """Fit LogisticRegression (default C, max_iter=2000) on the frozen embeddings of the train rows."""
    unknown = sorted({ex.label for ex in train} - set(labels))
    if unknown:
        raise EvalError(f"baseline: training rows carry labels the classifier does not know: {unknown}")
    if len({ex.label for ex in train}) < 2:
        raise EvalError("baseline: the training rows hold fewer than 2 labels; logistic regression needs 2")
    baseline = FrozenEncoderBaseline(
        encoder=encoder, model=LogisticRegression(max_iter=2000, random_state=seed), labels=list(labels)
    )
    embeddings = baseline.embed([ex.text for ex in train], batch_size=batch_size)
    baseline.model.fit(embeddings, [ex.label for ex in train])
    return baseline


def predicted_indices(
    model: Scorer, texts: list[str], labels: list[str], batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted index into `labels`, -1 for a label outside it; confidence) for any Scorer.

    The model's own label order may differ from `labels` (a production model trained earlier);
    its argmax is taken in its own label space, then mapped.
    """
    probs = np.asarray(model.predict_proba(texts, batch_size=batch_size), dtype=np.float64)
    if probs.shape != (len(texts), len(model.labels)):
        raise EvalError(
            f"predict_proba returned shape {probs.shape}, expected ({len(texts)}, {len(model.labels)})"
        )
    best = probs.argmax(axis=1)
    position = {label: i for i, label in enumerate(labels)}
    mapping = np.array([position.get(label, -1) for label in model.labels], dtype=np.int64)
    return mapping[best], probs[np.arange(len(texts)), best]
