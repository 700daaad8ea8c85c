"""Verbs of governance: users, review, promote / rollback, the decision log (docs/governance.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tunegate.cli._common import ApiKeyOpt, WorkspaceOpt, acting, app, console, err_console

# -- governance: users, review, promote / rollback, decision log (docs/governance.md) -----------------

users_app = typer.Typer(
    no_args_is_help=True, help="People and their API keys (roles: viewer, reviewer, admin)."
)
review_app = typer.Typer(no_args_is_help=True, help="Human review of a candidate's outputs, and sign-off.")
log_app = typer.Typer(no_args_is_help=True, help="The append-only, hash-chained decision log.")
app.add_typer(users_app, name="users")
app.add_typer(review_app, name="review")
app.add_typer(log_app, name="log")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option(help="viewer, reviewer or admin.")] = "viewer",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a user and print their API key once (the first user of a workspace needs no key: an admin)."""
    from tunegate.review import add_user
    from tunegate.store import open_store

    record, key = add_user(open_store(workspace), api_key, name, role)
    err_console.print(
        f"created {record.name} ({record.role}); the API key below is shown once, store it now:"
    )
    print(key)  # alone on stdout, so `export TUNEGATE_API_KEY=$(tunegate users add ...)` works


@users_app.command("list")
def users_list(api_key: ApiKeyOpt = None, workspace: WorkspaceOpt = None) -> None:
    """Every user, their role, key prefix and whether the key is revoked (admins only)."""
    from tunegate.review import require
    from tunegate.store.users import list_users

    store, actor = acting(workspace, api_key)
    require(actor, "manage_users")
    table = Table("name", "role", "key", "created", "by", "status")
    for u in list_users(store.meta):
        status = "active" if u.active else f"[red]revoked[/] {u.revoked_at:%Y-%m-%d} by {u.revoked_by}"
        table.add_row(
            u.name, u.role, u.key_prefix + "…", f"{u.created_at:%Y-%m-%d %H:%M}", u.created_by, status
        )
    console.print(table)


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why (goes into the decision log).")] = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Revoke a user's API key: it can do nothing afterwards (admins only)."""
    from tunegate.review import revoke
    from tunegate.store import open_store

    record = revoke(open_store(workspace), api_key, name, reason)
    console.print(f"revoked the key of {record.name} ({record.key_prefix}…)")


def _print_item(task) -> None:  # a review.ReviewTask
    item = task.item
    confidence = "-" if item.confidence is None else f"{item.confidence:.3f}"
    console.print(
        f"[bold]item {item.id}[/] of {task.batch.version_ref} (batch {task.batch.id}, "
        f"{task.decided_by_you}/{task.total} decided by you) — {', '.join(item.reasons)}"
    )
    console.print(f"  text:       {item.text}", highlight=False)
    console.print(f"  label:      {item.label if item.label is not None else '-'}", highlight=False)
    console.print(f"  predicted:  {item.predicted} (confidence {confidence})", highlight=False)
    console.print(
        f"  decide:     tunegate review approve {item.id}  |  tunegate review reject {item.id} --comment ..."
    )


@review_app.command("open")
def review_open(
    ref: Annotated[str, typer.Argument(help="Version: name, name@3 or name@candidate.")],
    spec: Annotated[
        Path | None, typer.Option(help="Spec, only for versions without one in their lineage.")
    ] = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Open a review batch: a stratified sample of the evaluation outputs plus every low-confidence and wrong one."""
    from collections import Counter

    from tunegate.review import open_review
    from tunegate.spec import load_spec

    store, actor = acting(workspace, api_key)
    opened = open_review(store, actor, ref, load_spec(spec) if spec else None)
    reasons = Counter(r for item in opened.items for r in item.reasons)
    verb = (
        "already open"
        if opened.reused and opened.batch.status == "open"
        else (opened.batch.status if opened.reused else "opened")
    )
    console.print(
        f"review batch {opened.batch.id} of {opened.batch.version_ref} {verb}: {len(opened.items)} items ("
        + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        + f"); evidence {opened.batch.evidence_sha256[:16]}…"
    )
    console.print("next: tunegate review next")


@review_app.command("next")
def review_next(
    ref: Annotated[str | None, typer.Argument(help="Only this version's open batch.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object (for scripts); exit 1 when none is left.")
    ] = False,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show the next item you have not decided yet."""
    from tunegate.review import next_item

    store, actor = acting(workspace, api_key)
    task = next_item(store, actor, ref)
    if task is None:
        if as_json:
            raise typer.Exit(1)
        console.print("nothing left for you to review")
        return
    if as_json:
        item = task.item
        print(
            json.dumps(
                {
                    "id": item.id,
                    "version": task.batch.version_ref,
                    "text": item.text,
                    "label": item.label,
                    "predicted": item.predicted,
                    "confidence": item.confidence,
                    "reasons": list(item.reasons),
                }
            )
        )
        return
    _print_item(task)


def _decide(
    items: list[int], approve: bool, comment: str, api_key: str | None, workspace: Path | None
) -> None:
    from tunegate.review import decide

    store, actor = acting(workspace, api_key)
    for item in items:  # one decision (and log entry) each; the first refusal stops the rest
        outcome = decide(store, actor, item, approve, comment)
        v = outcome.verdict
        console.print(
            f"item {item}: {'approved' if approve else 'rejected'}. batch {outcome.batch.id}: {v.status} — {v.reason}"
        )
    if not outcome.counts:
        err_console.print(
            f"[yellow]note:[/] you ran the training of {outcome.batch.version_ref}; your decisions are recorded "
            "but do not count toward the sign-off"
        )
    if outcome.signoff is not None:
        console.print(
            f"[green]signed off[/] {outcome.batch.version_ref}, evidence {outcome.signoff.evidence_sha256[:16]}…"
        )


CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="Why (goes into the decision log).")]


