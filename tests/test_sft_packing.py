"""Packing without cross-example attention: per-example losses with packing equal the unpacked ones.

The packed batch is exactly what training feeds the model (ChatCollator(packing=True)), run with
transformers' masked attention and with the per-conversation attention training uses; each
conversation's summed token loss is compared with the loss of that conversation run on its own.
A control run without restarting position ids shows that attention across examples would change
the losses by far more than the tolerance, so the equality is not vacuous.
"""

from __future__ import annotations

import pytest
import torch

from sft_tiny import conversation, make_model, make_tokenizer
from tunegate.data.chat import ChatExample
from tunegate.models.chat_template import template_of
from tunegate.train.sft_attention import packed_attention
from tunegate.train.sft_data import ChatCollator, tokenize_for_training


@pytest.fixture(autouse=True)
def _one_thread():
    # A 2-layer model is all overhead at 2 threads on a shared CPU; results do not depend on it.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rows(n: int):
    tokenizer = make_tokenizer()
    examples = [
        ChatExample(tuple(c["messages"]), c["id"], "train.jsonl", i + 1)
        for i, c in enumerate(conversation(i) for i in range(n))
    ]
    rows, _ = tokenize_for_training(examples, template_of(tokenizer), tokenizer, max_length=512)
    return tokenizer, rows


def _token_losses(model, batch) -> torch.Tensor:
    with torch.no_grad():
        kwargs = {k: batch[k] for k in ("input_ids", "position_ids", "attention_mask") if k in batch}
        logits = model(**kwargs, use_cache=False).logits
    labels = batch["labels"]
    # Next-token loss: position t predicts label t+1 (what the model's loss does internally).
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)),
        labels[:, 1:].reshape(-1),
        ignore_index=-100,
        reduction="none",
    )
    return losses.view(labels.size(0), -1)


def _per_example_packed(model, collator, features, lengths) -> list[float]:
    batch = collator(features)
    losses = _token_losses(model, batch)[0]
    out, start = [], 0
    for n in lengths:
        # Token t of the row is predicted at t-1; an example's first label is never predicted across the boundary.
        out.append(float(losses[max(start - 1, 0) : start + n - 1].sum()))
        start += n
    return out


@pytest.mark.parametrize("attention", ["sdpa", "eager", "per-conversation"])
def test_packed_losses_equal_unpacked(attention: str) -> None:
    tokenizer, rows = _rows(6)
    model = make_model(len(tokenizer), seed=3)
    # per-conversation: what training uses on a packed row (each conversation's attention alone)
    model.config._attn_implementation = packed_attention() if attention == "per-conversation" else attention
    model.eval()
    features = [
        {"input_ids": r.input_ids, "labels": r.labels, "example_index": i} for i, r in enumerate(rows)
    ]
    packed_collator = ChatCollator(pad_token_id=tokenizer.pad_token_id, packing=True)

    batch = packed_collator(features)
    assert batch["input_ids"].shape == (1, sum(len(r.input_ids) for r in rows))  # one row, no padding
    assert "attention_mask" not in batch
    assert batch["example_index"].tolist() == list(range(6))

    packed = _per_example_packed(model, packed_collator, features, [len(r.input_ids) for r in rows])
    alone = [float(_token_losses(model, packed_collator([f]))[0].sum()) for f in features]
    assert all(a > 0 for a in alone)
    for p, a in zip(packed, alone, strict=True):
        assert abs(p - a) <= 1e-5 * max(1.0, abs(a)), (p, a)

    # The padded (unpacked) batch gives the same per-example losses as well.
    padded = ChatCollator(pad_token_id=tokenizer.pad_token_id, packing=False)(features)
    padded_losses = _token_losses(model, padded).sum(dim=1).tolist()
    for p, a in zip(padded_losses, alone, strict=True):
        assert abs(p - a) <= 1e-5 * max(1.0, abs(a))

    # Control: one long sequence (positions never restart) lets tokens attend across examples.
    leaky = dict(batch)
    leaky["position_ids"] = torch.arange(batch["input_ids"].size(1))[None]
    leaked = _token_losses(model, leaky)[0]
    assert float(leaked.sum()) != pytest.approx(sum(alone), abs=1e-3)
