"""The store: content-addressed immutable trees and version records."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tunegate.errors import IntegrityError, RegistryError
from tunegate.store import evidence_sha256, open_store


def make_tree(root: Path, content: bytes = b"weights") -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.json").write_text('{"x": 1}')
    (root / "sub" / "w.safetensors").write_bytes(content)
    return root


def test_same_bytes_same_address_and_files_read_only(tmp_path: Path) -> None:
    store = open_store(tmp_path / "ws")
    first = store.artifacts.put_tree(make_tree(tmp_path / "one"))
    second = store.artifacts.put_tree(make_tree(tmp_path / "two"))
    third = store.artifacts.put_tree(make_tree(tmp_path / "three", b"other"))
    assert first == second != third
    stored = store.artifacts.get_tree(first) / "sub" / "w.safetensors"
    assert stored.read_bytes() == b"weights"
    assert not stored.stat().st_mode & stat.S_IWUSR


def test_changed_byte_is_caught(tmp_path: Path) -> None:
    store = open_store(tmp_path / "ws")
    address = store.artifacts.put_tree(make_tree(tmp_path / "src"))
    target = store.artifacts.path(address) / "sub" / "w.safetensors"
    os.chmod(target, 0o644)
    target.write_bytes(b"weightz")
    with pytest.raises(IntegrityError, match=r"sub/w.safetensors"):
        store.artifacts.get_tree(address)


def test_versions_number_per_name_and_resolve_refs(tmp_path: Path) -> None:
    meta = open_store(tmp_path / "ws").meta
    common = dict(
        task="classify", artifact_sha256="a" * 64, spec_sha256="b" * 64, data_fingerprint="c" * 64, lineage={}
    )
    v1 = meta.register_version(name="m", **common)
    v2 = meta.register_version(name="m", **common)
    other = meta.register_version(name="n", **common)
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    assert meta.resolve("m").version == 2
    assert meta.resolve("m@1").id == v1.id
    meta.set_stage(v1.id, "production")
    assert meta.resolve("m@production").id == v1.id
    with pytest.raises(RegistryError, match="no version matches 'm@staging'"):
        meta.resolve("m@staging")
    with pytest.raises(RegistryError, match="not a version reference"):
        meta.resolve("M@@1")


def test_evidence_hash_depends_on_every_input() -> None:
    base = evidence_sha256("a", "b", "c")
    assert (
        len(
            {
                base,
                evidence_sha256("x", "b", "c"),
                evidence_sha256("a", "x", "c"),
                evidence_sha256("a", "b", "x"),
            }
        )
        == 4
    )
