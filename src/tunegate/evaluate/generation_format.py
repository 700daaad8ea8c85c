"""Format validity: when the spec declares a JSON schema, every answer must be a JSON document valid under it.

An answer passes when it parses as JSON (after removing a surrounding ``` fence, which chat models
add out of habit and every JSON consumer strips) and validates under the schema with the
`jsonschema` library (the schema's own declared draft). The reason an answer fails is kept, so
the report can say "missing property 'ticket_id'", not only "invalid".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import EvalError

_FENCE = "```"


@dataclass(frozen=True)
class FormatReport:
    valid: bool
    reason: str = ""


def load_schema(path: Path) -> dict[str, Any]:
    from jsonschema import SchemaError, validators

    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalError(f"generation.json_schema: cannot read {path}: {exc}") from exc
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise EvalError(f"generation.json_schema: {path} is not a valid JSON schema: {exc.message}") from exc
    return schema


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith(_FENCE) and text.endswith(_FENCE) and len(text) > 6:
        inner = text[3:-3]
        return inner.split("\n", 1)[1] if inner.startswith(("json\n", "JSON\n")) else inner
    return text


def format_reports(answers: Sequence[str], schema: dict[str, Any]) -> list[FormatReport]:
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema)
    reports = []
    for answer in answers:
        try:
            document = json.loads(_strip_fence(answer))
        except json.JSONDecodeError as exc:
            reports.append(FormatReport(False, f"not JSON: {exc.msg} at column {exc.colno}"))
            continue
        error = next(iter(validator.iter_errors(document)), None)
        reports.append(FormatReport(error is None, "" if error is None else error.message))
    return reports
