"""The chat template: assistant-only labels, the end-of-turn check (must-show 4), one template object.

- A template that emits the end-of-turn token at the start of the *next* message leaves the last
  assistant turn without it: training refuses with a TrainError naming the template and the token,
  and the data check reports it as a blocker before any compute is spent.
- Labels cover exactly the assistant's tokens, the end-of-turn token included.
- The template training used is the one stored in the artifact and the one evaluation and serving
  prompt with: same sha256, and the prompt tokens a ChatModel generates from are exactly the
  prefix of the training tokens (tests/test_sft_pipeline.py checks the registered artifact).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sft_tiny import CHATML, EOT_IN_NEXT_TURN, conversation, make_model, make_tokenizer
from tunegate.data.chat import ChatExample
from tunegate.errors import TrainError
from tunegate.models.causal_lm import ChatModel
from tunegate.models.chat_template import encode_conversation, template_of
from tunegate.train.sft_data import IGNORE, tokenize_for_training


def _examples(n: int = 3) -> list[ChatExample]:
    return [ChatExample(tuple(conversation(i)["messages"]), f"c{i}", "train.jsonl", i + 1) for i in range(n)]


def test_end_of_turn_outside_the_assistant_turn_is_refused() -> None:
    tokenizer = make_tokenizer(EOT_IN_NEXT_TURN)
    template = template_of(tokenizer, name="chat template of my-base")
    with pytest.raises(TrainError) as caught:
        tokenize_for_training(_examples(), template, tokenizer, max_length=512)
    message = str(caught.value)
    assert "chat template of my-base" in message and template.sha256[:12] in message
    assert "'<|im_end|>'" in message and "train.jsonl:1" in message and "never learns to stop" in message


def test_the_same_data_trains_under_a_template_that_closes_turns() -> None:
    tokenizer = make_tokenizer(CHATML)
    rows, notes = tokenize_for_training(_examples(), template_of(tokenizer), tokenizer, max_length=512)
    assert len(rows) == 3 and not notes


def test_labels_are_exactly_the_assistant_tokens_with_end_of_turn() -> None:
    tokenizer = make_tokenizer(CHATML)
    template = template_of(tokenizer)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there."},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye.", "weight": 0},
        {"role": "user", "content": "Really bye"},
        {"role": "assistant", "content": "See you."},
    ]
    (row,), _ = tokenize_for_training([ChatExample(tuple(messages), "x", "f", 1)], template, tokenizer, 512)
    trained = tokenizer.decode([t for t in row.labels if t != IGNORE])
    # Weight-0 answers are context, not targets; each trained answer ends with the end-of-turn token.
    assert trained == "Hello there.<|im_end|>See you.<|im_end|>"
    assert row.labels[: len(row.labels) - 1].count(IGNORE) > 0


def test_truncation_keeps_the_start_and_skips_rows_left_without_targets() -> None:
    tokenizer = make_tokenizer(CHATML)
    template = template_of(tokenizer)
    long_answer = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "word " * 100}]
    examples = [ChatExample(tuple(long_answer), "long", "f", 1), _examples(1)[0]]
    prompt_len = len(template.prompt_ids(tokenizer, long_answer[:1]))
    rows, notes = tokenize_for_training(examples, template, tokenizer, max_length=prompt_len + 10)
    by_id = {r.example_id: r for r in rows}
    assert by_id["long"].truncated and len(by_id["long"].input_ids) == prompt_len + 10
    assert by_id["long"].trained_tokens == 10  # the answer's first tokens survive, the rest is cut
    # A question longer than max_length leaves nothing to learn: that row is skipped and named.
    long_question = [{"role": "user", "content": "why " * 100}, {"role": "assistant", "content": "Because."}]
    examples = [ChatExample(tuple(long_question), "lq", "f", 7), _examples(1)[0]]
    rows, notes = tokenize_for_training(examples, template, tokenizer, max_length=200)
    assert [r.example_id for r in rows] == ["c0"] and any("f:7" in n and "skipped" in n for n in notes)


def test_generation_prompt_is_a_prefix_of_the_training_tokens() -> None:
    tokenizer = make_tokenizer(CHATML)
    template = template_of(tokenizer)
    messages = conversation(5)["messages"]
    encoded = encode_conversation(template, tokenizer, messages)
    chat = ChatModel(make_model(len(tokenizer)), tokenizer, template)
    prompt = chat.template.prompt_ids(tokenizer, messages[:-1])
    assert encoded.input_ids[: len(prompt)] == prompt
    assert encoded.token_turns[len(prompt)] == len(messages) - 1  # the answer starts right after the prompt
    assert chat.template is template  # the object given is the object used


def test_data_check_blocks_a_template_that_leaves_end_of_turn_untrained(tmp_path: Path) -> None:
    from sft_tiny import save_tiny_base, write_chat_jsonl
    from tunegate.data.chat_check import check_chat_data
    from tunegate.spec.load import load_spec

    save_tiny_base(tmp_path / "base", chat_template=EOT_IN_NEXT_TURN)
    write_chat_jsonl(tmp_path / "train.jsonl", [conversation(i) for i in range(12)])
    write_chat_jsonl(tmp_path / "test.jsonl", [conversation(i) for i in range(100, 104)])
    (tmp_path / "tunegate.yaml").write_text(
        "name: t\ntask: sft\nbase_model: base\ndata: {train: train.jsonl, test: test.jsonl, pii: false}\n"
    )
    report = check_chat_data(load_spec(tmp_path), tmp_path / "cache")
    assert report.template_problems and any("end-of-turn" in b for b in report.blockers)
