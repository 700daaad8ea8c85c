"""`tunegate data check` for chat data (task sft): every row validated, tokens counted, findings decided.

The flow: read both splits (`chat.read_chat_file`: per-row errors, the rest usable); tokenize each
conversation with the base model's real tokenizer and chat template (`models.chat_template`, the
same code training uses) to count tokens, assistant tokens and conversations over `sft.max_length`;
estimate training tokens and cost per epoch; check that the template ends every assistant turn with
the end-of-turn token; and run the classifier path's duplicate, near-duplicate, leakage and PII
checks on each conversation flattened to text (`chat.as_text_example`).

Blockers follow the spec's `data.blockers` like the classifier check (row_errors, leakage,
duplicates, near_duplicates, pii, too_long), plus two that block whatever the spec says: a split with
no usable rows, and a template that would leave the end-of-turn token untrained.
Rendering (terminal and HTML) is `chat_report.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.data.chat import ChatExample, as_text_example, read_chat_file
from tunegate.data.duplicates import DuplicateGroup, Leak, exact_duplicates, exact_leakage
from tunegate.data.examples import RowError
from tunegate.data.near_duplicates import NearDuplicatePair, near_duplicates, near_leakage
from tunegate.data.pii import PiiFinding, scan_pii
from tunegate.data.report import fingerprint
from tunegate.models.causal_lm import load_tokenizer, resolve_causal_lm
from tunegate.models.chat_template import (
    ChatTemplate,
    encode_conversation,
    template_of,
    turns_without_end_of_turn,
)
from tunegate.spec.load import LoadedSpec

LONGEST_SHOWN = 20


@dataclass(frozen=True)
class ChatTokenStats:
    """Token counts of one split with the real tokenizer and template."""

    split: str
    max_length: int
    tokens: tuple[int, ...]
    assistant_tokens: tuple[int, ...]
    over_max: tuple[tuple[str, int, int], ...]  # (file:line, tokens, assistant tokens cut off), longest first

    def to_dict(self) -> dict[str, Any]:
        t = np.asarray(self.tokens or (0,))
        return {
            "conversations": len(self.tokens),
            "tokens_total": int(sum(self.tokens)),
            "tokens_p50": float(np.percentile(t, 50)),
            "tokens_p95": float(np.percentile(t, 95)),
            "tokens_max": int(t.max()),
            "assistant_tokens_total": int(sum(self.assistant_tokens)),
            "assistant_tokens_mean": float(np.mean(self.assistant_tokens)) if self.assistant_tokens else 0.0,
            "over_max_length": len(self.over_max),
            "assistant_tokens_cut": int(sum(cut for _, _, cut in self.over_max)),
            "longest_over_max": [
                {"row": where, "tokens": n, "assistant_tokens_cut": cut}
                for where, n, cut in self.over_max[:LONGEST_SHOWN]
            ],
        }


@dataclass(frozen=True)
class ChatDataReport:
    spec_name: str
    spec_sha256: str
    base_model: str
    template_sha256: str
    files: dict[str, str]
    total_rows: dict[str, int]
    row_errors: dict[str, list[RowError]]
    tokens: dict[str, ChatTokenStats]
    estimate: dict[str, float]
    template_problems: list[str]
    duplicates: list[DuplicateGroup]
    near_duplicates: list[NearDuplicatePair]
    leakage: list[Leak]
    pii: list[PiiFinding]
    fingerprint: str
    train: list[ChatExample] = field(repr=False)
    test: list[ChatExample] = field(repr=False)
    blockers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.blockers

    def to_dict(self) -> dict[str, Any]:
        from tunegate.data.chat_report import report_dict

        return report_dict(self)

    def print(self, console: Any) -> None:
        from tunegate.data.chat_report import print_chat_report

        print_chat_report(self, console)

    def write(self, folder: str | Path) -> list[Path]:
        from tunegate.data.chat_report import write_chat_report

        return write_chat_report(self, Path(folder))


def token_stats(
    examples: list[ChatExample], split: str, template: ChatTemplate, tokenizer: Any, max_length: int
) -> tuple[ChatTokenStats, list[str]]:
    """Token counts of a split, and the rows whose template would leave the end-of-turn token untrained."""
    eot = template.end_of_turn_id(tokenizer)
    tokens, assistant, over, problems = [], [], [], []
    for ex in examples:
        messages = [dict(m) for m in ex.messages]
        encoded = encode_conversation(template, tokenizer, messages)
        n = len(encoded.input_ids)
        tokens.append(n)
        assistant.append(encoded.assistant_tokens)
        if n > max_length:
            over.append((f"{ex.source}:{ex.line}", n, sum(t >= 0 for t in encoded.token_turns[max_length:])))
        if turns_without_end_of_turn(encoded, messages, eot):
            problems.append(f"{ex.source}:{ex.line}")
    over.sort(key=lambda row: -row[1])
    return ChatTokenStats(split, max_length, tuple(tokens), tuple(assistant), tuple(over)), problems


def estimate_training(stats: ChatTokenStats, loaded: LoadedSpec) -> dict[str, float]:
    """Tokens the forward passes see per epoch (after truncation, before the validation split) and their cost."""
    sft = loaded.spec.sft
    per_epoch = float(sum(min(n, stats.max_length) for n in stats.tokens)) * (1 - sft.validation_fraction)
    seconds = per_epoch / sft.estimated_tokens_per_s
    price = loaded.spec.targets.cost.hourly_price_usd
    return {
        "training_tokens_per_epoch": per_epoch,
        "epochs": sft.epochs,
        "training_tokens_total": per_epoch * sft.epochs,
        "assumed_tokens_per_s": sft.estimated_tokens_per_s,
        "estimated_seconds_per_epoch": seconds,
        "estimated_usd_per_epoch": seconds * price / 3600,
        "estimated_usd_total": seconds * sft.epochs * price / 3600,
    }


def check_chat_data(loaded: LoadedSpec, cache_dir: Path | None = None) -> ChatDataReport:
    """Every chat data check of the spec; raises DataError only when a file cannot be read at all."""
    from tunegate.data.chat_verdict import decide_chat
    from tunegate.store.workspace import open_workspace

    spec, data = loaded.spec, loaded.spec.data
    read = {
        split: read_chat_file(loaded.resolve(path), path)
        for split, path in (("train", data.train), ("test", data.test))
    }
    train, test = read["train"][0], read["test"][0]
    base_path = resolve_causal_lm(spec.base_model, cache_dir or open_workspace().cache_dir, loaded.root)
    tokenizer = load_tokenizer(base_path)
    template = template_of(tokenizer, spec.sft.end_of_turn_token, name=f"chat template of {spec.base_model}")
    tokens, problems = {}, []
    for split, rows in (("train", train), ("test", test)):
        tokens[split], bad = token_stats(rows, split, template, tokenizer, spec.sft.max_length)
        problems += bad
    as_text = {"train": [as_text_example(e) for e in train], "test": [as_text_example(e) for e in test]}
    threshold = data.near_duplicate_threshold
    pii = (scan_pii(as_text["train"], "train") + scan_pii(as_text["test"], "test")) if data.pii else []
    report = ChatDataReport(
        spec_name=spec.name,
        spec_sha256=loaded.sha256,
        base_model=spec.base_model,
        template_sha256=template.sha256,
        files={
            split: str(loaded.resolve(path)) for split, path in (("train", data.train), ("test", data.test))
        },
        total_rows={split: len(read[split][0]) + len(read[split][1]) for split in read},
        row_errors={split: read[split][1] for split in read},
        tokens=tokens,
        estimate=estimate_training(tokens["train"], loaded),
        template_problems=problems,
        duplicates=exact_duplicates(as_text["train"], "train") + exact_duplicates(as_text["test"], "test"),
        near_duplicates=near_duplicates(as_text["train"], "train", threshold),
        leakage=exact_leakage(as_text["train"], as_text["test"])
        + near_leakage(as_text["train"], as_text["test"], threshold),
        pii=pii,
        fingerprint=fingerprint(as_text["train"], as_text["test"]),
        train=train,
        test=test,
    )
    blockers, warnings = decide_chat(report, data, template)
    return ChatDataReport(**{**report.__dict__, "blockers": blockers, "warnings": warnings})
