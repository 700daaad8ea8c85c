"""Read a JSONL, CSV/TSV or Parquet file into usable `Example`s and one `RowError` per bad row.

Invariant: every non-blank row of the file ends up in exactly one of `examples` or `errors`, so
`len(examples) + len(errors) == total_rows`. A malformed row never stops the read and never vanishes.
Blank lines are not rows (a trailing newline is not a row either).

Line numbers are true 1-based file lines for JSONL and CSV (a CSV record that spans lines through a
quoted newline is numbered by its first line; the header is line 1) and 1-based row numbers for
Parquet, which has no lines.

Bytes are decoded per line, not per file, so one line of Latin-1 in a UTF-8 file is one row error and
not a dead file. CSV goes through the standard `csv` module fed one decoded line at a time (invalid
bytes kept as surrogates so the record structure survives), which is what lets records keep their
true file lines. Parquet goes through pyarrow.

What this module does not do: decide whether the errors are too many (see `verdict`), or look at
what the texts say (see the checks).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunegate.data.examples import Example, RowError
from tunegate.errors import DataError

SUFFIXES = (".jsonl", ".ndjson", ".csv", ".tsv", ".parquet")
_BOM = b"\xef\xbb\xbf"

# Called as on_progress(done, total) while reading; the unit is bytes for text files, rows for Parquet.
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class ReadResult:
    """What one file gave: the usable rows, the rows that could not be used, and how many rows there were."""

    path: Path
    examples: list[Example] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    total_rows: int = 0

    @property
    def error_fraction(self) -> float:
        return len(self.errors) / self.total_rows if self.total_rows else 0.0


def read_examples(
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "label",
    labels: list[str] | None = None,
    on_progress: ProgressFn | None = None,
) -> ReadResult:
    """Read a labelled file, the format chosen by suffix. Raises DataError if it can't be read at all."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unknown data file type {suffix or '(no suffix)'!r}; use one of {', '.join(SUFFIXES)}"
        )
    rows = _RowChecker(str(path), text_field, label_field, labels)
    if suffix == ".parquet":
        _read_parquet(path, rows, on_progress)
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read the data file ({exc.strerror or exc})") from exc
        if suffix in (".csv", ".tsv"):
            _read_csv(data, rows, delimiter="\t" if suffix == ".tsv" else ",", on_progress=on_progress)
        else:
            _read_jsonl(data, rows, on_progress)
    return ReadResult(path=path, examples=rows.examples, errors=rows.errors, total_rows=rows.total)


class _RowChecker:
    """Turns one raw record into an Example or a RowError: the validation shared by every format."""

    def __init__(self, file: str, text_field: str, label_field: str, labels: list[str] | None) -> None:
        self.file, self.text_field, self.label_field = file, text_field, label_field
        self.allowed = None if labels is None else set(labels)
        self.allowed_text = "" if labels is None else ", ".join(labels)
        self.examples: list[Example] = []
        self.errors: list[RowError] = []
        self.total = 0

    def error(self, line: int, reason: str) -> None:
        self.total += 1
        self.errors.append(RowError(self.file, line, reason))

    def record(self, line: int, record: dict[str, Any]) -> None:
        reason = self._problem(record)
        if reason:
            self.error(line, reason)
            return
        self.total += 1
        label = record[self.label_field]
        metadata = {k: v for k, v in record.items() if k not in (self.text_field, self.label_field)}
        self.examples.append(
            Example(
                text=record[self.text_field], label=str(label), metadata=metadata, source=self.file, line=line
            )
        )

    def _problem(self, record: dict[str, Any]) -> str | None:
        """The first thing wrong with the record, or None. One reason per row, text before label."""
        text, label = record.get(self.text_field), record.get(self.label_field)
        if text is None:
            return f"missing text (field {self.text_field!r})"
        if not isinstance(text, str):
            return f"text field {self.text_field!r} is {_type_name(text)}, not a string"
        if not text.strip():
            return f"empty text (field {self.text_field!r} is blank)"
        if label is None or (isinstance(label, str) and not label.strip()):
            return f"missing label (field {self.label_field!r})"
        # bool is an int subclass in Python, but a true/false label is almost always a mistake.
        if isinstance(label, bool) or not isinstance(label, str | int):
            return f"label field {self.label_field!r} is {_type_name(label)}, not a string or integer"
        if self.allowed is not None and str(label) not in self.allowed:
            return f"unknown label {str(label)!r} (allowed: {self.allowed_text})"
        return None


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "an object"}
    return names.get(type(value), f"a {type(value).__name__}")


def _lines(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(1-based line number, end byte offset, raw line with its newline) for every line of the file."""
    start, number = 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end == -1 else end + 1
        number += 1
        yield number, end, data[start:end]
        start = end


def _decode(raw: bytes, line: int) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason). The BOM of line 1 is dropped: Excel writes one."""
    if line == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start} of the line)"