@review_app.command("approve")
def review_approve(
    items: Annotated[list[int], typer.Argument(help="Item ids (from `tunegate review next`).")],
    comment: CommentOpt = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Approve review items (one or more ids)."""
    _decide(items, True, comment, api_key, workspace)


@review_app.command("reject")
def review_reject(
    items: Annotated[list[int], typer.Argument(help="Item ids (from `tunegate review next`).")],
    comment: CommentOpt = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Reject review items (one or more ids)."""
    _decide(items, False, comment, api_key, workspace)


@review_app.command("status")
def review_status_cmd(
    ref: Annotated[str, typer.Argument()], api_key: ApiKeyOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """The latest review of a version: progress, verdict, sign-off, and whether the evidence is unchanged."""
    from tunegate.review import review_status

    store, actor = acting(workspace, api_key)
    s = review_status(store, actor, ref)
    console.print(
        f"{s.version.ref} ({s.version.stage}); run by {s.version.lineage.get('created_by', 'unknown')}"
    )
    if s.integrity_problem:
        console.print(f"[red]evidence broken:[/] {s.integrity_problem}")
    if s.batch is None or s.verdict is None:
        console.print("no review yet: tunegate review open " + s.version.ref)
        return
    v = s.verdict
    console.print(
        f"batch {s.batch.id} ({s.batch.status}): {v.approved} approved, {v.rejected} rejected, {v.pending} pending "
        f"of {v.items}; reviewers: {', '.join(v.eligible_reviewers) or '-'}"
    )
    console.print(f"verdict: {v.status} — {v.reason}")
    if s.signoff is not None:
        still = (
            "[green]matches[/]"
            if s.signoff.evidence_sha256 == s.current_evidence_sha256
            else "[red]no longer matches[/]"
        )
        console.print(
            f"sign-off {s.signoff.signed_at:%Y-%m-%d %H:%M} by {', '.join(s.signoff.approvers)}: {still} the current evidence"
        )
    elif s.evidence_current is False:
        console.print("[yellow]the evidence changed since this batch opened: open a new review[/]")


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="Version: name@3, name@candidate, name@staging.")],
    to: Annotated[str, typer.Option("--to", help="staging or production.")],
    override: Annotated[
        bool, typer.Option(help="Admin override of a refused promotion (needs --reason).")
    ] = False,
    reason: Annotated[
        str, typer.Option(help="Why (required with --override; goes into the decision log).")
    ] = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Move a version to staging or production: needs a passed gate and a sign-off on its current evidence."""
    from tunegate.registry import promote as promote_version

    store, actor = acting(workspace, api_key)
    result = promote_version(store, actor, ref, to, override=override, reason=reason)
    for change in result.changes:
        console.print(f"{change.ref}: {change.from_stage} -> {change.to_stage}")
    if override:
        console.print(f"[yellow]override logged[/] (entry {result.entries[0].seq}): {reason}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why (goes into the decision log).")] = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Return production to the previous production version, in one step."""
    from tunegate.registry import rollback as rollback_model

    store, actor = acting(workspace, api_key)
    result = rollback_model(store, actor, name, reason)
    for change in result.changes:
        console.print(f"{change.ref}: {change.from_stage} -> {change.to_stage}")


@log_app.command("verify")
def log_verify(
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify an exported JSONL copy instead.")
    ] = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Re-hash the chain; name the first edited, deleted or reordered entry (exit 1). Also replays the registry."""
    from tunegate.registry import replay_differences
    from tunegate.review import require
    from tunegate.store.decision_log import load_jsonl, read_decisions, read_head, verify_chain

    if file is not None:
        check = verify_chain(load_jsonl(file))
        console.print(f"{file}: {check.describe()}")
        if not check.ok:
            raise typer.Exit(1)
        return
    store, actor = acting(workspace, api_key)
    require(actor, "read")
    check = verify_chain(read_decisions(store.meta), read_head(store.meta))
    console.print(("[green]" if check.ok else "[red]") + check.describe() + "[/]")
    differences = replay_differences(store) if check.ok else []
    for line in differences:
        console.print(f"[red]replay:[/] {line}")
    if check.ok and not differences:
        console.print("replaying the log reproduces every version's stage")
    if not check.ok or differences:
        raise typer.Exit(1)


@log_app.command("export")
def log_export(
    file: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write every entry as JSON lines (verifiable without the database: `tunegate log verify --file`)."""
    from tunegate.review import require
    from tunegate.store.decision_log import export_jsonl, read_decisions, verify_chain

    store, actor = acting(workspace, api_key)
    require(actor, "read")
    entries = read_decisions(store.meta)
    count = export_jsonl(entries, file)
    console.print(f"wrote {count} entries to {file}; head {verify_chain(entries).head_hash}")


@log_app.command("show")
def log_show(
    subject: Annotated[str | None, typer.Argument(help="Only entries about this (e.g. my-model@2).")] = None,
    last: Annotated[int, typer.Option(help="How many of the newest entries.")] = 20,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """The newest decisions: who, when, what, why."""
    from tunegate.review import require
    from tunegate.store.decision_log import read_decisions

    store, actor = acting(workspace, api_key)
    require(actor, "read")
    table = Table("seq", "time (UTC)", "actor", "action", "subject", "reason")
    for e in read_decisions(store.meta, subject=subject)[-last:]:
        table.add_row(
            str(e.seq), e.recorded_at[:19].replace("T", " "), e.actor, e.action, e.subject, e.reason[:80]
        )
    console.print(table)
