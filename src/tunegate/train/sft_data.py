"""Conversations -> training rows: labels on the assistant's tokens only, and the batches that feed them.

Loss on assistant tokens only: the label of every token outside an assistant turn (system, user,
template scaffolding, an assistant turn with `weight: 0`) is -100. The end-of-turn token of each
trained assistant turn must be among the labels, or the model never learns to stop answering: this
is checked on the tokenized data and refused with a TrainError naming the template and the token.

Packing: `ChatCollator(packing=True)` lays a batch's conversations end to end in one row with
position ids restarting at 0 for each; it adds no attention mask, so transformers builds a
block-diagonal causal mask from the position ids (masking_utils.find_packed_sequence_indices) and no
token attends across conversations. The flattening is TRL's DataCollatorForLanguageModeling
(padding_free); this module adds the example index so the trainer can record which conversations
each step consumed. tests/test_sft_packing.py shows per-example losses equal the unpacked ones.

We tokenize ourselves instead of letting SFTTrainer do it, because TRL's assistant-only masking needs
a template with `{% generation %}` markers, which SmolLM2's (and most) templates do not have, and
patching the template would make the trained template differ from the served one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunegate.data.chat import ChatExample
from tunegate.errors import TrainError
from tunegate.models.chat_template import ChatTemplate, encode_conversation, turns_without_end_of_turn

IGNORE = -100


@dataclass(frozen=True)
class TrainingRow:
    """One tokenized conversation: `labels` is -100 wherever the loss does not look."""

    example_id: str
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def tokenize_for_training(
    examples: Sequence[ChatExample], template: ChatTemplate, tokenizer: Any, max_length: int
) -> tuple[list[TrainingRow], list[str]]:
    """(rows, notes). Raises TrainError when the template leaves the end-of-turn token untrained."""
    eot_id = template.end_of_turn_id(tokenizer)
    rows: list[TrainingRow] = []
    notes: list[str] = []
    for example in examples:
        messages = [dict(m) for m in example.messages]
        encoded = encode_conversation(template, tokenizer, messages)
        trained_turns = {
            i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1) != 0
        }
        untrained = turns_without_end_of_turn(encoded, messages, eot_id)
        if untrained:
            last = encoded.turn_last_ids.get(untrained[0])
            shown = "nothing" if last is None else repr(tokenizer.decode([last]))
            raise TrainError(
                f"{template.name} (sha256 {template.sha256[:12]}) does not put the end-of-turn token "
                f"{template.end_of_turn!r} inside the assistant's turn: in {example.source}:{example.line} "
                f"assistant message {untrained[0] + 1} ends with {shown}. A model trained on it never learns "
                f"to stop. Use a template that closes each assistant turn with {template.end_of_turn!r}, or "
                f"name the token it does use in sft.end_of_turn_token."
            )
        labels = [
            token if turn in trained_turns else IGNORE
            for token, turn in zip(encoded.input_ids, encoded.token_turns, strict=True)
        ]
        ids = encoded.input_ids
        truncated = len(ids) > max_length
        if truncated:  # keep the start: the system prompt and the question are what the answer depends on
            ids, labels = ids[:max_length], labels[:max_length]
        if all(label == IGNORE for label in labels):
            notes.append(
                f"{example.source}:{example.line}: no assistant token left within {max_length} tokens; skipped"
            )
            continue
        rows.append(TrainingRow(example.id, list(ids), labels, truncated))
    if not rows:
        raise TrainError("no conversation has an assistant token to train on")
    return rows, notes


def split_validation(
    examples: Sequence[ChatExample], fraction: float, seed: int
) -> tuple[list[ChatExample], list[ChatExample]]:
    """(train, validation) by a seeded shuffle of the ids; the validation set only reports a loss."""
    if fraction <= 0 or len(examples) < 10:
        return list(examples), []
    ids = sorted(e.id for e in examples)
    random.Random(seed).shuffle(ids)
    held = set(ids[: max(1, round(len(ids) * fraction))])
    return [e for e in examples if e.id not in held], [e for e in examples if e.id in held]


def as_dataset(rows: Sequence[TrainingRow]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "input_ids": [r.input_ids for r in rows],
            "labels": [r.labels for r in rows],
            "example_index": list(range(len(rows))),
        }
    )


@dataclass
class ChatCollator:
    """Batches of TrainingRows: packed into one row without cross-attention, or padded with a mask."""

    pad_token_id: int
    packing: bool

    def __post_init__(self) -> None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self._inner = DataCollatorForLanguageModeling(
            pad_token_id=self.pad_token_id, padding_free=self.packing
        )

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self._inner([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features])
        if self.packing:
            # Only what the CPU attention paths read: the mask comes from position_ids alone.
            batch = {k: batch[k] for k in ("input_ids", "labels", "position_ids")}
        batch["example_index"] = torch.tensor([int(f["example_index"]) for f in features])
        return batch
