"""Packing and planning for the training engine: pure functions, no model."""

from __future__ import annotations

import math
import random
import types

import pytest

from tunegate.errors import TrainError
from tunegate.train.engine import ModelShape, TokenExample, build_batch, pack_rows, plan_memory, plan_steps
from tunegate.train.engine.packing import IGNORE_INDEX, micro_batches, to_token_example
from tunegate.train.engine.planner import GIB, replan_from_probe


def lognormal_lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [max(16, min(2048, int(rng.lognormvariate(math.log(512), 0.8)))) for _ in range(n)]


def test_best_fit_packs_every_example_once_within_the_row_and_with_little_padding() -> None:
    lengths = lognormal_lengths(3000)
    rows = pack_rows(lengths, 2048)
    placed = sorted(i for row in rows for i in row)
    assert placed == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 2048 for row in rows)
    padding = 1 - sum(lengths) / (len(rows) * 2048)
    assert padding < 0.03, padding


def test_an_example_longer_than_a_row_is_refused() -> None:
    with pytest.raises(TrainError, match="example 1 has 300 tokens"):
        pack_rows([10, 300], 256)


def test_batch_restarts_positions_and_masks_document_ends_prompts_and_padding() -> None:
    a = TokenExample((5, 6, 7, 8), (False, False, True, True))
    b = TokenExample((9, 10, 11), (False, True, True))
    batch = build_batch([a, b], [[0, 1]], seq_len=10, pad_id=0)
    assert batch.input_ids[0].tolist() == [5, 6, 7, 8, 9, 10, 11, 0, 0, 0]
    assert batch.position_ids[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1, 2]
    assert batch.doc_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Position t predicts token t+1 of its own document, only where that token is trained.
    assert batch.targets[0].tolist() == [IGNORE_INDEX, 7, 8, IGNORE_INDEX, 10, 11] + [IGNORE_INDEX] * 4
    assert batch.useful_tokens == 7 and batch.labelled_tokens == 4


def test_steps_are_deterministic_cover_every_example_per_epoch_and_change_order_between_epochs() -> None:
    lengths = lognormal_lengths(400, seed=1)
    steps = plan_steps(lengths, 2048, rows_per_step=4, epochs=2, seed=3)
    assert steps == plan_steps(lengths, 2048, rows_per_step=4, epochs=2, seed=3)
    flat = [i for step in steps for row in step for i in row]
    assert sorted(flat) == sorted(list(range(400)) * 2)
    half = len(flat) // 2
    assert flat[:half] != flat[half:]
    assert all(len(step) <= 4 for step in steps)


def test_micro_batches_split_rows_across_ranks_with_equal_counts_and_fixed_shape() -> None:
    rows = [[i] for i in range(5)]
    per_rank = [micro_batches(rows, 2, rank=r, world_size=2) for r in range(2)]
    assert [len(m) for m in per_rank] == [2, 2]  # same number of micro-batches on each rank
    assert all(len(mb) == 2 for m in per_rank for mb in m)  # padded with empty rows
    real = sorted(i for m in per_rank for mb in m for row in mb for i in row)
    assert real == [0, 1, 2, 3, 4]


def test_token_example_forms() -> None:
    ex = to_token_example({"input_ids": [1, 2, 3], "labels": [-100, 2, 3]})
    assert ex.labelled == (False, True, True)

    row = types.SimpleNamespace(input_ids=[4, 5, 6], labels=[-100, -100, 6])  # sft_data.TrainingRow's shape
    assert to_token_example(row).labelled == (False, False, True)
    assert to_token_example(ex, max_len=2).input_ids == (1, 2)
    with pytest.raises(TrainError, match="need a tokenizer"):
        to_token_example({"prompt": "hi", "completion": "there"})
    with pytest.raises(TrainError, match="must be a TokenExample"):
        to_token_example(["not", "an", "example"])


LLAMA_8B = ModelShape(
    n_layers=32,
    hidden=4096,
    n_heads=32,
    n_kv_heads=8,
    head_dim=128,
    intermediate=14336,
    vocab=128256,
    tied=False,
)


