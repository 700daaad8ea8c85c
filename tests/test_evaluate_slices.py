"""Metrics per metadata value: counts, label sets per slice, intervals only for big enough slices."""

from __future__ import annotations

import numpy as np
import pytest

from tunegate.evaluate.slices import MIN_ROWS_FOR_INTERVAL, MISSING, slice_metrics, slice_value

LABELS = ["billing", "shipping", "refund"]


def test_slices_by_value_with_counts_and_intervals_only_for_large_slices():
    n_en, n_fr = 40, 10
    y_true = np.array([i % 2 for i in range(n_en)] + [2] * n_fr)
    y_pred = y_true.copy()
    y_pred[:4] = 1 - y_pred[:4]  # 4 English rows wrong
    metadata = [{"lang": "en"}] * n_en + [{"lang": "fr"}] * (n_fr - 2) + [{}, {"lang": None}]
    out = slice_metrics(
        y_true, y_pred, np.full(y_true.size, 0.8), LABELS, metadata, ["lang"], samples=200, seed=0
    )

    lang = out["lang"]
    assert list(lang["values"]) == ["en", "fr", MISSING]  # largest first
    assert lang["missing_rows"] == 2
    en, fr = lang["values"]["en"], lang["values"]["fr"]
    assert (en["n"], fr["n"]) == (40, 8)
    assert en["summary"]["accuracy"] == pytest.approx(36 / 40)
    assert en["intervals"] and en["metrics"]["accuracy"]["low"] is not None
    assert n_en >= MIN_ROWS_FOR_INTERVAL > fr["n"]
    assert not fr["intervals"] and fr["metrics"]["accuracy"]["low"] is None


def test_slice_macro_f1_averages_over_labels_present_in_the_slice():
    # French rows are all refunds, all right: macro-F1 1.0, not 1/3 for two absent labels.
    y_true = np.array([2, 2, 2, 0, 1])
    y_pred = np.array([2, 2, 2, 1, 1])
    metadata = [{"lang": "fr"}] * 3 + [{"lang": "en"}] * 2
    out = slice_metrics(y_true, y_pred, np.full(5, 0.9), LABELS, metadata, ["lang"], samples=100, seed=0)
    assert out["lang"]["values"]["fr"]["summary"]["macro_f1"] == 1.0
    assert list(out["lang"]["values"]["fr"]["per_class"]) == ["refund"]
    en = out["lang"]["values"]["en"]
    # billing: P 0 R 0 F1 0; shipping: P 1/2 R 1 F1 2/3
    assert en["summary"]["macro_f1"] == pytest.approx((0 + 2 / 3) / 2)
    assert list(en["per_class"]) == ["billing", "shipping"]


def test_field_absent_everywhere_is_one_missing_slice_and_values_are_stringified():
    y = np.array([0, 1])
    out = slice_metrics(
        y, y, np.ones(2), LABELS, [{"tier": 2}, {"tier": 2}], ["tier", "nope"], samples=100, seed=0
    )
    assert list(out["tier"]["values"]) == ["2"]
    assert list(out["nope"]["values"]) == [MISSING] and out["nope"]["missing_rows"] == 2
    assert slice_value({"tags": ["b", "a"]}, "tags") == '["b", "a"]'
