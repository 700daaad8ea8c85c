"""What one `tunegate serve` process is configured with: the spec's `serve:` section plus process options.

A frozen dataclass, not pydantic: users write `serve:` in tunegate.yaml (validated there); this is the
internal, already-valid form that `create_app` takes. `authenticate` is the seam for API keys: the
CLI passes the store's user lookup, tests pass a dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from tunegate.spec.schema import ServeSpec

# key -> user name (None: unknown or revoked key)
Authenticator = Callable[[str], str | None]


@dataclass(frozen=True)
class ServeSettings:
    confidence_threshold: float = 0.6
    mean_logprob_threshold: float = -2.5
    canary_fraction: float = 0.0
    max_concurrency: int = 64
    max_body_bytes: int = 1_000_000
    max_input_tokens: int = 512
    max_output_tokens: int = 512
    request_timeout_s: float = 30.0
    batch_max_items: int = 32
    batch_max_wait_ms: float = 4.0
    encoder_sub_batch: int = 16
    inference_workers: int = 1
    split_batches: bool = False
    require_api_key: bool = True
    models: tuple[str, ...] = ()
    """Model names to serve; empty: every name that has a production version when the server starts."""
    reload_interval_s: float = 2.0
    """How often the registry is polled, so a promote or rollback from another process is picked up."""
    canary_seed: int = 0
    verify_artifacts: bool = True
    """Re-hash a version's files before loading it (a changed byte refuses to serve)."""
    authenticate: Authenticator | None = field(default=None, compare=False)

    @classmethod
    def from_spec(cls, spec: ServeSpec, **overrides: Any) -> ServeSettings:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in spec.model_dump().items() if k in names}
        values.update(overrides)
        return cls(**values)
