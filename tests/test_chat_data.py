"""Chat rows: every check of OpenAI's data preparation guidance, role order, and per-line reporting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.data.chat import read_chat_file, validate_row

U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}
S = {"role": "system", "content": "be kind"}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["not", "an", "object"], "data_type"),
        ({"id": 1}, "missing_messages_list"),
        ({"messages": []}, "missing_messages_list"),
        ({"messages": [{"content": "x"}, A]}, "message_missing_key: message 1 has no 'role'"),
        ({"messages": [{"role": "user"}, A]}, "message_missing_key: message 1 has no 'content'"),
        ({"messages": [{**U, "mood": "happy"}, A]}, "message_unrecognized_key: message 1 has key 'mood'"),
        ({"messages": [{"role": "tool", "content": "x"}, A]}, "unrecognized_role: message 1 has role 'tool'"),
        ({"messages": [U, {"role": "assistant", "content": "  "}]}, "missing_content: message 2"),
        ({"messages": [U, {"role": "assistant", "content": None}]}, "missing_content: message 2"),
        ({"messages": [S, U]}, "example_missing_assistant_message"),
        ({"messages": [A, U, A]}, "role_order: message 1 is 'assistant'"),
        ({"messages": [U, U, A]}, "role_order: message 2 is 'user'"),
        ({"messages": [U, A, S, U, A]}, "role_order: a system message must come first"),
        ({"messages": [U, A, U]}, "role_order: the conversation must end with an assistant message"),
        ({"messages": [U, A], "extra": 1}, "unrecognised key 'extra'"),
        ({"messages": [U, {**A, "weight": 2}]}, "'weight' must be 0 or 1"),
        ({"prompt": "q", "completion": ""}, "missing_content: 'completion'"),
    ],
)
def test_each_check_names_its_reason(row: object, reason: str) -> None:
    messages, problem = validate_row(row)
    assert messages is None and problem is not None and reason in problem


def test_valid_rows_including_prompt_completion() -> None:
    assert validate_row({"messages": [S, U, A, U, {**A, "weight": 0}]})[1] is None
    messages, problem = validate_row({"prompt": "q?", "completion": "a."})
    assert problem is None and messages == [
        {"role": "user", "content": "q?"},
        {"role": "assistant", "content": "a."},
    ]


def test_file_reports_every_bad_line_and_keeps_the_rest(tmp_path: Path) -> None:
    good = json.dumps({"messages": [U, A]})
    lines = [
        good,
        "{oops",
        good,
        json.dumps({"messages": [U]}),
        "",
        json.dumps({"id": "x", "messages": [U, A]}),
        json.dumps({"id": "x", "messages": [U, A]}),
    ]
    path = tmp_path / "chat.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    examples, errors = read_chat_file(path, "chat.jsonl")
    assert [(e.line, e.reason.split(" ")[0]) for e in errors] == [
        (2, "not"),
        (4, "example_missing_assistant_message:"),
        (7, "id"),
        (8, "not"),
    ]
    assert str(errors[0]).startswith("chat.jsonl:2: not valid JSON")
    assert [e.id for e in examples] == ["chat.jsonl:1", "chat.jsonl:3", "x"]
    assert examples[0].prompt == [U] and examples[0].reference == "hello"
