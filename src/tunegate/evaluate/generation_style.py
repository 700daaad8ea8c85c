"""Brand voice: rule checks from the spec, and similarity to exemplar answers written in the voice.

Rules (each one set in `voice.rules` is one pass/fail check per answer; the score is the share passed):
starts_with_any, ends_with_any, includes_any (case-sensitive: a greeting is part of the voice as
written), forbidden_phrases (case-insensitive), max_sentence_words, max_words, max_exclamations.
Sentences are split after ., ! or ? followed by whitespace; words are whitespace-separated tokens.

Similarity: cosine between an answer's embedding and the mean embedding of the exemplars, with the
packaged sentence encoder (normalised embeddings, so the cosine is a dot product). It says "sounds
like the exemplars", which rules cannot; it is reported beside the rules, not folded into them.

Pure functions, except `exemplar_similarity`, which runs the encoder it is given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunegate.spec.sft import VoiceRules

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class VoiceReport:
    score: float | None
    failed: tuple[str, ...]


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def rule_checks(answer: str, rules: VoiceRules) -> dict[str, bool]:
    """rule name -> passed, for every rule that is set."""
    text = answer.strip()
    checks: dict[str, bool] = {}
    if rules.starts_with_any:
        checks["starts_with_any"] = any(text.startswith(p) for p in rules.starts_with_any)
    if rules.ends_with_any:
        checks["ends_with_any"] = any(text.endswith(p) for p in rules.ends_with_any)
    if rules.includes_any:
        checks["includes_any"] = any(p in text for p in rules.includes_any)
    if rules.forbidden_phrases:
        lowered = text.lower()
        checks["forbidden_phrases"] = not any(p.lower() in lowered for p in rules.forbidden_phrases)
    if rules.max_sentence_words is not None:
        longest = max((len(s.split()) for s in sentences(text)), default=0)
        checks["max_sentence_words"] = longest <= rules.max_sentence_words
    if rules.max_words is not None:
        checks["max_words"] = len(text.split()) <= rules.max_words
    if rules.max_exclamations is not None:
        checks["max_exclamations"] = text.count("!") <= rules.max_exclamations
    return checks


def voice_report(answer: str, rules: VoiceRules) -> VoiceReport:
    checks = rule_checks(answer, rules)
    if not checks:
        return VoiceReport(None, ())
    return VoiceReport(sum(checks.values()) / len(checks), tuple(k for k, ok in checks.items() if not ok))


def rule_pass_rates(answers: Sequence[str], rules: VoiceRules) -> dict[str, float]:
    """Per rule, the share of answers that pass it (which rule the model breaks most)."""
    per_answer = [rule_checks(a, rules) for a in answers]
    names = per_answer[0].keys() if per_answer else []
    return {name: float(np.mean([c[name] for c in per_answer])) for name in names}


def exemplar_similarity(answers: Sequence[str], exemplars: Sequence[str], encoder: Any) -> list[float]:
    """Cosine similarity of each answer to the centroid of the exemplars."""
    if not exemplars or not answers:
        return []
    vectors = encoder.encode(
        list(exemplars) + list(answers),
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    centroid = vectors[: len(exemplars)].mean(axis=0)
    centroid = centroid / (np.linalg.norm(centroid) or 1.0)
    return [float(v @ centroid) for v in vectors[len(exemplars) :]]
