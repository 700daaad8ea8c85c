"""What a registered version records about how it was made: the lineage every trainer writes.

Keys (all JSON): base_model, base_model_path, data_fingerprint, spec (resolved) and spec_sha256,
code_version (tunegate version + git commit when run from a checkout), libraries, hardware, wall_s,
cost_usd, created_by, and whatever the trainer adds (steps, epochs, examples per class, tokens...).
"""

from __future__ import annotations

import getpass
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = (
    "torch",
    "transformers",
    "sentence-transformers",
    "onnx",  # exports the encoder of classifiers with inference_runtime: onnxruntime
    "onnxruntime",
    "scikit-learn",
    "numpy",
    "safetensors",
    "peft",
    "trl",
    "accelerate",
    "datasets",
)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_version() -> str:
    __version__ = metadata.version("tunegate")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def hardware() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def current_user() -> str:
    """Who started the run: $TUNEGATE_USER, else the OS user (recorded for the no-self-approval rule)."""
    return os.environ.get("TUNEGATE_USER") or getpass.getuser()


def base_lineage(
    *,
    base_model: str,
    base_model_path: Path,
    data_fingerprint: str,
    spec: dict[str, Any],
    spec_sha256: str,
    wall_s: float,
    hourly_price_usd: float,
) -> dict[str, Any]:
    return {
        "base_model": base_model,
        "base_model_path": str(base_model_path),
        "data_fingerprint": data_fingerprint,
        "spec": spec,
        "spec_sha256": spec_sha256,
        "code_version": code_version(),
        "libraries": library_versions(),
        "hardware": hardware(),
        "wall_s": round(wall_s, 3),
        "cost_usd": round(wall_s * hourly_price_usd / 3600, 6),
        "created_by": current_user(),
    }


def register_trained(
    store: Any, loaded: Any, folder: Path, lineage: dict[str, Any], data_fingerprint: str
) -> Any:  # -> VersionRecord
    """Store a trained model's folder (plus the resolved spec as spec.json) and register it as a
    candidate version: the last step of every trainer."""
    import json

    (folder / "spec.json").write_text(json.dumps(lineage["spec"], indent=2, sort_keys=True))
    artifact = store.artifacts.put_tree(folder)
    spec = loaded.spec
    return store.meta.register_version(
        name=spec.name,
        task=spec.task,
        artifact_sha256=artifact,
        spec_sha256=loaded.sha256,
        data_fingerprint=data_fingerprint,
        lineage=lineage,
    )