def test_planner_prefers_no_checkpointing_and_the_target_micro_batch_when_memory_allows() -> None:
    plan = plan_memory(LLAMA_8B, 16, 2048, available_bytes=120 * GIB, labelled_fraction=0.6)
    assert plan.micro_batch_rows == 4 and plan.checkpoint_layers == 0 and plan.fused_loss
    assert "no checkpointing" in plan.explain()


def test_planner_shrinks_the_micro_batch_then_checkpoints_as_memory_shrinks() -> None:
    fewer_rows = plan_memory(LLAMA_8B, 16, 2048, available_bytes=20 * GIB, labelled_fraction=0.6)
    assert fewer_rows.checkpoint_layers == 0 and fewer_rows.micro_batch_rows < 4
    tight = plan_memory(LLAMA_8B, 16, 8192, available_bytes=20 * GIB, labelled_fraction=0.6)
    assert 0 < tight.checkpoint_layers <= 32
    assert tight.estimated_peak_bytes <= tight.budget_bytes
    assert "checkpointing" in tight.explain()


def test_full_finetuning_counts_optimizer_state_per_gpu() -> None:
    one = plan_memory(LLAMA_8B, None, 2048, available_bytes=130 * GIB, world_size=1)
    four = plan_memory(LLAMA_8B, None, 2048, available_bytes=130 * GIB, world_size=4)
    assert four.estimated_peak_bytes < one.estimated_peak_bytes


def test_probe_over_budget_replans_with_less() -> None:
    plan = plan_memory(
        LLAMA_8B, 16, 2048, available_bytes=60 * GIB, labelled_fraction=0.6, resident_bytes=16 * GIB
    )
    same = replan_from_probe(plan, plan.estimated_peak_bytes + 16 * GIB, LLAMA_8B, 16, 2048, 0.6)
    assert same is plan
    worse = replan_from_probe(plan, 3 * plan.budget_bytes + 16 * GIB, LLAMA_8B, 16, 2048, 0.6)
    assert (worse.micro_batch_rows, -worse.checkpoint_layers) < (
        plan.micro_batch_rows,
        -plan.checkpoint_layers,
    )
    assert "replanned" in worse.explain()


def test_plain_loss_when_logits_are_small() -> None:
    tiny = ModelShape(
        n_layers=2, hidden=64, n_heads=4, n_kv_heads=2, head_dim=16, intermediate=128, vocab=128, tied=False
    )
    plan = plan_memory(tiny, 4, 256, available_bytes=10 * GIB)
    assert not plan.fused_loss


def test_doc_spans_mark_every_document_start_including_padding_and_row_starts() -> None:
    import torch

    from tunegate.train.engine.layer import doc_spans

    a = TokenExample((5, 6, 7, 8), (False, False, True, True))
    b = TokenExample((9, 10, 11), (False, True, True))
    full = TokenExample(tuple(range(1, 11)), (True,) * 10)
    # Row 0: a, b, padding; row 1: one example filling the row; row 2: empty (all padding).
    batch = build_batch([a, b, full], [[0, 1], [2], []], seq_len=10, pad_id=0)
    spans = doc_spans(batch.doc_ids)
    assert spans.cu_seqlens.dtype == torch.int32
    assert spans.cu_seqlens.tolist() == [0, 4, 7, 10, 20, 30]
    assert spans.max_len == 10


def test_attention_choice_and_where_varlen_is_refused() -> None:
    import torch

    from tunegate.train.engine import EngineConfig
    from tunegate.train.engine.loop import _attention_choice

    auto, varlen = EngineConfig(), EngineConfig(attention="varlen")
    assert _attention_choice(auto, False, torch.bfloat16, True) == "sdpa"  # CPU
    assert _attention_choice(auto, True, torch.bfloat16, True) == "flex"  # measured faster on an H200
    assert _attention_choice(varlen, True, torch.bfloat16, True) == "varlen"
    assert _attention_choice(varlen, False, torch.float32, False) == "varlen"  # CPU: per-document loop
    with pytest.raises(TrainError, match=r"PyTorch 2\.10"):
        _attention_choice(varlen, True, torch.bfloat16, False)
    with pytest.raises(TrainError, match="bf16 or fp16"):
        _attention_choice(varlen, True, torch.float32, True)
    with pytest.raises(TrainError, match="attention='dense'"):
        EngineConfig(attention="dense")  # type: ignore[arg-type]