def _read_jsonl(data: bytes, rows: _RowChecker, on_progress: ProgressFn | None) -> None:
    for number, end, raw in _lines(data):
        if on_progress and number % 1000 == 0:
            on_progress(end, len(data))
        if not raw.strip():
            continue
        text, reason = _decode(raw, number)
        if text is None:
            rows.error(number, reason or "undecodable")
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            rows.error(number, f"bad JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(record, dict):
            rows.error(number, f"not a JSON object (got {_type_name(record)})")
            continue
        rows.record(number, record)
    if on_progress:
        on_progress(len(data), len(data))


def _read_csv(data: bytes, rows: _RowChecker, delimiter: str, on_progress: ProgressFn | None) -> None:
    texts: list[str] = []  # texts[i] is line i + 1, newline kept (quoted newlines must survive)
    ends: list[int] = []
    bad_lines: dict[int, str] = {}
    for number, end, raw in _lines(data):
        text, reason = _decode(raw, number)
        if text is None:
            # Keep the bytes as surrogates so quotes and delimiters still parse; the record fails below.
            bad_lines[number] = reason or "undecodable"
            text = raw.decode("utf-8", errors="surrogateescape")
        texts.append(text)
        ends.append(end)
    if not texts:
        return  # an empty file has no rows; the report says so
    header = _csv_header(texts[0], rows, delimiter, bad_lines)
    for first, last, fields in _csv_records(texts, delimiter, len(header), rows):
        if on_progress and last % 1000 == 0:
            on_progress(ends[last - 1], len(data))
        if not fields or (len(fields) == 1 and not fields[0].strip() and len(header) > 1):
            continue  # blank line
        bad = next((bad_lines[n] for n in range(first, last + 1) if n in bad_lines), None)
        if bad:
            rows.error(first, bad)
        elif len(fields) != len(header):
            rows.error(first, f"{len(fields)} fields where the header has {len(header)}")
        else:
            rows.record(first, dict(zip(header, fields, strict=True)))
    if on_progress:
        on_progress(len(data), len(data))


def _csv_header(line: str, rows: _RowChecker, delimiter: str, bad_lines: dict[int, str]) -> list[str]:
    if 1 in bad_lines:
        raise DataError(f"{rows.file}:1: the CSV header is {bad_lines[1]}")
    try:
        header = next(csv.reader([line], delimiter=delimiter, strict=True), [])
    except csv.Error as exc:
        raise DataError(f"{rows.file}:1: cannot parse the CSV header ({exc})") from exc
    missing = [name for name in (rows.text_field, rows.label_field) if name not in header]
    if missing:
        raise DataError(
            f"{rows.file}:1: no column {' or '.join(repr(m) for m in missing)} in the header "
            f"(columns: {', '.join(header)}); set data.text_field / data.label_field in the spec"
        )
    return header


def _csv_records(
    texts: list[str], delimiter: str, width: int, rows: _RowChecker
) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, fields) per record after the header; broken records go to `rows.error`.

    An unclosed quote makes the csv module read on to the next quote, swallowing the rows between.
    Strict mode makes that visible (the "closing" quote is then rarely followed by a delimiter, and
    end of file inside quotes is an error), and so does a record that spans lines with the wrong
    number of fields. Either is blamed on the record's first line alone, and parsing restarts on the
    line after it, so the swallowed rows are read as themselves.
    """
    start = 2
    while start <= len(texts):
        reader = csv.reader(itertools.islice(texts, start - 1, None), delimiter=delimiter, strict=True)
        base = start - 1  # reader.line_num counts lines from here
        start = len(texts) + 1  # unless a broken record asks for a restart
        while True:
            first = base + reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                rows.error(first, f"cannot parse CSV: {exc} (an unbalanced quote?)")
                start = first + 1
                break
            last = base + reader.line_num
            if last > first and len(fields) != width:
                rows.error(first, f"unbalanced quote: a quoted field runs on over {last - first + 1} lines")
                start = first + 1
                break
            yield first, last, fields


def _read_parquet(path: Path, rows: _RowChecker, on_progress: ProgressFn | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read the Parquet file ({exc})") from exc
    columns = parquet.schema_arrow.names
    missing = [name for name in (rows.text_field, rows.label_field) if name not in columns]
    if missing:
        raise DataError(
            f"{path}: no column {' or '.join(repr(m) for m in missing)} (columns: {', '.join(columns)}); "
            f"set data.text_field / data.label_field in the spec"
        )
    total = parquet.metadata.num_rows
    number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for record in batch.to_pylist():
            number += 1
            rows.record(number, record)
        if on_progress:
            on_progress(number, total)
