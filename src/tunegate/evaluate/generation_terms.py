"""Terminology adherence: does an answer use the domain's terms the way the glossary says?

Per answer, a list of checks, each pass or fail; the answer's score is the share that passed:
- one check per *required* term that its reference answer uses: the answer must use it too, spelled
  exactly (case-sensitive): a team that names its product "Drop Sensor" wants exactly that;
- one check that the answer uses no *forbidden* word (case-insensitive, whole words);
- one check that the answer uses no non-preferred spelling (the glossary's variants, case-sensitive,
  whole words; "Wi-Fi" preferred over "wifi" and "WiFi").
An answer with no check at all (empty glossary) has no score and is left out of the mean.

Pure functions of strings; nothing here runs a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tunegate.spec.sft import GlossarySpec


@dataclass(frozen=True)
class TermReport:
    score: float | None
    missing: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    misspelled: tuple[str, ...] = field(default_factory=tuple)  # "variant -> preferred"


def _whole(term: str, flags: int = 0) -> re.Pattern[str]:
    # Whole words: "premium" must not match "premiums" nor "Wi-Fi" match inside "Wi-Fi6";
    # lookarounds instead of \b so terms that start or end with punctuation still work.
    return re.compile(rf"(?<![\w-]){re.escape(term)}(?![\w-])", flags)


def term_report(answer: str, reference: str, glossary: GlossarySpec) -> TermReport:
    checks: list[bool] = []
    missing = tuple(
        t for t in glossary.required if _whole(t).search(reference) and not _whole(t).search(answer)
    )
    checks += [True] * (sum(bool(_whole(t).search(reference)) for t in glossary.required) - len(missing))
    checks += [False] * len(missing)
    forbidden: tuple[str, ...] = ()
    if glossary.forbidden:
        forbidden = tuple(w for w in glossary.forbidden if _whole(w, re.IGNORECASE).search(answer))
        checks.append(not forbidden)
    misspelled: tuple[str, ...] = ()
    if glossary.preferred:
        misspelled = tuple(
            f"{variant} -> {preferred}"
            for preferred, variants in glossary.preferred.items()
            for variant in variants
            if _whole(variant).search(answer)
        )
        checks.append(not misspelled)
    score = sum(checks) / len(checks) if checks else None
    return TermReport(score, missing, forbidden, misspelled)


def term_reports(answers: list[str], references: list[str], glossary: GlossarySpec) -> list[TermReport]:
    return [term_report(a, r, glossary) for a, r in zip(answers, references, strict=True)]
