"""A trained text classifier as it is stored and served: encoder + linear head + temperature.

Artifact layout (safetensors + JSON only, nothing pickled):

    encoder/            sentence-transformers folder of the fine-tuned encoder (model.safetensors, ...)
    head.safetensors    weight [classes, dim], bias [classes], temperature [1]
    classifier.json     labels, max_length, format version, base model

Training lives in `train/`; this module only loads, predicts and saves, so `serve` can use it without
importing the trainer. The head is applied in float64 NumPy: the same embeddings always give the same
probabilities, which is what makes "reload reproduces predictions exactly" hold.

`inference_dtype` (classifier.json, from the spec's `train.inference_dtype`) is the number format of
the encoder's matmuls wherever the classifier runs: evaluation, predict and serve all call `embed`, so
the gate judges exactly what is served. "bfloat16" autocasts matmuls to bf16 (norms and softmax stay
fp32); on CPUs with AVX512-BF16 or AMX it about doubles batched throughput.

`inference_runtime` (classifier.json, from `train.inference_runtime`) is what runs the encoder:
"torch", or "onnxruntime" (onnx_encoder.py: the same float32 graph exported to `encoder.onnx` in the
artifact, ~2.5x lower single-text latency on AVX2-only CPUs). It too is used by evaluation, predict
and serve alike.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.errors import ModelError
from tunegate.models.dtypes import check_inference_dtype
from tunegate.models.onnx_encoder import (
    ONNX_FILE,
    OnnxEncoder,
    check_runtime,
    copy_to,
    export_encoder,
    exported,
    require_onnxruntime,
    tokenizer_of,
)

FORMAT = "tunegate.classifier/1"


def inference_autocast(dtype: str, device: str = "cpu") -> Any:
    """The context the encoder runs in for `dtype`: bf16 autocast, or nothing for float32."""
    import torch

    if check_inference_dtype(dtype) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class LinearHead:
    weight: np.ndarray  # [classes, dim]
    bias: np.ndarray  # [classes]
    temperature: float = 1.0

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return (
            embeddings.astype(np.float64) @ self.weight.T.astype(np.float64) + self.bias
        ) / self.temperature

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        return softmax(self.logits(embeddings))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class TextClassifier:
    def __init__(
        self,
        encoder: Any,
        head: LinearHead,
        labels: list[str],
        max_length: int,
        info: dict[str, Any],
        onnx_path: Path | None = None,
    ):
        self.encoder = encoder  # a sentence_transformers.SentenceTransformer
        self.head = head
        self.labels = list(labels)
        self.max_length = max_length
        self.info = info
        self.encoder.max_seq_length = max_length
        self.inference_dtype = str(info.get("inference_dtype", "float32"))
        inference_autocast(self.inference_dtype)  # refuses an unknown format at load, not at first request
        self.inference_runtime = check_runtime(str(info.get("inference_runtime", "torch")), "classifier.json")
        if self.inference_runtime == "onnxruntime" and self.inference_dtype != "float32":
            raise ModelError("classifier.json: inference_runtime 'onnxruntime' runs float32 only")
        self.onnx_path = onnx_path  # the exported graph; made on first use when None
        self._onnx: OnnxEncoder | None = None

    # -- inference --------------------------------------------------------------------------------

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if self.inference_runtime == "onnxruntime":
            return self._onnx_encoder().encode(list(texts), batch_size=batch_size)
        with inference_autocast(self.inference_dtype, self.encoder.device.type):
            embeddings = self.encoder.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_tensor=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return embeddings.float().cpu().numpy()

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.labels)))
        return self.head.probabilities(self.embed(texts, batch_size=batch_size))

    def predict(self, texts: list[str], batch_size: int = 32) -> list[Prediction]:
        probs = self.predict_proba(texts, batch_size=batch_size)
        out = []
        for row in probs:
            best = int(row.argmax())
            out.append(
                Prediction(
                    label=self.labels[best],
                    confidence=float(row[best]),
                    probabilities={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                )
            )
        return out

    def _onnx_encoder(self) -> OnnxEncoder:
        if self._onnx is None:
            import torch

            require_onnxruntime()  # before exporting: say what to install first
            if self.onnx_path is None:
                self.onnx_path = exported(self.encoder)
                weakref.finalize(self, shutil.rmtree, self.onnx_path.parent, True)
            # As many threads as torch would use here (serve shares the cores out between workers).
            self._onnx = OnnxEncoder(
                self.onnx_path, tokenizer_of(self.encoder), threads=torch.get_num_threads()
            )
        return self._onnx

    # -- persistence ------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save(str(folder / "encoder"), safe_serialization=True)
        save_file(
            {
                "weight": np.ascontiguousarray(self.head.weight, dtype=np.float64),
                "bias": np.ascontiguousarray(self.head.bias, dtype=np.float64),
                "temperature": np.array([self.head.temperature], dtype=np.float64),
            },
            str(folder / "head.safetensors"),
        )
        meta = {"format": FORMAT, "labels": self.labels, "max_length": self.max_length, **self.info}
        (folder / "classifier.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        if self.inference_runtime == "onnxruntime":
            # The graph this object has run (and been judged on) if any, else a fresh export.
            if self.onnx_path is not None:
                copy_to(self.onnx_path, folder)
            else:
                export_encoder(self.encoder, folder / ONNX_FILE)

    @classmethod
    def load(cls, folder: Path) -> TextClassifier:
        from safetensors.numpy import load_file
        from sentence_transformers import SentenceTransformer

        meta_path = folder / "classifier.json"
        if not meta_path.is_file():
            raise ModelError(f"{folder} is not a tunegate classifier (no classifier.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ModelError(f"{meta_path}: unsupported format {meta.get('format')!r} (expected {FORMAT})")
        tensors = load_file(str(folder / "head.safetensors"))
        head = LinearHead(tensors["weight"], tensors["bias"], float(tensors["temperature"][0]))
        encoder = SentenceTransformer(str(folder / "encoder"), device="cpu", local_files_only=True)
        labels = meta.pop("labels")
        max_length = meta.pop("max_length")
        meta.pop("format")
        onnx_path = None
        if meta.get("inference_runtime") == "onnxruntime":
            onnx_path = folder / ONNX_FILE
            if not onnx_path.is_file():
                raise ModelError(f"{meta_path}: inference_runtime 'onnxruntime' but {onnx_path} is missing")
        return cls(encoder, head, labels, max_length, meta, onnx_path=onnx_path)


def load_encoder(folder: Path, max_length: int, device: str = "cpu") -> Any:
    """Load a sentence-transformers encoder from a local folder (mean pooling added for plain HF folders)."""
    from sentence_transformers import SentenceTransformer

    try:
        encoder = SentenceTransformer(str(folder), device=device, local_files_only=True)
    except OSError as exc:
        raise ModelError(f"cannot load encoder from {folder}: {exc}") from exc
    encoder.max_seq_length = max_length
    return encoder
