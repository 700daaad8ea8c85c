"""Packing: tokenized examples -> fixed-length rows of whole documents, and the step plan.

A row holds several whole examples back to back. Each example ("document") keeps its own
position ids (0, 1, 2, ... restarting at every document) and a document id; the attention mask
built from those ids lets a token see only earlier tokens of its own document, so a packed row
computes exactly what the examples would compute one by one. `targets[t]` is the token that
position t must predict (the next token of the same document) or -100 where no loss is taken:
the last token of a document, the prompt, and padding.

What this module deliberately does not do: split an example across rows (that would cut its
attention context and change its loss; examples longer than a row are truncated, and the data
check reports them), or tokenize chat templates beyond the three input forms of `to_token_example`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tunegate.errors import TrainError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenExample:
    """One tokenized example: ids and, per id, whether the model is trained to produce it."""

    input_ids: tuple[int, ...]
    labelled: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.input_ids)


def to_token_example(example: Any, tokenizer: Any = None, max_len: int | None = None) -> TokenExample:
    """Accepts a TokenExample, {"input_ids", "labels"} (-100 = not trained) or an object with those
    attributes (sft_data's TrainingRow), {"prompt", "completion"}
    (only the completion is trained), or {"messages": [...]} (only assistant turns are trained)."""
    if isinstance(example, TokenExample):
        ex = example
    elif isinstance(example, Mapping) and "input_ids" in example:
        ids = [int(i) for i in example["input_ids"]]
        labels = example.get("labels")
        lab = [True] * len(ids) if labels is None else [int(x) != IGNORE_INDEX for x in labels]
        ex = TokenExample(tuple(ids), tuple(lab))
    elif hasattr(example, "input_ids") and hasattr(example, "labels"):
        # Rows already tokenized elsewhere (tunegate.train.sft_data.TrainingRow).
        ids = [int(i) for i in example.input_ids]
        ex = TokenExample(tuple(ids), tuple(int(x) != IGNORE_INDEX for x in example.labels))
    elif isinstance(example, Mapping) and "prompt" in example and "completion" in example:
        _need_tokenizer(tokenizer, "prompt/completion")
        prompt = tokenizer(example["prompt"], add_special_tokens=True)["input_ids"]
        completion = tokenizer(example["completion"], add_special_tokens=False)["input_ids"]
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ids = list(prompt) + list(completion) + eos
        ex = TokenExample(tuple(ids), tuple([False] * len(prompt) + [True] * (len(ids) - len(prompt))))
    elif isinstance(example, Mapping) and "messages" in example:
        _need_tokenizer(tokenizer, "messages")
        ex = _chat_example(tokenizer, example["messages"])
    else:
        raise TrainError(
            "engine: an example must be a TokenExample or a mapping with input_ids, prompt+completion "
            f"or messages; got {type(example).__name__} with keys {sorted(example)[:5] if isinstance(example, Mapping) else '-'}"
        )
    if max_len is not None and len(ex) > max_len:
        ex = TokenExample(ex.input_ids[:max_len], ex.labelled[:max_len])
    return ex


def _need_tokenizer(tokenizer: Any, form: str) -> None:
    if tokenizer is None:
        raise TrainError(f"engine: {form} examples need a tokenizer; pass one to train_sft")


def _chat_example(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> TokenExample:
    # Tokenize growing prefixes: the tokens each assistant turn adds are the trained ones. This works
    # for any chat template whose rendering of a prefix is a prefix of the whole rendering.
    ids: list[int] = []
    labelled: list[bool] = []
    for i in range(len(messages)):
        rendered = tokenizer.apply_chat_template(list(messages[: i + 1]), tokenize=True)
        if isinstance(rendered, Mapping):
            rendered = rendered["input_ids"]
        new = list(rendered)[len(ids) :]
        ids.extend(new)
        labelled.extend([messages[i].get("role") == "assistant"] * len(new))
    return TokenExample(tuple(ids), tuple(labelled))


def pack_rows(lengths: Sequence[int], seq_len: int) -> list[list[int]]:
    """Best-fit decreasing: indices of examples per row, each row's total length <= seq_len.

    Longest first, each into the fullest row that still has room; this leaves a few percent of
    padding on chat-like length mixes where filling rows in order leaves 10-20%."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row index), sorted by room
    for i in order:
        n = lengths[i]
        if n > seq_len:
            raise TrainError(f"engine: example {i} has {n} tokens, more than the row length {seq_len}")
        pos = bisect.bisect_left(free, (n, -1))
        if pos < len(free):
            room, r = free.pop(pos)
            rows[r].append(i)
            bisect.insort(free, (room - n, r))
        else:
            rows.append([i])
            bisect.insort(free, (seq_len - n, len(rows) - 1))
    return rows


@dataclass
class PackedBatch:
    """A micro-batch of packed rows, as tensors of shape [rows, seq_len] (CPU until `.to`)."""

    input_ids: torch.Tensor
    targets: torch.Tensor
    position_ids: torch.Tensor
    doc_ids: torch.Tensor
    example_indices: list[list[int]]  # per row, the examples it holds, in order
    useful_tokens: int  # non-padding tokens
    labelled_tokens: int  # tokens that carry loss

    def to(self, device: torch.device | str) -> PackedBatch:
        move = {"device": device, "non_blocking": True}
        return PackedBatch(
            self.input_ids.to(**move),
            self.targets.to(**move),
            self.position_ids.to(**move),
            self.doc_ids.to(**move),
            self.example_indices,
            self.useful_tokens,
            self.labelled_tokens,
        )


def build_batch(
    examples: Sequence[TokenExample], rows: Sequence[Sequence[int]], seq_len: int, pad_id: int
) -> PackedBatch:
    """Tensors for the given rows. Padding forms one extra document per row, so it attends only to
    itself and never to real tokens (and no softmax row is empty)."""
    n = len(rows)
    input_ids = torch.full((n, seq_len), pad_id, dtype=torch.long)
    targets = torch.full((n, seq_len), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((n, seq_len), dtype=torch.long)
    doc_ids = torch.zeros((n, seq_len), dtype=torch.int32)
    useful = labelled = 0
    for r, row in enumerate(rows):
        start = 0
        for d, i in enumerate(row):
            ex = examples[i]
            ln = len(ex)
            ids = torch.tensor(ex.input_ids, dtype=torch.long)
            input_ids[r, start : start + ln] = ids
            position_ids[r, start : start + ln] = torch.arange(ln)
            doc_ids[r, start : start + ln] = d
            lab = torch.tensor(ex.labelled[1:], dtype=torch.bool)
            tgt = torch.where(lab, ids[1:], IGNORE_INDEX)
            targets[r, start : start + ln - 1] = tgt
            labelled += int(lab.sum())
            start += ln
        useful += start
        doc_ids[r, start:] = len(row)
        position_ids[r, start:] = torch.arange(seq_len - start)
    return PackedBatch(input_ids, targets, position_ids, doc_ids, [list(r) for r in rows], useful, labelled)


def plan_steps(
    lengths: Sequence[int],
    seq_len: int,
    rows_per_step: int,
    epochs: int = 1,
    seed: int = 0,
    shuffle: bool = True,
) -> list[list[list[int]]]:
    """Rows of example indices for each optimizer step.

    Each epoch shuffles the examples (seed + epoch), packs them, shuffles the rows (so steps are
    not ordered by length) and cuts them into steps of `rows_per_step` rows."""
    if rows_per_step < 1:
        raise TrainError("engine: rows_per_step must be at least 1")
    steps: list[list[list[int]]] = []
    for epoch in range(epochs):
        rng = random.Random(seed + epoch)
        order = list(range(len(lengths)))
        if shuffle:
            rng.shuffle(order)
        rows = [[order[j] for j in row] for row in pack_rows([lengths[i] for i in order], seq_len)]
        if shuffle:
            rng.shuffle(rows)
        steps.extend(rows[s : s + rows_per_step] for s in range(0, len(rows), rows_per_step))
    return steps


def micro_batches(
    step_rows: Sequence[list[int]], micro_batch_rows: int, rank: int = 0, world_size: int = 1
) -> list[list[list[int]]]:
    """This rank's share of a step (every world_size-th row), in micro-batches of exactly
    `micro_batch_rows` rows. Short micro-batches are filled with empty (all-padding) rows so every
    micro-batch has one shape (no recompilation) and every rank runs the same number of them
    (collectives must match across ranks)."""
    per_rank = -(-len(step_rows) // world_size)
    n_micro = max(1, -(-per_rank // micro_batch_rows))
    mine = list(step_rows[rank::world_size])
    mine += [[] for _ in range(n_micro * micro_batch_rows - len(mine))]
    return [mine[m * micro_batch_rows : (m + 1) * micro_batch_rows] for m in range(n_micro)]
