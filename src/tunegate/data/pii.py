"""Personal data in texts: emails, phone numbers, card numbers, IBANs and national ID numbers.

Each finding carries file, line, kind and a redacted snippet; the full value is never stored or
printed (every finding in the snippet's window is masked, not only the one it is about).

Written by hand on purpose: regular expressions plus the checksums that make them precise. Luhn and
the IBAN mod-97 check are ten lines each and turn "a long number" into "a card number" / "an IBAN";
no library is needed for them, and the NER-based scanners (presidio, spaCy) would pull in models and
are far slower than the few thousand texts a check must scan in seconds.

Kinds and rules:
  email     local@domain.tld
  phone     +country forms; (area) forms; a national form starting with trunk 0; US 555-123-4567.
            9–15 digits. Plain digit runs are not phones (too many order numbers and ids look alike),
            nor are dates (2024-01-15, 01.02.2024), SSN shapes or parts of longer grouped numbers.
  card      13–19 digits, optionally grouped by spaces or hyphens, passing the Luhn check
  iban      country code, check digits, 11–30 letters/digits (grouped by 4 or not), passing mod-97
  us_ssn    ddd-dd-dddd, excluding areas 000, 666 and 9xx, group 00 and serial 0000
  uk_nino   UK National Insurance number, AB 12 34 56 C, excluding the prefixes HMRC never issues
Where spans overlap, the kind listed first wins (an IBAN's digits are not also a phone number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tunegate.data.examples import Example

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# A digit run is taken whole, groups included: no starting or stopping inside "1234 5678 ...".
_CARD = re.compile(r"(?<![\d-])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?!\d)(?![ -]\d)")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_NINO = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}"  # +44 20 7946 0958, +1 (555) 123-4567
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"  # (555) 123-4567
    r"|0\d{1,4}(?:[ .-]\d{2,4}){2,4}"  # 020 7946 0958, 06 12 34 56 78
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r")(?!\w)(?![ .-]\d)"
)
# Shapes a phone pattern also matches that are something else: dates, and SSN-shaped numbers (the
# invalid ones the us_ssn rule leaves out are still not phone numbers).
_NOT_PHONE = re.compile(
    r"^(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}(?!\d)|\d{3}-\d{2}-\d{4}$)"
)
_NON_DIGIT = re.compile(r"\D")

_WORTH_SCANNING = re.compile(r"[\d@]")  # every kind holds a digit or an @; most texts hold neither

KINDS = ("email", "iban", "card", "us_ssn", "uk_nino", "phone")
SNIPPET_CONTEXT_CHARS = 25


@dataclass(frozen=True)
class PiiFinding:
    """Personal data found in one row. `snippet` is the surrounding text with every value masked."""

    split: str
    file: str
    line: int
    kind: str
    snippet: str


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries (ISO/IEC 7812)."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 mod-97: move the first four characters to the end, letters to 10..35, remainder must be 1."""
    compact = iban.replace(" ", "").upper()
    if not (
        15 <= len(compact) <= 34 and compact[:2].isalpha() and compact[2:4].isdigit() and compact.isalnum()
    ):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban_spans(text: str) -> list[tuple[int, int]]:
    """IBAN spans; a candidate that swallowed a following word (\"... 00 SENT\") is retried without it."""
    spans = []
    for match in _IBAN.finditer(text):
        parts = match.group().split(" ")
        for keep in range(len(parts), 0, -1):
            candidate = " ".join(parts[:keep])
            if iban_valid(candidate):
                spans.append((match.start(), match.start() + len(candidate)))
                break
    return spans


def _candidates(text: str) -> list[tuple[str, int, int]]:
    if not _WORTH_SCANNING.search(text):
        return []
    found: list[tuple[str, int, int]] = [("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    found += [("iban", start, end) for start, end in _iban_spans(text)]
    for m in _CARD.finditer(text):
        digits = _NON_DIGIT.sub("", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(("card", m.start(), m.end()))
    found += [("us_ssn", m.start(), m.end()) for m in _SSN.finditer(text)]
    found += [("uk_nino", m.start(), m.end()) for m in _NINO.finditer(text)]
    for m in _PHONE.finditer(text):
        digit_count = len(_NON_DIGIT.sub("", m.group()))
        if 9 <= digit_count <= 15 and not _NOT_PHONE.match(m.group()):
            found.append(("phone", m.start(), m.end()))
    return found


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) spans in text order; of overlapping spans the kind earlier in KINDS wins."""
    kept: list[tuple[str, int, int]] = []
    for kind, start, end in sorted(_candidates(text), key=lambda c: (KINDS.index(c[0]), c[1])):
        if all(end <= s or start >= e for _, s, e in kept):
            kept.append((kind, start, end))
    return sorted(kept, key=lambda c: c[1])


def mask(kind: str, value: str) -> str:
    """A value with all but its last two letters/digits hidden (emails keep the first letter and TLD)."""
    if kind == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@***.{domain.rsplit('.', 1)[-1]}"
    alnum_positions = [i for i, c in enumerate(value) if c.isalnum()]
    shown = set(alnum_positions[-2:])
    return "".join(c if (i in shown or not c.isalnum()) else "*" for i, c in enumerate(value))


def redacted_snippets(text: str, spans: list[tuple[str, int, int]]) -> list[str]:
    """One snippet per span: the span masked, in a little context where every other span is masked too."""
    pieces, positions, cursor = [], [], 0
    for kind, start, end in spans:
        pieces.append(text[cursor:start])
        new_start = sum(len(p) for p in pieces)
        pieces.append(f"[{kind}: {mask(kind, text[start:end])}]")
        positions.append((new_start, new_start + len(pieces[-1])))
        cursor = end
    pieces.append(text[cursor:])
    redacted = "".join(pieces)
    snippets = []
    for start, end in positions:
        left, right = max(0, start - SNIPPET_CONTEXT_CHARS), min(len(redacted), end + SNIPPET_CONTEXT_CHARS)
        window = " ".join(redacted[left:right].split())
        snippets.append(("…" if left else "") + window + ("…" if right < len(redacted) else ""))
    return snippets


def redact(text: str) -> str:
    """The text with every finding masked: what the reports show of any row's text."""
    pieces, cursor = [], 0
    for kind, start, end in find_pii(text):
        pieces += [text[cursor:start], f"[{kind}: {mask(kind, text[start:end])}]"]
        cursor = end
    return "".join([*pieces, text[cursor:]])


def scan_pii(examples: list[Example], split: str) -> list[PiiFinding]:
    findings = []
    for example in examples:
        spans = find_pii(example.text)
        for (kind, _, _), snippet in zip(spans, redacted_snippets(example.text, spans), strict=True):
            findings.append(PiiFinding(split, example.source, example.line, kind, snippet))
    return findings
