"""Regression against the base model: what fine-tuning may have cost outside the domain.

Two measurements, both candidate vs base on the same inputs:
- perplexity on held-out general text (the spec's `regression.general_text`): each document's summed
  next-token NLL and token count, scored as plain text (no chat template), so the number says how
  well the model still models ordinary language;
- answers to general prompts (`regression.general_prompts`, chat prompts with a reference answer),
  scored by chrF against the reference; the drop from base to candidate is the regression.

Reading the two JSONL files is here too; a row that is not usable is an EvalError naming its line
(these files are part of the spec's evidence, so they are not skipped silently).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import EvalError


@dataclass(frozen=True)
class GeneralPrompt:
    id: str
    messages: list[dict[str, str]]
    reference: str


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise EvalError(f"{path}: no such file")
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise EvalError(f"{path}:{line_no}: a row must be a JSON object")
        out.append((line_no, row))
    return out


def read_general_text(path: Path) -> list[str]:
    texts = []
    for line_no, row in _rows(path):
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise EvalError(f"{path}:{line_no}: no 'text' string")
        texts.append(text)
    return texts


def read_general_prompts(path: Path) -> list[GeneralPrompt]:
    prompts = []
    for line_no, row in _rows(path):
        messages, reference = row.get("messages"), row.get("reference")
        if isinstance(row.get("prompt"), str):
            messages = [{"role": "user", "content": row["prompt"]}]
        if not isinstance(messages, list) or not messages or not isinstance(reference, str):
            raise EvalError(f"{path}:{line_no}: needs 'messages' (or 'prompt') and a 'reference' string")
        prompts.append(GeneralPrompt(str(row.get("id", f"{path.name}:{line_no}")), messages, reference))
    return prompts


def document_nll(
    model: Any, tokenizer: Any, texts: list[str], batch_size: int = 8
) -> tuple[list[float], list[int]]:
    """(summed NLL in nats, predicted tokens) per text; each text is scored on its own."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    nll: list[float] = []
    counts: list[int] = []
    for start in range(0, len(texts), batch_size):
        encoded = [tokenizer(t)["input_ids"] for t in texts[start : start + batch_size]]
        width = max(len(ids) for ids in encoded)
        ids = torch.tensor([e + [pad] * (width - len(e)) for e in encoded])
        mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded])
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )
        nll.extend(losses.sum(dim=1).tolist())
        counts.extend((targets != -100).sum(dim=1).tolist())
    return nll, counts
