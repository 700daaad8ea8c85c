"""Every error tunegate raises on purpose, one subclass per stage.

    TunegateError                      anything tunegate refuses to do, with a message for a person
    ├── SpecError                      tunegate.yaml is missing, unreadable, or invalid (names the dotted key)
    ├── DataError                      a data file cannot be read at all, or the check found blockers
    ├── ModelError                     a base model or a trained artifact cannot be found or loaded
    ├── TrainError                     training cannot start or cannot finish
    ├── EvalError                      an evaluation suite cannot run
    ├── GateError                      a gate cannot be decided (missing evidence)
    ├── ReviewError                    a review action is not allowed (wrong role, self-approval, ...)
    │   └── AccessDenied               no valid API key, a revoked key, or a role without the permission
    ├── RegistryError                  a version reference is unknown, or a lifecycle move is refused
    │   └── PromotionRefused           promotion without passed gate / valid sign-off
    ├── StoreError                     the workspace database or artifact store is broken or tampered with
    │   └── IntegrityError             an artifact's bytes no longer match their sha256
    ├── ServeError                     the server cannot start or load a model
    └── MonitorError                   a monitoring rule or window is invalid

The CLI turns a TunegateError into a red one-line message and exit code 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class TunegateError(Exception):
    """Base class: the message is written for the person at the terminal."""


class SpecError(TunegateError):
    """The spec is invalid. `problems` holds (dotted_key, message) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class DataError(TunegateError):
    pass


class ModelError(TunegateError):
    pass


class TrainError(TunegateError):
    pass


class EvalError(TunegateError):
    pass


class GateError(TunegateError):
    pass


class ReviewError(TunegateError):
    pass


class AccessDenied(ReviewError):
    pass


class RegistryError(TunegateError):
    pass


class PromotionRefused(RegistryError):
    """`reasons` holds codes: no_passed_gate, no_signoff, self_approval_only, evidence_changed."""

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


class StoreError(TunegateError):
    pass


class IntegrityError(StoreError):
    pass


class ServeError(TunegateError):
    pass


class MonitorError(TunegateError):
    pass
