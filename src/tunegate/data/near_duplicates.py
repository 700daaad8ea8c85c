"""Near-duplicates within train and near train/test leakage, by MinHash LSH over shingles (datasketch).

A text becomes the set of its word 3-shingles (of the normalised text); a text of fewer than three
words has no such shingle, so it falls back to character 4-shingles. datasketch's MinHashLSH finds
candidate pairs, indexed a little below the threshold (`LSH_MARGIN`) so that pairs near it are not
lost to the estimate's noise; each candidate is then kept only if the exact Jaccard similarity of the
two shingle sets reaches the threshold. The similarities reported are exact, not estimates.

What "one word changed" means at a threshold: changing one word of an n-word text changes up to three
of its n - 2 word 3-shingles, so the Jaccard similarity is (n - 5) / (n + 1): 0.71 at 20 words, 0.85
at 40, 0.90 at 60. Lower `data.near_duplicate_threshold` to catch edits of short texts.

Rows whose normalised texts are equal are exact duplicates and are reported by `duplicates`, not here:
each distinct normalised text is hashed once, and pairs are between distinct texts.

No I/O: functions over lists of Example; the optional `on_progress(done, total)` is the only side channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from tunegate.data.duplicates import Leak, RowRef, normalize_text
from tunegate.data.examples import Example

NUM_PERM = 128
SEED = 1  # fixed, so two runs of the check report the same pairs
LSH_MARGIN = 0.1
_PROGRESS_EVERY = 1000

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class NearDuplicatePair:
    """Two rows of one split whose texts differ but are similar enough to teach the same thing twice."""

    split: str
    first: RowRef
    second: RowRef
    similarity: float  # Jaccard similarity of the shingle sets
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


def _minhashes(sets: list[set[bytes]]) -> list[MinHash]:
    return MinHash.bulk(sets, num_perm=NUM_PERM, seed=SEED)


def _index(threshold: float) -> MinHashLSH:
    # Index below the threshold (recall), but within what LSH can build (a threshold of 1.0 has too
    # few bands); candidates are then judged by their exact similarity.
    return MinHashLSH(threshold=min(max(threshold - LSH_MARGIN, 0.05), 0.95), num_perm=NUM_PERM)


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class TrainIndex:
    """The train split's distinct texts in one LSH index, built once for both near-duplicate checks.

    Building it finds the near-duplicate pairs within train (each text is queried before it is
    inserted); `leaks(test)` then queries the finished index with the test rows.
    """

    def __init__(
        self,
        train: list[Example],
        threshold: float,
        split: str = "train",
        on_progress: ProgressFn | None = None,
    ) -> None:
        self.threshold = threshold
        self.rows = _distinct(train)
        self.normal = {normalize_text(e.text) for e in self.rows}
        self.sets = [shingles(e.text) for e in self.rows]
        hashes = _minhashes(self.sets)
        self.lsh = _index(threshold)
        self.pairs: list[NearDuplicatePair] = []
        for i, example in enumerate(self.rows):
            for j in sorted(self.lsh.query(hashes[i])):
                similarity = jaccard(self.sets[i], self.sets[j])
                if similarity >= threshold:
                    first = RowRef.of(self.rows[j])
                    self.pairs.append(
                        NearDuplicatePair(split, first, RowRef.of(example), similarity, example.text)
                    )
            self.lsh.insert(i, hashes[i])
            if on_progress and (i + 1) % _PROGRESS_EVERY == 0:
                on_progress(i + 1, len(self.rows))
        if on_progress:
            on_progress(len(self.rows), len(self.rows))

    def leaks(self, test: list[Example], on_progress: ProgressFn | None = None) -> list[Leak]:
        """Test rows whose text is near (not equal to) a train text, each with its most similar train row."""
        # Exact leaks are reported by `duplicates.exact_leakage`; only the rest can be near ones.
        rows = [e for e in test if normalize_text(e.text) not in self.normal]
        sets = [shingles(e.text) for e in rows]
        leaks = []
        for done, (example, shingle_set, minhash) in enumerate(
            zip(rows, sets, _minhashes(sets), strict=True)
        ):
            if on_progress and done % _PROGRESS_EVERY == 0:
                on_progress(done, len(rows))
            # Most similar train row; ties go to the earliest, so the report is the same on every run.
            scored = [(jaccard(shingle_set, self.sets[j]), -j) for j in self.lsh.query(minhash)]
            best = max((s for s in scored if s[0] >= self.threshold), default=None)
            if best is not None:
                similarity, neg_j = best
                match = RowRef.of(self.rows[-neg_j])
                leaks.append(Leak(RowRef.of(example), match, similarity, exact=False, text=example.text))
        if on_progress:
            on_progress(len(rows), len(rows))
        return leaks


def near_duplicates(examples: list[Example], split: str, threshold: float) -> list[NearDuplicatePair]:
    """Pairs of distinct texts in one split whose shingle sets have Jaccard similarity >= threshold."""
    return TrainIndex(examples, threshold, split).pairs


def near_leakage(train: list[Example], test: list[Example], threshold: float) -> list[Leak]:
    """Test rows whose text is near (not equal to) a train text, each with its most similar train row."""
    return TrainIndex(train, threshold).leaks(test)
