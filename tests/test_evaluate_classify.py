"""The suite runner on tiny stand-in models, and the baseline on the packaged encoder (integration)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunegate.data.examples import Example
from tunegate.errors import EvalError
from tunegate.evaluate import evaluate_classifier, fit_frozen_baseline, load_base_encoder
from tunegate.spec.schema import DataSpec, EvalSpec, Spec

LABELS = ["billing", "shipping", "other"]
KEYWORD = {"billing": "invoice", "shipping": "parcel", "other": "hello"}


class KeywordEncoder:
    """A sentence-transformers stand-in: one dimension per keyword, so classes separate perfectly."""

    def encode(
        self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    ):
        counts = np.array([[t.count(word) + 0.05 for word in KEYWORD.values()] for t in texts], dtype=float)
        return counts / np.linalg.norm(counts, axis=1, keepdims=True)


class NoisyClassifier:
    """Right on rows whose text says so ('ok'), wrong otherwise; confidence 0.7 throughout."""

    def __init__(self, labels=LABELS):
        self.labels = list(labels)
        self.encoder = KeywordEncoder()

    def embed(self, texts, batch_size=32):
        return self.encoder.encode(texts)

    def predict_proba(self, texts, batch_size=32):
        k = len(self.labels)
        out = np.full((len(texts), k), 0.3 / (k - 1))
        for i, text in enumerate(texts):
            true = next(label for label, word in KEYWORD.items() if word in text)
            pick = true if " ok" in text else next(label for label in self.labels if label != true)
            out[i, self.labels.index(pick)] = 0.7
        return out


def rows(n: int, wrong_every: int = 5, source: str = "test.jsonl") -> list[Example]:
    out = []
    for i in range(n):
        label = LABELS[i % 3]
        status = "bad" if i % wrong_every == 0 else "ok"
        out.append(
            Example(f"{KEYWORD[label]} {status} {i}", label, {"lang": "en" if i % 2 else "fr"}, source, i + 1)
        )
    return out


def make_spec(**eval_fields) -> Spec:
    fields = {
        "slices": ["lang"],
        "bootstrap_samples": 200,
        "latency_requests": 10,
        "throughput_batch_size": 8,
    }
    return Spec(
        name="toy",
        task="classify",
        data=DataSpec(train="t", test="t"),
        eval=EvalSpec(**(fields | eval_fields)),
    )


def test_all_suites_run_and_results_are_json_safe():
    test = rows(60)
    results = evaluate_classifier(
        NoisyClassifier(),
        rows(30, source="train.jsonl"),
        test,
        make_spec(),
        training_wall_s=36.0,
        progress=False,
        base_encoder=KeywordEncoder(),
    )
    assert {
        "task",
        "n_test",
        "labels",
        "summary",
        "metrics",
        "per_class",
        "confusion",
        "calibration",
        "slices",
        "baseline",
        "production",
        "latency",
        "cost",
        "predictions",
    } <= set(results)
    json.dumps(results, allow_nan=False)
    assert results["task"] == "classify" and results["n_test"] == 60 and results["labels"] == LABELS
    assert results["summary"]["accuracy"] == pytest.approx(48 / 60)  # every 5th row is wrong
    assert results["metrics"]["macro_f1"]["low"] <= results["metrics"]["macro_f1"]["value"]
    assert set(results["slices"]["lang"]["values"]) == {"en", "fr"}
    assert results["production"] is None
    assert results["cost"]["training_usd"] == pytest.approx(36.0 * 0.10 / 3600)
    assert results["cost"]["throughput_per_s"] == results["latency"]["throughput"]["texts_per_s"]

    first = results["predictions"][0]
    assert first == {
        "text": test[0].text,
        "label": "billing",
        "predicted": "shipping",
        "confidence": 0.7,
        "source": "test.jsonl",
        "line": 1,
    }
    assert len(results["predictions"]) == 60


def test_baseline_on_separable_embeddings_beats_a_noisy_candidate():
    results = evaluate_classifier(
        NoisyClassifier(),
        rows(45),
        rows(90),
        make_spec(),
        training_wall_s=1.0,
        progress=False,
        base_encoder=KeywordEncoder(),
    )
    baseline = results["baseline"]
    assert baseline["summary"]["accuracy"] == 1.0
    delta = baseline["delta_macro_f1"]
    assert delta["value"] == pytest.approx(results["summary"]["macro_f1"] - 1.0)
    assert delta["high"] < 0
    assert baseline["n_train"] == 45 and "logistic regression" in baseline["kind"]


def test_baseline_can_be_switched_off():
    results = evaluate_classifier(
        NoisyClassifier(), rows(30), rows(30), make_spec(baseline=False), training_wall_s=1.0, progress=False
    )
    assert results["baseline"] is None


def test_production_with_another_label_order_and_an_extra_label_is_compared():
    production = NoisyClassifier(labels=["other", "legacy", "shipping", "billing"])
    results = evaluate_classifier(
        NoisyClassifier(),
        rows(30),
        rows(60, wrong_every=4),
        make_spec(baseline=False),
        training_wall_s=1.0,
        production=production,
        progress=False,
    )
    prod = results["production"]
    # production mistakes land on its first other label, "other" or "legacy" (outside the candidate's list)
    assert prod["outside_label_set"] > 0
    assert prod["summary"]["accuracy"] == pytest.approx(results["summary"]["accuracy"])
    assert prod["delta_macro_f1"]["value"] == pytest.approx(
        results["summary"]["macro_f1"] - prod["summary"]["macro_f1"]
    )


def test_unknown_test_label_is_an_error_naming_the_row():
    test = [*rows(6), Example("parcel ok", "returns", {}, "test.jsonl", 7)]
    with pytest.raises(EvalError, match=r"test.jsonl:7 \('returns'\)"):
        evaluate_classifier(
            NoisyClassifier(), rows(6), test, make_spec(), training_wall_s=1.0, progress=False
        )


def test_empty_test_set_is_an_error():
    with pytest.raises(EvalError, match="test set is empty"):
        evaluate_classifier(NoisyClassifier(), rows(6), [], make_spec(), training_wall_s=1.0, progress=False)


TOPICS = {
    "billing": [
        "my invoice shows a double charge",
        "refund the payment on my card",
        "the bill is too high",
        "why was I charged twice this month",
        "update my credit card billing details",
        "I was billed for a plan I cancelled",
        "send me a receipt for my payment",
        "the invoice amount is wrong",
        "how do I pay my outstanding balance",
        "stop charging my card",
    ],
    "shipping": [
        "where is my parcel",
        "the package has not arrived yet",
        "track my delivery please",
        "the courier lost my box",
        "when will my order ship",
        "my parcel was delivered to a neighbour",
        "can I change the delivery address",
        "the shipment is stuck in customs",
        "the delivery driver never came",
        "how long does shipping take",
    ],
    "other": [
        "what are your opening hours",
        "I love your app",
        "how do I change my password",
        "can I talk to a person",
        "do you have a newsletter",
        "the website looks great",
        "how do I delete my account",
        "is there a mobile app",
        "I forgot my username",
        "who founded the company",
    ],
}


@pytest.mark.integration
def test_frozen_baseline_on_the_packaged_encoder():
    """30 rows: 6 per class to fit, 4 per class to score; topics a frozen MiniLM separates easily."""
    train = [Example(t, label) for label, texts in TOPICS.items() for t in texts[:6]]
    test = [Example(t, label) for label, texts in TOPICS.items() for t in texts[6:]]
    baseline = fit_frozen_baseline(train, LABELS, load_base_encoder(make_spec()), seed=0)

    probs = baseline.predict_proba([ex.text for ex in test])
    assert probs.shape == (12, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(baseline.embed(["hello there"]), axis=1), 1.0, rtol=1e-5)
    predicted = [LABELS[i] for i in probs.argmax(axis=1)]
    accuracy = np.mean([p == ex.label for p, ex in zip(predicted, test, strict=True)])
    assert accuracy >= 0.75, predicted
