"""Where a workspace lives on disk: the metadata database and the artifact store.

Resolution order: an explicit path, then $TUNEGATE_WORKSPACE, then `./.tunegate`. A team points
$TUNEGATE_DATABASE_URL at PostgreSQL; the default is SQLite inside the workspace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path
    database_url: str

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def runs_dir(self) -> Path:
        """Scratch space for in-progress work; nothing here is evidence until it is stored."""
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        """Derived, re-creatable files (converted base models)."""
        return self.root / "cache"


def open_workspace(path: str | Path | None = None) -> Workspace:
    root = Path(path or os.environ.get("TUNEGATE_WORKSPACE") or ".tunegate").resolve()
    root.mkdir(parents=True, exist_ok=True)
    url = os.environ.get("TUNEGATE_DATABASE_URL") or f"sqlite:///{root / 'tunegate.db'}"
    return Workspace(root=root, database_url=url)
