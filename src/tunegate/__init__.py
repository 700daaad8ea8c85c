"""tunegate: fine-tuning with evidence gates.

    import tunegate
    clf = tunegate.load("support-intents@production")
    clf.predict(["I was charged twice"])[0].label

The CLI (`tunegate --help`) mirrors the library: spec, data, train, evaluate, gate, registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load(ref: str, workspace: str | Path | None = None) -> Any:
    """Load a registered version (`name`, `name@3`, `name@production`) after verifying its bytes."""
    from tunegate.registry.resolve import load_version

    return load_version(ref, workspace)


__all__ = ["__version__", "load"]
