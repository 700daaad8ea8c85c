"""check_data end to end on tiny projects: verdict, fingerprint, JSON/HTML report, and the CLI's exit codes."""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from rich.console import Console

from tunegate.data import DataReport, check_data, fingerprint
from tunegate.data.balance import label_balance
from tunegate.data.verdict import decide
from tunegate.spec import load_spec
from tunegate.spec.schema import DataSpec

VOCAB = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo"]


def rows(n: int, seed: int, labels: tuple[str, ...] = ("pos", "neg")) -> list[dict[str, str]]:
    """n distinct rows of random words (no two near each other), labels cycled."""
    rng = random.Random(seed)
    return [
        {"text": f"{seed}-{i} " + " ".join(rng.choices(VOCAB, k=14)), "label": labels[i % len(labels)]}
        for i in range(n)
    ]


def write_jsonl(path: Path, records: list[dict[str, object]], extra_lines: tuple[str, ...] = ()) -> None:
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_project(folder: Path, train: list, test: list, **data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "test.jsonl", test)
    spec = {
        "name": "demo",
        "task": "classify",
        "data": {"train": "train.jsonl", "test": "test.jsonl", **data},
    }
    (folder / "tunegate.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return folder / "tunegate.yaml"


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> DataReport:
    """One project with a bit of everything, checked once (the tokenizer load is the slow part)."""
    folder = tmp_path_factory.mktemp("messy")
    train = [
        *rows(40, seed=1),
        {"text": "Reach me at jane.doe@example.com", "label": "pos"},
        {"text": "same words twice", "label": "pos"},
        {"text": "Same  WORDS twice", "label": "neg"},
        {"text": "rare class row", "label": "tiny"},
        {"text": "<script>alert(1)</script> " + "very " * 200, "label": "neg"},
    ]
    test = [*rows(10, seed=2), {"text": train[3]["text"], "label": "pos"}]
    spec = write_project(folder, train, test, labels=["pos", "neg", "tiny"])
    with (folder / "train.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"text": "no label"}\n')
    return check_data(load_spec(spec), progress=False)


def test_findings_of_a_messy_project(messy: DataReport) -> None:
    assert messy.total_rows == {"train": 46, "test": 11}
    assert len(messy.train) == 45 and len(messy.test) == 11
    assert [(e.line, e.reason) for e in messy.row_errors["train"]] == [(46, "missing label (field 'label')")]
    assert [(leak.test.line, leak.train.line, leak.exact) for leak in messy.leakage] == [(11, 4, True)]
    (group,) = messy.duplicates
    assert group.conflicting and [r.line for r in group.rows] == [42, 43]
    assert messy.balance.small_classes == ("tiny",)
    assert [f.kind for f in messy.pii] == ["email"]
    assert messy.lengths["train"].truncated == 1 and messy.lengths["train"].longest > 128
    # Default blockers: leakage and small_classes; the rest are warnings.
    assert len(messy.blockers) == 2
    assert any("leakage" in b for b in messy.blockers) and any("tiny (1)" in b for b in messy.blockers)
    assert any("conflicting labels" in w for w in messy.warnings)
    assert any("1 email" in w for w in messy.warnings)


def test_spec_decides_what_blocks(messy: DataReport) -> None:
    everything = DataSpec(
        train="x",
        test="y",
        blockers=["row_errors", "duplicates", "pii", "too_long"],
        min_examples_per_class=1,
    )
    blockers, warnings = decide(messy, everything)
    assert len(blockers) == 4 and any("leakage" in w for w in warnings)
    strict_errors = DataSpec(train="x", test="y", blockers=[], max_row_error_fraction=0.01)
    blockers, _ = decide(messy, strict_errors)  # 1 of 46 rows is 2.2% > 1%: blocks whatever the list says
    assert blockers == [
        "train: 1 of 46 rows (2.2%) are malformed and not used, more than data.max_row_error_fraction (1.0%)"
    ]


def test_one_class_always_blocks(messy: DataReport) -> None:
    one_class = [e for e in messy.train if e.label == "pos"]
    report = dataclasses.replace(
        messy, train=one_class, balance=label_balance(one_class, messy.test, None, 1)
    )
    blockers, _ = decide(report, DataSpec(train="x", test="y", blockers=[]))
    assert blockers == ["train: a classifier needs at least 2 classes; the rows have 1"]


def test_report_json_and_html(messy: DataReport, tmp_path: Path) -> None:
    json_path, html_path = messy.write(tmp_path / "out")
    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert report["fingerprint"] == messy.fingerprint and report["passed"] is False
    assert report["splits"]["train"] == {
        "file": messy.files["train"],
        "total_rows": 46,
        "usable_rows": 45,
        "row_errors": 1,
    }
    assert report["label_balance"]["train_counts"] == {"pos": 22, "neg": 22, "tiny": 1}
    assert report["label_balance"]["imbalance_ratio"] == pytest.approx(22.0)
    assert messy.train[0].text not in json_path.read_text()  # counts and findings, not the rows themselves
    assert len(report["row_errors"]) == 1 and "train" not in report
    html = html_path.read_text(encoding="utf-8")
    assert html.count("<svg") == 2  # label balance and token lengths
    assert "<script>alert" not in html  # user text is escaped (the page has no scripts of its own)
    for rendered in (html, json_path.read_text(encoding="utf-8")):
        assert "jane.doe@example.com" not in rendered
    assert f"{messy.files['train']}:46</td><td>missing label" in html

    console = Console(record=True, width=120)
    messy.print(console)
    text = console.export_text()
    assert "missing label" in text and "BLOCKED" in text and "jane.doe@example.com" not in text


def test_fingerprint_ignores_format_and_order_but_not_content(tmp_path: Path) -> None:
    train, test = rows(30, seed=5), rows(10, seed=6)
    jsonl = write_project(tmp_path / "a", train, test)
    first = check_data(load_spec(jsonl), progress=False)

    shuffled = tmp_path / "b"
    shuffled.mkdir()
    pq.write_table(pa.Table.from_pylist(list(reversed(train))), shuffled / "train.parquet")
    write_jsonl(shuffled / "test.jsonl", test[::-1])
    spec = {"name": "demo", "task": "classify", "data": {"train": "train.parquet", "test": "test.jsonl"}}
    (shuffled / "tunegate.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    second = check_data(load_spec(shuffled), progress=False)

    as_csv = tmp_path / "c"
    as_csv.mkdir()
    with (as_csv / "train.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(train[::2] + train[1::2])
    write_jsonl(as_csv / "test.jsonl", test)
    spec["data"]["train"] = "train.csv"
    (as_csv / "tunegate.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    third = check_data(load_spec(as_csv), progress=False)

    assert first.blockers == [] and second.blockers == [] and third.blockers == []
    assert first.fingerprint == second.fingerprint == third.fingerprint
    relabelled = [*first.train[:-1], type(first.train[-1])(text=first.train[-1].text, label="other")]
    assert fingerprint(relabelled, first.test) != first.fingerprint
    assert fingerprint(first.test, first.train) != first.fingerprint  # moving rows between splits counts


def _cli(*args: str | Path, workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunegate", "data", "check", *map(str, args), "-w", str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_exit_codes(tmp_path: Path) -> None:
    clean = write_project(tmp_path / "clean", rows(30, seed=1), rows(10, seed=2))
    ws = tmp_path / "ws"
    ok = _cli(clean, "--report", tmp_path / "clean-report", workspace=ws)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tmp_path / "clean-report" / "data-report.html").is_file()

    leaky_dir = tmp_path / "leaky"
    train = rows(30, seed=1)
    leaky = write_project(leaky_dir, train, [*rows(10, seed=2), train[0]])
    blocked = _cli(leaky, workspace=ws)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    # Without --report the report lands in the workspace, named after the spec's model.
    assert "blocker" in blocked.stdout and (ws / "reports" / "demo-data" / "data-report.json").is_file()

    (leaky_dir / "test.jsonl").unlink()
    missing = _cli(leaky, workspace=ws)
    assert missing.returncode == 2
    assert "test.jsonl: cannot read" in " ".join(missing.stderr.split())
