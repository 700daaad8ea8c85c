"""Readers: every malformed row becomes exactly one RowError with its true line; the rest are usable."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunegate.data import read_examples
from tunegate.errors import DataError

LABELS = ["billing", "bug", "praise"]

# kind -> (raw JSONL line bytes, substring the reason must contain)
JSONL_BAD = {
    "bad_json": (b'{"text": "half an object", "label": ', "bad JSON"),
    "not_object": (b'["a list", "bug"]', "not a JSON object"),
    "missing_text": (b'{"label": "bug"}', "missing text"),
    "null_text": (b'{"text": null, "label": "bug"}', "missing text"),
    "empty_text": (b'{"text": "", "label": "bug"}', "empty text"),
    "blank_text": (b'{"text": "  \\t ", "label": "bug"}', "empty text"),
    "missing_label": (b'{"text": "no label here"}', "missing label"),
    "empty_label": (b'{"text": "label is blank", "label": " "}', "missing label"),
    "unknown_label": (b'{"text": "what a label", "label": "spam"}', "unknown label 'spam'"),
    "text_not_string": (b'{"text": 42, "label": "bug"}', "not a string"),
    "label_float": (b'{"text": "float label", "label": 1.5}', "not a string or integer"),
    "label_bool": (b'{"text": "bool label", "label": true}', "not a string or integer"),
    "undecodable": ('{"text": "caf\u00e9 cr\u00e8me", "label": "bug"}'.encode("latin-1"), "not UTF-8"),
}

CSV_BAD = {
    "empty_text": (b",bug,web", "empty text"),
    "blank_text": (b'"   ",bug,web', "empty text"),
    "missing_label": (b"some words,,web", "missing label"),
    "unknown_label": (b"some words,spam,web", "unknown label 'spam'"),
    "too_many_fields": (b"some words,bug,web,extra", "4 fields where the header has 3"),
    "too_few_fields": (b"only text and label,bug", "2 fields where the header has 3"),
    "undecodable": ("caf\u00e9 cr\u00e8me,bug,web".encode("latin-1"), "not UTF-8"),
    "unbalanced_quote": (b'"this quote never closes,bug,web', "quote"),
}


def _good_text(rng: random.Random, i: int) -> str:
    words = ["invoice", "crash", "thanks", "login", "refund", "slow", "great", "error", "page", "team"]
    return f"row {i}: " + " ".join(rng.choices(words, k=rng.randint(3, 12)))


def _write_jsonl(path: Path, n_rows: int, n_bad: int, seed: int = 7) -> dict[int, str]:
    """n_rows rows of which n_bad are malformed (kinds cycled); blank lines sprinkled in. Returns line -> reason."""
    rng = random.Random(seed)
    bad_rows = set(rng.sample(range(n_rows), n_bad))
    kinds = list(JSONL_BAD)
    expected: dict[int, str] = {}
    lines: list[bytes] = []
    for i in range(n_rows):
        if i % 997 == 0:
            lines.append(b"")  # blank lines are not rows, but they count as file lines
        if i in bad_rows:
            raw, reason = JSONL_BAD[kinds[len(expected) % len(kinds)]]
            expected[len(lines) + 1] = reason
            lines.append(raw)
        else:
            record = {
                "text": _good_text(rng, i),
                "label": rng.choice(LABELS),
                "channel": rng.choice(["web", "app"]),
            }
            lines.append(json.dumps(record).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return expected


def _write_csv(path: Path, n_rows: int, n_bad: int, seed: int = 11) -> dict[int, str]:
    """Like _write_jsonl, with quoted newlines in some good rows so file lines differ from row numbers."""
    rng = random.Random(seed)
    bad_rows = set(rng.sample(range(n_rows), n_bad))
    kinds = list(CSV_BAD)
    expected: dict[int, str] = {}
    lines: list[bytes] = [b"text,label,channel"]
    for i in range(n_rows):
        if i in bad_rows:
            raw, reason = CSV_BAD[kinds[len(expected) % len(kinds)]]
            expected[sum(line.count(b"\n") + 1 for line in lines) + 1] = reason
            lines.append(raw)
        elif i % 50 == 0:
            # A quoted field holding a newline and a comma: one record over two file lines.
            lines.append(f'"{_good_text(rng, i)},\nsecond line",{rng.choice(LABELS)},app'.encode())
        else:
            lines.append(f"{_good_text(rng, i)},{rng.choice(LABELS)},web".encode())
    path.write_bytes(b"\n".join(lines).replace(b"\n", b"\r\n") + b"\r\n")
    return expected


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_ten_thousand_rows_with_fifty_malformed(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"train.{fmt}"
    expected = (_write_jsonl if fmt == "jsonl" else _write_csv)(path, 10_000, 50)

    result = read_examples(path, labels=LABELS)

    assert result.total_rows == 10_000
    assert len(result.examples) == 9_950
    assert len(result.errors) == 50
    assert {e.line: e.file for e in result.errors} == {line: str(path) for line in expected}
    for error in result.errors:
        assert expected[error.line] in error.reason, (error, expected[error.line])
    # Usable rows keep their true lines too: every good row's text starts with "row N:" as written.
    file_lines = path.read_bytes().split(b"\r\n" if fmt == "csv" else b"\n")
    for example in result.examples[::500]:
        assert example.text.split(":")[0].encode() in file_lines[example.line - 1]
    assert {e.label for e in result.examples} == set(LABELS)


def test_jsonl_other_fields_are_metadata_and_int_labels_become_strings(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "hello", "label": 3, "lang": "en", "score": 0.5}\n', encoding="utf-8")
    (example,) = read_examples(path).examples
    assert example.label == "3"
    assert example.metadata == {"lang": "en", "score": 0.5}
    assert (example.source, example.line) == (str(path), 1)


def test_undecodable_line_does_not_kill_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b'{"text": "fine", "label": "a"}\n{"text": "\xff\xfe bad", "label": "a"}\n{"text": "ok", "label": "b"}\n'
    )
    result = read_examples(path)
    assert [e.text for e in result.examples] == ["fine", "ok"]
    assert [(e.line, "not UTF-8" in e.reason) for e in result.errors] == [(2, True)]


def test_csv_field_names_from_spec_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b'\xef\xbb\xbfbody,category\n"multi\nline",x\nplain,y\n')
    result = read_examples(path, text_field="body", label_field="category")
    assert [(e.text, e.label, e.line) for e in result.examples] == [
        ("multi\nline", "x", 2),
        ("plain", "y", 4),
    ]


def test_csv_unbalanced_quote_loses_only_its_own_row(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"never closed,a\nsecond,b\nthird,a\n"quoted, fine",b\n', encoding="utf-8")
    result = read_examples(path)
    assert [(e.line, "quote" in e.reason) for e in result.errors] == [(2, True)]
    assert [(e.text, e.line) for e in result.examples] == [("second", 3), ("third", 4), ("quoted, fine", 5)]
    path.write_text('text,label\nfirst,a\n"open at the end,b\n', encoding="utf-8")
    result = read_examples(path)
    assert [e.text for e in result.examples] == ["first"] and [e.line for e in result.errors] == [3]


def test_csv_without_the_text_column_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("body,label\nhello,a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.csv:1: no column 'text'"):
        read_examples(path)


def test_parquet_rows_are_numbered_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    table = pa.table(
        {
            "text": ["first", None, "third", "  "],
            "label": ["a", "b", "zzz", "a"],
            "lang": ["en", "de", "fr", "en"],
        }
    )
    pq.write_table(table, path)
    result = read_examples(path, labels=["a", "b"])
    assert [(e.text, e.line, e.metadata) for e in result.examples] == [("first", 1, {"lang": "en"})]
    assert [(e.line, e.reason.split(" ")[0]) for e in result.errors] == [
        (2, "missing"),
        (3, "unknown"),
        (4, "empty"),
    ]
    assert result.total_rows == 4


def test_unknown_suffix_and_missing_file_raise_data_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "d.xlsx").write_bytes(b"")
    with pytest.raises(DataError, match=r"d\.xlsx: unknown data file type"):
        read_examples(tmp_path / "d.xlsx")
    with pytest.raises(DataError, match=r"nope\.jsonl: cannot read"):
        read_examples(tmp_path / "nope.jsonl")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"broken\.parquet: cannot read"):
        read_examples(tmp_path / "broken.parquet")
