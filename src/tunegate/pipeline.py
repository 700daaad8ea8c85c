"""The chain as the CLI runs it: data check -> train -> eval -> gate, each step storing its evidence.

Each step is a function the CLI verb calls and `run_all` strings together; a step reads what earlier
steps stored (the version, its evaluation) from the workspace, so steps also work one at a time.

A version is judged against the spec it was trained under (kept in its lineage), never the file as it
is now: editing targets after training cannot turn a FAIL into a PASS without a new run.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tunegate.data import DataReport, check_data
from tunegate.errors import DataError, EvalError, GateError
from tunegate.evaluate import evaluate_classifier
from tunegate.gate import decide, print_verdict, render_gate_report
from tunegate.models import resolve_encoder
from tunegate.models.dtypes import slow_bf16_warning
from tunegate.progress import StepProgress
from tunegate.registry.resolve import load_model
from tunegate.review import authenticate
from tunegate.spec import LoadedSpec, Spec
from tunegate.store import EvaluationRecord, GateRecord, Store, VersionRecord, evidence_sha256
from tunegate.store.decision_log import append_decision
from tunegate.train.classifier import FewShotConfig, sample_per_class, train_fewshot
from tunegate.train.lineage import base_lineage, current_user, register_trained


def _progress(console: Console) -> Progress:
    return StepProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def actor_name(store: Store) -> str:
    """Who is acting: the user of $TUNEGATE_API_KEY when set (checked), else $TUNEGATE_USER or the OS user.

    The name is what the decision log records and what the no-self-approval rule compares reviewers to.
    """
    key = os.environ.get("TUNEGATE_API_KEY")
    return authenticate(store, key).name if key else current_user()


def warn_emulated_bf16(console: Console, *settings: tuple[str, str]) -> None:
    """Print a warning for each (spec key, value) that asks for bfloat16 on a CPU that emulates it."""
    for key, value in settings:
        if message := slow_bf16_warning(key, value):
            console.print(f"[yellow]warning:[/] {message}", highlight=False)


def check_step(loaded: LoadedSpec, console: Console, store: Store | None = None) -> DataReport:
    report = check_data(loaded)
    report.print(console)
    if store is not None:
        append_decision(
            store.meta,
            actor=actor_name(store),
            action="data_check",
            subject=loaded.spec.name,
            reason="blocked" if report.blockers else "passed",
            payload={
                "fingerprint": report.fingerprint,
                "blockers": report.blockers,
                "warnings": report.warnings,
                "spec_sha256": loaded.sha256,
            },
        )
    return report


def train_step(
    loaded: LoadedSpec, store: Store, console: Console, report: DataReport | None = None
) -> VersionRecord:
    spec = loaded.spec
    if report is None:
        report = check_data(loaded, progress=False)
    if report.blockers:
        raise DataError(
            "data check found blockers; fix them or run `tunegate data check` for details:\n  "
            + "\n  ".join(report.blockers)
        )
    encoder_path = resolve_encoder(spec.base_model, loaded.root)
    warn_emulated_bf16(console, ("train.inference_dtype", spec.train.inference_dtype))
    train_rows = sample_per_class(report.train, spec.train.examples_per_class, spec.train.seed)
    config = FewShotConfig(
        seed=spec.train.seed,
        epochs=spec.train.epochs,
        batch_size=spec.train.batch_size,
        learning_rate=spec.train.learning_rate,
        max_length=spec.train.max_length,
        inference_dtype=spec.train.inference_dtype,
        inference_runtime=spec.train.inference_runtime,
    )
    with _progress(console) as progress:
        task = progress.add_task(f"train {spec.name}", total=None, info="")

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, info=f"loss {loss:.3f}")

        result = train_fewshot(train_rows, encoder_path, config, on_step=on_step)

    lineage = base_lineage(
        base_model=spec.base_model,
        base_model_path=encoder_path,
        data_fingerprint=report.fingerprint,
        spec=spec.model_dump(mode="json"),
        spec_sha256=loaded.sha256,
        wall_s=result.wall_s,
        hourly_price_usd=spec.targets.cost.hourly_price_usd,
    )
    lineage["created_by"] = actor_name(store)
    lineage.update(
        method="fewshot",
        steps=result.steps,
        epochs=result.epochs,
        train_examples=len(train_rows),
        temperature=result.temperature,
    )
    with tempfile.TemporaryDirectory(dir=store.workspace.root, prefix=".train-") as tmp:
        folder = Path(tmp)
        result.classifier.save(folder)
        (folder / "training-log.json").write_text(json.dumps({"loss": result.losses}, indent=0))
        # The data report travels with the model: the run page shows what the model was trained on.
        (folder / "data-report.json").write_text(
            json.dumps(report.to_dict(), indent=1, sort_keys=True, default=str)
        )
        version = register_trained(store, loaded, folder, lineage, report.fingerprint)
    console.print(
        f"trained {version.ref}: {len(train_rows)} examples, {result.epochs} epochs, {result.steps} steps, "
        f"{result.wall_s:.1f} s, ${lineage['cost_usd']:.5f}"
    )
    return version


def _resolve(store: Store, spec: Spec, ref: str | None) -> VersionRecord:
    return store.meta.resolve(ref or spec.name)


def _spec_of(version: VersionRecord) -> Spec:
    return Spec.model_validate(version.lineage["spec"])


def eval_step(
    loaded: LoadedSpec, store: Store, ref: str | None, console: Console, report: DataReport | None = None
) -> EvaluationRecord:
    version = _resolve(store, loaded.spec, ref)
    spec = _spec_of(version)
    if report is None:
        report = check_data(loaded, progress=False)
    if report.fingerprint != version.data_fingerprint:
        console.print(
            f"[yellow]warning:[/] the data changed since {version.ref} was trained "
            f"(fingerprint {report.fingerprint[:12]} vs {version.data_fingerprint[:12]})"
        )
    classifier = load_model(store, version)
    production = None
    try:
        prod = store.meta.resolve(f"{version.name}@production")
        if prod.id != version.id:
            production = load_model(store, prod)
    except Exception:  # no production version yet: nothing to compare with
        production = None
    results = evaluate_classifier(
        classifier,
        report.train,
        report.test,
        spec,
        training_wall_s=float(version.lineage.get("wall_s", 0.0)),
        production=production,
        console=console,
        spec_root=loaded.root,
    )
    results["version"] = version.ref
    results["data_fingerprint"] = report.fingerprint
    report_sha = store.artifacts.put_files(
        {"evaluation.json": json.dumps(results, indent=1, sort_keys=True, default=str).encode()}
    )
    record = store.meta.add_evaluation(version.id, results, report_sha)
    append_decision(
        store.meta,
        actor=actor_name(store),
        action="eval",
        subject=version.ref,
        payload={
            "evaluation_id": record.id,
            "report_sha256": report_sha,
            "summary": results.get("summary", {}),
        },
    )
    summary = results.get("summary", {})
    console.print(
        f"evaluated {version.ref}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in summary.items() if isinstance(v, float))
    )
    return record


def gate_step(loaded: LoadedSpec, store: Store, ref: str | None, console: Console) -> GateRecord:
    version = _resolve(store, loaded.spec, ref)
    spec = _spec_of(version)
    evaluation = store.meta.latest_evaluation(version.id)
    if evaluation is None:
        raise GateError(f"{version.ref} has no evaluation yet: run `tunegate eval` first")
    if version.spec_sha256 != loaded.sha256:
        console.print(
            f"[yellow]note:[/] {loaded.path} changed since {version.ref} was trained; "
            "judging against the spec recorded at training time"
        )
    verdict = decide(spec.targets, evaluation.results)
    evidence = evidence_sha256(version.artifact_sha256, version.spec_sha256, evaluation.report_sha256)
    html, json_text = render_gate_report(
        verdict,
        evaluation.results,
        model_ref=version.ref,
        spec_sha256=version.spec_sha256,
        evidence_sha256=evidence,
    )
    return record_gate(store, version, evaluation, verdict, html, json_text, evidence, console)


def record_gate(
    store: Store,
    version: VersionRecord,
    evaluation: EvaluationRecord,
    verdict: Any,
    html: str,
    json_text: str,
    evidence: str,
    console: Console,
) -> GateRecord:
    """Store a verdict (any task's GateVerdict) and its report, log it, copy the report out, print it."""
    report_sha = store.artifacts.put_files(
        {"gate-report.html": html.encode(), "gate-report.json": json_text.encode()}
    )
    record = store.meta.add_gate(
        version_id=version.id,
        evaluation_id=evaluation.id,
        passed=verdict.passed,
        verdict=verdict.to_dict(),
        evidence_sha256=evidence,
        report_sha256=report_sha,
    )
    failed = ", ".join(t.name for t in verdict.targets if not t.passed)
    append_decision(
        store.meta,
        actor=actor_name(store),
        action="gate",
        subject=version.ref,
        reason="PASS" if verdict.passed else f"FAIL: {failed}",
        evidence_sha256=evidence,
        payload={"gate_id": record.id, "passed": verdict.passed, "report_sha256": report_sha},
    )
    out = store.workspace.root / "reports" / f"{version.name}-v{version.version}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate-report.html").write_text(html)
    (out / "gate-report.json").write_text(json_text)
    print_verdict(verdict, console)
    console.print(f"evidence {evidence[:16]}…  report: {out / 'gate-report.html'}")
    return record


