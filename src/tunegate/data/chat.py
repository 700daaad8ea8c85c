"""Chat training data: read OpenAI-style JSONL conversations, validating every row on its own.

Accepted rows, one JSON object per line:

    {"messages": [{"role": "system"|"user"|"assistant", "content": "...", "weight": 0|1}, ...],
     "id": "optional", "metadata": {...optional}}
    {"prompt": "...", "completion": "...", "id": ..., "metadata": ...}      (one user turn, one answer)

Each row gets every check of OpenAI's fine-tuning data preparation guidance (not an object, missing
messages list, message missing keys, unrecognised keys, unrecognised roles, missing content, no
assistant message) plus the order of roles (an optional system message first, then user and
assistant alternating, ending with the assistant). A row that fails is a RowError naming file, line
and reason; the other rows are returned and train. Nothing here crashes on a malformed row.

Deliberately not here: token counts and the report (chat_check.py), duplicates / leakage / PII
(reused from duplicates.py, near_duplicates.py and pii.py through `as_text_example`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunegate.data.examples import Example, RowError
from tunegate.errors import DataError

ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight"})
ROW_KEYS = frozenset({"messages", "prompt", "completion", "id", "metadata"})


@dataclass(frozen=True)
class ChatExample:
    """One usable conversation. `id` is the row's own id, or `file:line` when it has none."""

    messages: tuple[dict[str, Any], ...]
    id: str
    source: str = ""
    line: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> list[dict[str, Any]]:
        """Every message before the last assistant answer: what a model is asked at evaluation."""
        return [dict(m) for m in self.messages[:-1]]

    @property
    def reference(self) -> str:
        """The last assistant answer: what evaluation compares a generated answer with."""
        return str(self.messages[-1]["content"])


def as_text_example(chat: ChatExample) -> Example:
    """The conversation as one text, so the classifier path's duplicate, leakage and PII checks apply."""
    text = "\n".join(f"{m['role']}: {m['content']}" for m in chat.messages)
    return Example(text=text, label="", metadata=dict(chat.metadata), source=chat.source, line=chat.line)


def validate_row(row: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(messages, None) for a usable row, (None, reason) otherwise. Pure; the reasons name the key."""
    if not isinstance(row, dict):
        return None, f"data_type: a row must be a JSON object, got {type(row).__name__}"
    unknown = sorted(set(row) - ROW_KEYS)
    if unknown:
        return (
            None,
            f"unrecognised key {unknown[0]!r} (a row holds messages, or prompt and completion; id, metadata)",
        )
    if "metadata" in row and not isinstance(row["metadata"], dict):
        return None, "metadata must be an object"
    if "messages" not in row:
        if "prompt" in row or "completion" in row:
            return _prompt_completion(row)
        return None, "missing_messages_list: no 'messages' list (and no prompt/completion pair)"
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        return None, "missing_messages_list: 'messages' must be a non-empty list"
    for i, message in enumerate(messages, start=1):
        reason = _message_problem(message, i)
        if reason:
            return None, reason
    if not any(m["role"] == "assistant" for m in messages):
        return None, "example_missing_assistant_message: no message with role 'assistant'"
    reason = _role_order_problem([m["role"] for m in messages])
    if reason:
        return None, reason
    return [dict(m) for m in messages], None


def _prompt_completion(row: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
    prompt, completion = row.get("prompt"), row.get("completion")
    if not isinstance(prompt, str) or not prompt.strip():
        return None, "missing_content: 'prompt' must be a non-empty string"
    if not isinstance(completion, str) or not completion.strip():
        return None, "missing_content: 'completion' must be a non-empty string"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], None


def _message_problem(message: Any, index: int) -> str | None:
    where = f"message {index}"
    if not isinstance(message, dict):
        return f"data_type: {where} must be an object, got {type(message).__name__}"
    for key in ("role", "content"):
        if key not in message:
            return f"message_missing_key: {where} has no {key!r}"
    unknown = sorted(set(message) - MESSAGE_KEYS)
    if unknown:
        return (
            f"message_unrecognized_key: {where} has key {unknown[0]!r} (known: role, content, name, weight)"
        )
    if message["role"] not in ROLES:
        return f"unrecognized_role: {where} has role {message['role']!r} (known: {', '.join(ROLES)})"
    content = message["content"]
    if not isinstance(content, str) or not content.strip():
        return f"missing_content: {where} ({message['role']}) has no text content"
    if "weight" in message and (message["role"] != "assistant" or message["weight"] not in (0, 1)):
        return f"{where}: 'weight' must be 0 or 1 and only on assistant messages"
    return None


def _role_order_problem(roles: list[str]) -> str | None:
    """An optional system message, then user/assistant alternating, starting with user, ending with assistant."""
    turns = roles[1:] if roles[0] == "system" else roles
    if "system" in turns:
        return (
            f"role_order: a system message must come first (found at message {roles.index('system', 1) + 1})"
        )
    for i, role in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            offset = len(roles) - len(turns)
            return f"role_order: message {i + 1 + offset} is {role!r} where {expected!r} was expected"
    if turns[-1] != "assistant":
        return "role_order: the conversation must end with an assistant message"
    return None


def read_chat_file(path: Path, display: str | None = None) -> tuple[list[ChatExample], list[RowError]]:
    """Every usable conversation of a JSONL file, and a RowError for every row that is not usable."""
    name = display or str(path)
    if not path.is_file():
        raise DataError(f"{name}: no such file")
    examples: list[ChatExample] = []
    errors: list[RowError] = []
    seen_ids: set[str] = set()
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                errors.append(RowError(name, line_no, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
                continue
            except json.JSONDecodeError as exc:
                errors.append(RowError(name, line_no, f"not valid JSON ({exc.msg}, column {exc.colno})"))
                continue
            messages, reason = validate_row(row)
            if messages is None:
                errors.append(RowError(name, line_no, reason or "unusable row"))
                continue
            row_id = str(row["id"]) if row.get("id") is not None else f"{name}:{line_no}"
            if row_id in seen_ids:
                errors.append(RowError(name, line_no, f"id {row_id!r} is used by an earlier row"))
                continue
            seen_ids.add(row_id)
            examples.append(
                ChatExample(tuple(messages), row_id, name, line_no, dict(row.get("metadata") or {}))
            )
    return examples, errors
