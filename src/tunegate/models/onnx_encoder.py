"""The classifier's encoder run by ONNX Runtime instead of PyTorch (`inference_runtime: onnxruntime`).

Why: on CPUs without AVX-512 (an AMD EPYC Zen 3 here), PyTorch answers one text in ~40 ms on one
core, mostly per-op overhead on tiny matrices, and the bundled example's 50 ms p95 target sits at the
edge; ONNX Runtime runs the same float32 graph in ~16 ms (benchmarks/serve_bound.py, RESULTS.md).

What is exported: the whole sentence-transformers pipeline up to the sentence embedding (transformer
and pooling), with the batch and sequence axes dynamic; normalisation stays in NumPy, as in
`TextClassifier.embed`. The file is written once, beside the encoder folder (`encoder.onnx`), and
is part of the stored artifact, so the evaluation that the gate judges and the server run the same
graph. Weights stay in float32: predictions match the PyTorch path within float rounding
(tests/test_onnx_runtime.py), so the head fit on PyTorch embeddings applies unchanged.

Texts are tokenized by the SentenceTransformer's own preprocessing, sorted by length and run in
sub-batches, each padded to its own longest text, as sentence-transformers does. ONNX files are
graphs and weights (protobuf), never pickle.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.errors import ModelError

RUNTIMES = ("torch", "onnxruntime")
ONNX_FILE = "encoder.onnx"
OPSET = 17


def check_runtime(runtime: str, where: str = "") -> str:
    if runtime not in RUNTIMES:
        prefix = f"{where}: " if where else ""
        raise ModelError(f"{prefix}inference_runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    return runtime


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(
            "inference_runtime 'onnxruntime' needs the onnxruntime package: pip install 'tunegate[onnx]'"
        ) from exc
    return onnxruntime


def export_encoder(encoder: Any, path: Path) -> None:
    """Writes `encoder` (a SentenceTransformer on the CPU) as an ONNX graph: token ids -> embedding."""
    import torch

    # Two texts of different lengths, so the traced graph includes the padding mask.
    sample = tokenizer_of(encoder)(["a short text", "and a somewhat longer one"])
    names = [n for n in sample if n in ("input_ids", "attention_mask", "token_type_ids")]

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.encoder(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    was_training = encoder.training
    encoder.eval()
    try:
        # The tracer warns about every Python-level shape check it freezes; for this pipeline they
        # hold for any batch (the sample is padded, so the mask path is the one traced).
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Pipeline(),
                tuple(sample[n] for n in names),
                str(path),
                input_names=names,
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        encoder.train(was_training)


class OnnxEncoder:
    """`encode` for the parts of SentenceTransformer.encode that TextClassifier uses, on ONNX Runtime."""

    def __init__(self, path: Path, tokenize: Any, threads: int | None = None) -> None:
        """`tokenize`: the SentenceTransformer's own (stripping, lower-casing and truncating as it
        does); `threads`: ONNX Runtime's threads per call (None: one per core)."""
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.dim = int(self.session.get_outputs()[0].shape[1])  # the embedding axis is not dynamic
        self.tokenize = tokenize

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Normalised float32 embeddings [len(texts), dim]."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for first in range(0, len(order), max(1, batch_size)):
            rows = order[first : first + batch_size]
            batch = self.tokenize([texts[i] for i in rows])
            feed = {n: batch[n].numpy().astype(np.int64) for n in self.inputs}
            emb = self.session.run(None, feed)[0].astype(np.float32)
            out[rows] = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return out


def tokenizer_of(encoder: Any) -> Any:
    """The SentenceTransformer's own preprocessing (`preprocess` in sentence-transformers 5, `tokenize` before)."""
    return getattr(encoder, "preprocess", None) or encoder.tokenize


def exported(encoder: Any) -> Path:
    """A fresh export of `encoder` in a temporary folder (for a classifier not yet saved)."""
    folder = Path(tempfile.mkdtemp(prefix="tunegate-onnx-"))
    path = folder / ONNX_FILE
    export_encoder(encoder, path)
    return path


def copy_to(source: Path, folder: Path) -> Path:
    target = folder / ONNX_FILE
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    return target
