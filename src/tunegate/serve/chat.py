"""Text generation for /v1/chat/completions: a causal LM, its tokenizer's chat template, token by token.

`ChatModel.stream` yields one `TokenPiece` per generated token (the newly decodable text and the
token's log-probability), so the same loop serves a streamed and a whole answer, and the mean token
log-probability is the confidence signal that decides escalation. Sampling is temperature + top-p on
the logits with a seeded generator; temperature 0 is greedy.

Hand-written rather than `model.generate` because streaming through `TextIteratorStreamer` loses the
per-token log-probabilities, and those are what escalation needs. The loop is plain: KV cache on,
one token per step, stop on EOS, a stop string or max_tokens. Not a batching engine: one
generation at a time per model (vLLM / TGI are the scale-out path; the registry exports for them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import ModelError, ServeError


@dataclass(frozen=True)
class TokenPiece:
    text: str  # newly decodable text (may be "" while a multi-byte character is incomplete)
    logprob: float
    finish_reason: str | None = None  # set on the last piece: "stop" or "length"


class ChatModel:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        prompt_fn: Callable[[list[dict[str, str]]], list[int]] | None = None,
        stop_ids: set[int] | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self._prompt_fn = prompt_fn
        eos = tokenizer.eos_token_id
        self.stop_ids = (set(eos if isinstance(eos, list) else [eos]) | (stop_ids or set())) - {None}

    @classmethod
    def load(cls, folder: Path, cache_dir: Path) -> ChatModel:
        """A trained tunegate chat artifact (sft.json: its stored template and end-of-turn token, LoRA
        merged), or a plain Hugging Face causal-LM folder (its tokenizer's own chat template)."""
        from tunegate.models.causal_lm import load_causal_lm, load_chat_model, load_tokenizer

        try:
            if (folder / "sft.json").is_file():
                trained = load_chat_model(folder, cache_dir)
                return cls(
                    trained.model,
                    trained.tokenizer,
                    stop_ids={trained.eot_id},
                    prompt_fn=lambda messages: trained.template.prompt_ids(trained.tokenizer, messages),
                )
            return cls(load_causal_lm(folder), load_tokenizer(folder))
        except ModelError as exc:
            raise ServeError(f"cannot serve the chat model in {folder}: {exc}") from exc

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        if self._prompt_fn is not None:
            return list(self._prompt_fn(messages))
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        # No template: a plain transcript, so a base model still answers something sensible.
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return list(self.tokenizer(text)["input_ids"])

    def stream(
        self,
        prompt_ids: list[int],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> Iterator[TokenPiece]:
        import torch

        generator = torch.Generator().manual_seed(seed if seed is not None else 0)
        eos_ids = self.stop_ids
        generated: list[int] = []
        emitted = ""
        past = None
        input_ids = torch.tensor([prompt_ids])
        with torch.inference_mode():
            for step in range(max_tokens):
                # transformers 5 names the KV cache `cache` (older releases: past_key_values).
                out = self.model(input_ids=input_ids, cache=past, use_cache=True)
                past = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
                logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                token = _sample(logprobs, temperature, top_p, generator)
                logprob = float(logprobs[token])
                if token in eos_ids:
                    yield TokenPiece("", logprob if math.isfinite(logprob) else -1e9, "stop")
                    return
                generated.append(token)
                text = self.tokenizer.decode(generated, skip_special_tokens=True)
                delta = (
                    text[len(emitted) :] if text.startswith(emitted) and not text.endswith("\ufffd") else ""
                )
                stop_hit = next((s for s in stop or [] if s and s in text), None)
                if stop_hit is not None:
                    cut = text[: text.index(stop_hit)]
                    yield TokenPiece(cut[len(emitted) :], logprob, "stop")
                    return
                emitted += delta
                last = step == max_tokens - 1
                yield TokenPiece(delta, logprob, "length" if last else None)
                input_ids = torch.tensor([[token]])


def _sample(logprobs: Any, temperature: float, top_p: float, generator: Any) -> int:
    import torch

    if temperature <= 0:
        return int(logprobs.argmax())
    probs = torch.softmax(logprobs / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(0) - sorted_probs < top_p  # the smallest prefix reaching top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
