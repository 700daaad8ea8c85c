"""Every generation suite on a fine-tuned chat model, candidate and base side by side: `evaluate_sft`.

Suites (each skipped, and said so, when the spec gives it nothing to check):
  reference     chrF and ROUGE-L of each answer against the test conversation's last assistant turn
  terminology   glossary adherence (generation_terms)
  style         voice-rule adherence and similarity to voice exemplars (generation_style)
  format        JSON-schema validity when generation.json_schema is set (generation_format)
  regression    general-text perplexity and general-prompt chrF vs the base (generation_regression)
  latency       TTFT, tokens/s and per-request latency at batch 1 (generation_latency)
  cost          training $ from the recorded wall time, $ per 1k requests from batched throughput

Both models answer the same prompts with the same settings and the same chat template object (the
candidate's, which is the one it was trained with), so differences come from the weights alone.
Every score is per answer, and intervals come from one bootstrap seed, so candidate, base and their
difference are resampled on the same rows (generation_metrics). `outputs` keeps every answer pair
for the review stage. Deciding pass/fail is the gate's job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunegate.data.chat import ChatExample
from tunegate.evaluate.cost import SERVING_ASSUMPTION, cost_summary
from tunegate.evaluate.generation_format import format_reports, load_schema
from tunegate.evaluate.generation_latency import measure_chat_latency
from tunegate.evaluate.generation_metrics import (
    chrf_scores,
    compare,
    mean_interval,
    ratio_interval,
    rouge_l_scores,
)
from tunegate.evaluate.generation_regression import document_nll, read_general_prompts, read_general_text
from tunegate.evaluate.generation_style import exemplar_similarity, rule_pass_rates, voice_report
from tunegate.evaluate.generation_terms import term_reports
from tunegate.models.causal_lm import ChatModel, Completion
from tunegate.spec.schema import Spec

ProgressFn = Callable[[str, int, int], None]
SEED = 0  # one bootstrap seed for every suite: paired resampling across candidate and base


def _generate(
    model: ChatModel,
    prompts: list[list[dict[str, Any]]],
    spec: Spec,
    what: str,
    on_progress: ProgressFn | None,
) -> tuple[list[Completion], float]:
    g = spec.generation
    started = time.perf_counter()
    out = model.generate(
        prompts,
        max_new_tokens=g.max_new_tokens,
        do_sample=g.do_sample,
        temperature=g.temperature,
        top_p=g.top_p,
        seed=spec.sft.seed,
        batch_size=g.batch_size,
        on_progress=(lambda d, t: on_progress(what, d, t)) if on_progress else None,
    )
    return out, time.perf_counter() - started


def evaluate_sft(
    candidate: ChatModel,
    base: ChatModel,
    test: Sequence[ChatExample],
    spec: Spec,
    spec_root: Path,
    *,
    encoder: Any = None,
    training_wall_s: float | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    samples = spec.eval.bootstrap_samples
    prompts = [ex.prompt for ex in test]
    references = [ex.reference for ex in test]
    cand_out, cand_s = _generate(candidate, prompts, spec, "candidate answers", on_progress)
    base_out, base_s = _generate(base, prompts, spec, "base answers", on_progress)
    cand_text, base_text = [c.text for c in cand_out], [c.text for c in base_out]
    suites: dict[str, Any] = {}
    skipped: dict[str, str] = {}

    suites["reference"] = {
        "chrf": compare(
            chrf_scores(cand_text, references), chrf_scores(base_text, references), samples, SEED
        ),
        "rouge_l": compare(
            rouge_l_scores(cand_text, references), rouge_l_scores(base_text, references), samples, SEED
        ),
    }

    glossary = spec.glossary
    cand_terms = term_reports(cand_text, references, glossary)
    base_terms = term_reports(base_text, references, glossary)
    if glossary.required or glossary.forbidden or glossary.preferred:
        suites["terminology"] = compare(
            [t.score for t in cand_terms], [t.score for t in base_terms], samples, SEED
        )
    else:
        skipped["terminology"] = "the spec has no glossary"

    rules = spec.voice.rules
    cand_voice = [voice_report(t, rules) for t in cand_text]
    base_voice = [voice_report(t, rules) for t in base_text]
    style: dict[str, Any] = {}
    if any(v.score is not None for v in cand_voice):
        style["rules"] = compare([v.score for v in cand_voice], [v.score for v in base_voice], samples, SEED)
        style["pass_rate_by_rule"] = {
            "candidate": rule_pass_rates(cand_text, rules),
            "base": rule_pass_rates(base_text, rules),
        }
    if spec.voice.exemplars and encoder is not None:
        if on_progress:
            on_progress("voice similarity", 0, 1)
        style["voice_similarity"] = compare(
            exemplar_similarity(cand_text, spec.voice.exemplars, encoder),
            exemplar_similarity(base_text, spec.voice.exemplars, encoder),
            samples,
            SEED,
        )
    if style:
        suites["style"] = style
    else:
        skipped["style"] = "the spec has no voice rules or exemplars"

    if spec.generation.json_schema:
        schema = load_schema(spec_root / spec.generation.json_schema)
        cand_fmt, base_fmt = format_reports(cand_text, schema), format_reports(base_text, schema)
        suites["format"] = {
            **compare([float(r.valid) for r in cand_fmt], [float(r.valid) for r in base_fmt], samples, SEED),
            "candidate_failures": [r.reason for r in cand_fmt if not r.valid][:20],
        }
    else:
        skipped["format"] = "no generation.json_schema in the spec"

    suites["regression"] = _regression(candidate, base, spec, spec_root, samples, on_progress, skipped)

    requests = spec.generation.latency_requests
    if on_progress:
        on_progress("latency", 0, 2)
    suites["latency"] = {
        "candidate": measure_chat_latency(candidate, prompts, requests, spec.generation.max_new_tokens),
        "base": measure_chat_latency(base, prompts, requests, spec.generation.max_new_tokens),
    }
    hourly = spec.targets.cost.hourly_price_usd
    suites["cost"] = {
        **cost_summary(
            training_wall_s=training_wall_s,
            throughput_per_s=len(test) / cand_s if cand_s else None,
            hourly_price_usd=hourly,
        ),
        "base_usd_per_1k_requests": cost_summary(
            training_wall_s=None, throughput_per_s=len(test) / base_s, hourly_price_usd=hourly
        )["usd_per_1k_requests"]
        if base_s
        else None,
        "assumption": SERVING_ASSUMPTION.replace(
            "one text", f"one answer at batch {spec.generation.batch_size}"
        ),
    }
    outputs = [
        {
            "id": ex.id,
            "prompt": ex.prompt[-1]["content"],
            "reference": ref,
            "candidate": c.text,
            "base": b.text,
            "candidate_finished": c.finished,
            "terminology": {
                "candidate": ct.score,
                "base": bt.score,
                "missing": list(ct.missing),
                "forbidden": list(ct.forbidden),
                "misspelled": list(ct.misspelled),
            },
            "style": {"candidate": cv.score, "base": bv.score, "failed": list(cv.failed)},
        }
        for ex, ref, c, b, ct, bt, cv, bv in zip(
            test, references, cand_out, base_out, cand_terms, base_terms, cand_voice, base_voice, strict=True
        )
    ]
    return {
        "task": "sft",
        "n_test": len(test),
        "generation": spec.generation.model_dump(mode="json"),
        "chat_template_sha256": candidate.template.sha256,
        "suites": suites,
        "skipped": skipped,
        "summary": _summary(suites, cand_out),
        "outputs": outputs,
    }


def _regression(
    candidate: ChatModel,
    base: ChatModel,
    spec: Spec,
    root: Path,
    samples: int,
    on_progress: ProgressFn | None,
    skipped: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    regression = spec.regression
    if regression.general_text:
        texts = read_general_text(root / regression.general_text)
        if on_progress:
            on_progress("general-text perplexity", 0, 2)
        cand_nll, tokens = document_nll(candidate.model, candidate.tokenizer, texts)
        base_nll, _ = document_nll(base.model, base.tokenizer, texts)
        out["perplexity"] = ratio_interval(cand_nll, base_nll, tokens, samples, SEED)
    else:
        skipped["regression.perplexity"] = "no regression.general_text in the spec"
    if regression.general_prompts:
        prompts = read_general_prompts(root / regression.general_prompts)
        conversations = [p.messages for p in prompts]
        refs = [p.reference for p in prompts]
        cand, _ = _generate(candidate, conversations, spec, "general prompts (candidate)", on_progress)
        base_out, _ = _generate(base, conversations, spec, "general prompts (base)", on_progress)
        cand_scores = chrf_scores([c.text for c in cand], refs)
        base_scores = chrf_scores([b.text for b in base_out], refs)
        out["general_prompts"] = {
            "chrf": compare(cand_scores, base_scores, samples, SEED),
            "chrf_drop": mean_interval(
                [b - c for b, c in zip(base_scores, cand_scores, strict=True)], samples, SEED
            ).to_dict(),
            "answers": [
                {"id": p.id, "candidate": c.text, "base": b.text}
                for p, c, b in zip(prompts, cand, base_out, strict=True)
            ],
        }
    else:
        skipped["regression.general_prompts"] = "no regression.general_prompts in the spec"
    return out


def _summary(suites: dict[str, Any], cand_out: Sequence[Completion]) -> dict[str, float | None]:
    def value(*path: str) -> float | None:
        node: Any = suites
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node if isinstance(node, int | float) else None

    return {
        "chrf": value("reference", "chrf", "candidate", "value"),
        "rouge_l": value("reference", "rouge_l", "candidate", "value"),
        "terminology": value("terminology", "candidate", "value"),
        "terminology_base": value("terminology", "base", "value"),
        "style": value("style", "rules", "candidate", "value"),
        "style_base": value("style", "rules", "base", "value"),
        "voice_similarity": value("style", "voice_similarity", "candidate", "value"),
        "perplexity_increase": value("regression", "perplexity", "increase", "value"),
        "general_chrf_drop": value("regression", "general_prompts", "chrf_drop", "value"),
        "ttft_p95_ms": value("latency", "candidate", "ttft_ms", "p95"),
        "tokens_per_s": value("latency", "candidate", "tokens_per_s", "p50"),
        "finished_fraction": sum(c.finished for c in cand_out) / len(cand_out) if cand_out else None,
    }
