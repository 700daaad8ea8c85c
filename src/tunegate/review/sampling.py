"""Which evaluation outputs a person reviews: every risky one, plus a stratified sample of the rest.

    misclassified    predicted != label (every one)
    low_confidence   confidence < review.low_confidence_below (every one)
    sample           `sample_size` of the remaining outputs, stratified by predicted label

Stratification gives each predicted label a share proportional to its count (largest remainders), but
at least one output per label while the sample has room, so a rare class is never left unseen.
sklearn's stratified splitters refuse classes with one member, which a small test set has, hence
the few lines here. Pure: the seed (derived from the evidence hash) makes the choice reproducible.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

MISCLASSIFIED, LOW_CONFIDENCE, SAMPLE = "misclassified", "low_confidence", "sample"


def _allocate(counts: dict[str, int], size: int) -> dict[str, int]:
    total = sum(counts.values())
    if size >= total:
        return dict(counts)
    labels = sorted(counts)
    share = {label: 0 for label in labels}
    # One each first (rarest first) while there is room, then proportional shares of what is left.
    for label in sorted(labels, key=lambda lab: (counts[lab], lab))[:size]:
        share[label] = 1
    left = size - sum(share.values())
    if left > 0:
        spare = {label: counts[label] - share[label] for label in labels}
        spare_total = sum(spare.values())
        exact = {label: left * spare[label] / spare_total for label in labels}
        for label in labels:
            share[label] += int(exact[label])
        remainder = left - sum(int(v) for v in exact.values())
        for label in sorted(labels, key=lambda lab: (-(exact[lab] - int(exact[lab])), lab))[:remainder]:
            share[label] += 1
    return share


def select_for_review(
    predictions: list[dict[str, Any]], *, sample_size: int, low_confidence_below: float, seed: int
) -> list[dict[str, Any]]:
    """Review items, risky first: dicts with reasons, text, label, predicted, confidence."""
    flagged: list[tuple[int, list[str]]] = []
    rest_by_label: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(predictions):
        reasons = []
        label, predicted, confidence = row.get("label"), row.get("predicted"), row.get("confidence")
        if label is not None and predicted != label:
            reasons.append(MISCLASSIFIED)
        if confidence is not None and float(confidence) < low_confidence_below:
            reasons.append(LOW_CONFIDENCE)
        if reasons:
            flagged.append((index, reasons))
        else:
            rest_by_label[str(predicted)].append(index)
    rng = random.Random(seed)
    shares = _allocate({label: len(ix) for label, ix in rest_by_label.items()}, sample_size)
    sampled = sorted(i for label, ix in sorted(rest_by_label.items()) for i in rng.sample(ix, shares[label]))
    flagged.sort(key=lambda f: (MISCLASSIFIED not in f[1], f[0]))  # misclassified, then low confidence
    chosen = flagged + [(i, [SAMPLE]) for i in sampled]
    return [
        {
            "reasons": reasons,
            "text": str(predictions[i].get("text", "")),
            "label": None if predictions[i].get("label") is None else str(predictions[i]["label"]),
            "predicted": str(predictions[i].get("predicted")),
            "confidence": None
            if predictions[i].get("confidence") is None
            else float(predictions[i]["confidence"]),
        }
        for i, reasons in chosen
    ]
