"""Token lengths against the training max length, counted with the base model's own tokenizer.

Counting words or characters would be wrong by a factor that depends on the language and the
vocabulary; the only count that says what training will truncate is the real tokenizer's, special
tokens included (`add_special_tokens=True`, as training and serving call it).

`token_lengths` is pure given a tokenizer (any callable returning {"input_ids": [...]}, so tests can
pass a fake one); `load_tokenizer` is the I/O edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.data.duplicates import RowRef
from tunegate.data.examples import Example

_BATCH = 1000
LONGEST_SHOWN = 20

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class TokenLengths:
    """Token counts of one split. `truncated`: rows longer than `max_length`, which training would cut."""

    split: str
    max_length: int
    lengths: tuple[int, ...]
    truncated: int
    p50: float
    p95: float
    longest: int
    longest_rows: tuple[tuple[RowRef, int], ...]  # the longest truncated rows, longest first

    @property
    def truncated_fraction(self) -> float:
        return self.truncated / len(self.lengths) if self.lengths else 0.0


def token_lengths(
    examples: list[Example],
    split: str,
    tokenizer: Callable[..., Any],
    max_length: int,
    on_progress: ProgressFn | None = None,
) -> TokenLengths:
    lengths: list[int] = []
    for start in range(0, len(examples), _BATCH):
        texts = [e.text for e in examples[start : start + _BATCH]]
        # verbose=False: transformers otherwise warns once per long text, which is exactly what we report.
        encoded = tokenizer(
            texts,
            add_special_tokens=True,
            truncation=False,
            verbose=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        lengths.extend(len(ids) for ids in encoded["input_ids"])
        if on_progress:
            on_progress(len(lengths), len(examples))
    array = np.asarray(lengths, dtype=np.int64)
    too_long = sorted(
        ((RowRef.of(e), n) for e, n in zip(examples, lengths, strict=True) if n > max_length),
        key=lambda pair: -pair[1],
    )
    return TokenLengths(
        split=split,
        max_length=max_length,
        lengths=tuple(lengths),
        truncated=len(too_long),
        p50=float(np.percentile(array, 50)) if len(array) else 0.0,
        p95=float(np.percentile(array, 95)) if len(array) else 0.0,
        longest=int(array.max()) if len(array) else 0,
        longest_rows=tuple(too_long[:LONGEST_SHOWN]),
    )


def load_tokenizer(base_model: str, base_dir: Path | None = None) -> Any:
    """The base model's tokenizer from its local folder (never the hub; see models.resolve_encoder)."""
    from transformers import AutoTokenizer

    from tunegate.models import resolve_encoder

    return AutoTokenizer.from_pretrained(str(resolve_encoder(base_model, base_dir)))