def run_all(loaded: LoadedSpec, store: Store, console: Console) -> bool:
    """Everything that needs no person, in order; stops at the first blocker. True when the gate passes."""
    console.rule("data check")
    report = check_step(loaded, console, store)
    report.write(store.workspace.root / "reports" / f"{loaded.spec.name}-data")
    if report.blockers:
        console.print("[red]stopped:[/] the data check found blockers")
        return False
    console.rule("train")
    version = train_step(loaded, store, console, report)
    console.rule("evaluate")
    eval_step(loaded, store, version.ref, console, report)
    console.rule("gate")
    return gate_step(loaded, store, version.ref, console).passed


def read_texts(path: Path, text_field: str) -> list[str]:
    """Texts from a JSONL or CSV file for prediction; a row without the field is an error naming its line."""
    texts: list[str] = []
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                value = row.get(text_field)
                if not value:
                    raise DataError(f"{path}:{reader.line_num}: no {text_field!r} value")
                texts.append(value)
        return texts
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
        value = row.get(text_field) if isinstance(row, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{path}:{line_no}: no {text_field!r} text")
        texts.append(value)
    return texts


def predict_file(
    store: Store, ref: str, input_file: Path, output: Path | None, text_field: str, console: Console
) -> None:
    version = store.meta.resolve(ref)
    model = load_model(store, version)
    texts = read_texts(input_file, text_field)
    if not texts:
        raise EvalError(f"{input_file}: no rows to predict")
    predictions = model.predict(texts)
    lines = [
        json.dumps(
            {
                "text": t,
                "label": p.label,
                "confidence": round(p.confidence, 6),
                "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
            }
        )
        for t, p in zip(texts, predictions, strict=True)
    ]
    if output:
        output.write_text("\n".join(lines) + "\n")
        console.print(f"wrote {len(lines)} predictions from {version.ref} to {output}")
    else:
        print("\n".join(lines))
