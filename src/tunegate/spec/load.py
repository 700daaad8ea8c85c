"""Read tunegate.yaml into a validated `Spec`, with errors that name the dotted key and its line.

The spec's hash (sha256 of its canonical JSON, defaults filled in) is part of every piece of evidence:
a run is judged against the spec that existed when it started.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunegate.errors import SpecError
from tunegate.spec.schema import Spec

SPEC_FILENAME = "tunegate.yaml"


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with where it came from; paths in it resolve against `root`."""

    spec: Spec
    path: Path
    root: Path
    sha256: str

    def resolve(self, relative: str) -> Path:
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else (self.root / candidate).resolve()


def find_spec_file(path: str | Path) -> Path:
    """Accept a spec file or a folder holding tunegate.yaml."""
    p = Path(path)
    if p.is_dir():
        p = p / SPEC_FILENAME
    if not p.is_file():
        raise SpecError(f"no spec at {p} (run `tunegate init` to write a starter {SPEC_FILENAME})")
    return p


def load_spec(path: str | Path) -> LoadedSpec:
    spec_path = find_spec_file(path)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{spec_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    spec = parse_spec(text, source=str(spec_path))
    return LoadedSpec(
        spec=spec, path=spec_path.resolve(), root=spec_path.parent.resolve(), sha256=spec_hash(spec)
    )


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Validate spec text; on failure raise SpecError listing every problem as `file:line: key: message`."""
    try:
        raw = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise SpecError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: the spec must be a mapping of keys (name, task, data, ...)")
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "(top level)"
            message = _describe(err)
            problems.append((key, message))
        text_lines = []
        for key, message in problems:
            line = _nearest_line(lines, key)
            where = f"{source}:{line}" if line else source
            text_lines.append(f"{where}: {key}: {message}")
        raise SpecError("invalid spec\n" + "\n".join(text_lines), problems) from None


def spec_hash(spec: Spec) -> str:
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _describe(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (misspelled? see `tunegate init` for the keys a spec takes)"
    if err["type"] == "missing":
        return "required key is missing"
    return f"{err['msg']} (got {err.get('input')!r})"


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Map each dotted key in the YAML document to its 1-based line."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out[key] = key_node.start_mark.line + 1
            out.update(_key_lines(value_node, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}.{index}"
            out[key] = item.start_mark.line + 1
            out.update(_key_lines(item, key))
    return out


def _nearest_line(lines: dict[str, int], key: str) -> int | None:
    """The line of the key, or of its closest written parent (a missing key has no line of its own)."""
    parts = key.split(".")
    while parts:
        found = lines.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return None
