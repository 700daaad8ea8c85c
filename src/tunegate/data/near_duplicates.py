"""Near-duplicates within train and near train/test leakage, by MinHash over shingles (datasketch).

A text becomes the set of its word 3-shingles (of the normalised text); a text of fewer than three
words has no such shingle, so it falls back to character 4-shingles. datasketch's MinHashLSH finds
candidate pairs; each candidate is kept only if its estimated Jaccard similarity reaches the threshold
(LSH alone lets some pairs below it through).

Rows whose normalised texts are equal are exact duplicates and are reported by `duplicates`, not here:
each distinct normalised text is hashed once, and pairs are between distinct texts.

Pure functions over lists of Example; the optional `on_progress(done, total)` is the only side channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from tunegate.data.duplicates import Leak, RowRef, normalize_text
from tunegate.data.examples import Example

NUM_PERM = 128
SEED = 1  # fixed, so two runs of the check report the same pairs
_BATCH = 2000

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class NearDuplicatePair:
    """Two rows of one split whose texts differ but are similar enough to teach the same thing twice."""

    split: str
    first: RowRef
    second: RowRef
    similarity: float  # estimated Jaccard similarity of the shingle sets
    text: str  # the second row's text, for the report


def shingles(text: str) -> set[bytes]:
    """Word 3-shingles of the normalised text; character 4-shingles when it has fewer than three words."""
    normal = normalize_text(text)
    words = normal.split()
    if len(words) >= 3:
        return {" ".join(words[i : i + 3]).encode() for i in range(len(words) - 2)}
    if len(normal) <= 4:
        return {normal.encode()}
    return {normal[i : i + 4].encode() for i in range(len(normal) - 3)}


def _distinct(examples: list[Example]) -> list[Example]:
    """The first row of each distinct normalised text."""
    seen: dict[str, Example] = {}
    for example in examples:
        seen.setdefault(normalize_text(example.text), example)
    return list(seen.values())


def _minhashes(
    examples: list[Example], on_progress: ProgressFn | None, done: int, total: int
) -> list[MinHash]:
    out: list[MinHash] = []
    for start in range(0, len(examples), _BATCH):
        batch = [shingles(e.text) for e in examples[start : start + _BATCH]]
        out.extend(MinHash.bulk(batch, num_perm=NUM_PERM, seed=SEED))
        if on_progress:
            on_progress(done + len(out), total)
    return out


def _index(threshold: float) -> MinHashLSH:
    # LSH cannot be built for a threshold of 1.0 (too few bands); candidates are filtered by the real one.
    return MinHashLSH(threshold=min(max(threshold, 0.05), 0.95), num_perm=NUM_PERM)


def near_duplicates(
    examples: list[Example], split: str, threshold: float, on_progress: ProgressFn | None = None
) -> list[NearDuplicatePair]:
    """Pairs of distinct texts in one split with estimated Jaccard similarity >= threshold."""
    distinct = _distinct(examples)
    hashes = _minhashes(distinct, on_progress, 0, len(distinct))
    lsh = _index(threshold)
    pairs = []
    for i, (example, minhash) in enumerate(zip(distinct, hashes, strict=True)):
        for j in sorted(lsh.query(minhash)):
            similarity = minhash.jaccard(hashes[j])
            if similarity >= threshold:
                pairs.append(
                    NearDuplicatePair(
                        split, RowRef.of(distinct[j]), RowRef.of(example), similarity, example.text
                    )
                )
        lsh.insert(i, minhash)
    return pairs


def near_leakage(
    train: list[Example], test: list[Example], threshold: float, on_progress: ProgressFn | None = None
) -> list[Leak]:
    """Test rows whose text is near (not equal to) a train text, each with its most similar train row."""
    train_distinct = _distinct(train)
    train_normal = {normalize_text(e.text) for e in train_distinct}
    # Exact leaks are reported by `duplicates.exact_leakage`; only the rest can be near ones.
    test_rows = [e for e in test if normalize_text(e.text) not in train_normal]
    total = len(train_distinct) + len(test_rows)
    train_hashes = _minhashes(train_distinct, on_progress, 0, total)
    test_hashes = _minhashes(test_rows, on_progress, len(train_distinct), total)
    lsh = _index(threshold)
    for i, minhash in enumerate(train_hashes):
        lsh.insert(i, minhash)
    leaks = []
    for example, minhash in zip(test_rows, test_hashes, strict=True):
        scored = [(minhash.jaccard(train_hashes[j]), -j) for j in lsh.query(minhash)]
        best = max((s for s in scored if s[0] >= threshold), default=None)
        if best is not None:
            similarity, neg_j = best
            match = train_distinct[-neg_j]
            leaks.append(
                Leak(RowRef.of(example), RowRef.of(match), similarity, exact=False, text=example.text)
            )
    return leaks
