"""Content-addressed, immutable artifact storage: the one module that writes under artifacts/.

A *tree* is a folder of files (a model, a report bundle). Its address is the sha256 of its manifest,
a sorted list of (relative path, size, sha256 of the bytes). Trees are written to a temporary folder
and renamed into place last, so a tree that exists under its address is complete; files are made
read-only. `verify_tree` re-hashes every file, so a changed byte is caught before it is trusted.

Local disk only for now; an fsspec URL (S3) is the planned second backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from tunegate.errors import IntegrityError, StoreError

MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_manifest(folder: Path) -> list[dict[str, object]]:
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        entries.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
    return entries


def manifest_hash(entries: list[dict[str, object]]) -> str:
    return sha256_bytes(json.dumps(entries, sort_keys=True, separators=(",", ":")).encode())


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.trees = root / "trees"
        self.trees.mkdir(parents=True, exist_ok=True)

    def path(self, tree_sha: str) -> Path:
        return self.trees / tree_sha

    def exists(self, tree_sha: str) -> bool:
        return (self.path(tree_sha) / MANIFEST).is_file()

    def put_tree(self, source: Path) -> str:
        """Copy a folder into the store; return its address. Storing the same bytes twice is a no-op."""
        if not source.is_dir():
            raise StoreError(f"cannot store {source}: not a folder")
        entries = build_manifest(source)
        if not entries:
            raise StoreError(f"cannot store {source}: the folder is empty")
        tree_sha = manifest_hash(entries)
        if self.exists(tree_sha):
            return tree_sha
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.trees))
        try:
            for entry in entries:
                dest = staging / str(entry["path"])
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / str(entry["path"]), dest)
            (staging / MANIFEST).write_text(json.dumps(entries, indent=1, sort_keys=True))
            for path in staging.rglob("*"):
                if path.is_file():
                    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            try:
                os.rename(staging, self.path(tree_sha))  # the rename is the commit point
            except OSError:
                if not self.exists(tree_sha):  # a concurrent writer may have won the race
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return tree_sha

    def put_files(self, files: dict[str, bytes]) -> str:
        """Store a small tree given as {relative path: bytes} (reports, evaluation results)."""
        with tempfile.TemporaryDirectory(dir=self.trees, prefix=".build-") as tmp:
            for rel, data in files.items():
                dest = Path(tmp) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            return self.put_tree(Path(tmp))

    def get_tree(self, tree_sha: str, verify: bool = True) -> Path:
        path = self.path(tree_sha)
        if not self.exists(tree_sha):
            raise StoreError(f"artifact {tree_sha[:12]} is not in the store at {self.trees}")
        if verify:
            self.verify_tree(tree_sha)
        return path

    def verify_tree(self, tree_sha: str) -> None:
        path = self.path(tree_sha)
        recorded = json.loads((path / MANIFEST).read_text())
        if manifest_hash(recorded) != tree_sha:
            raise IntegrityError(f"artifact {tree_sha[:12]}: its manifest was edited")
        actual = build_manifest(path)
        if actual != recorded:
            recorded_by_path = {e["path"]: e for e in recorded}
            actual_by_path = {e["path"]: e for e in actual}
            changed = sorted(
                p
                for p in recorded_by_path.keys() | actual_by_path.keys()
                if recorded_by_path.get(p) != actual_by_path.get(p)
            )
            raise IntegrityError(
                f"artifact {tree_sha[:12]}: files changed since stored: {', '.join(changed)}"
            )
