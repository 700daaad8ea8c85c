"""The evidence hash: one sha256 that binds a gate verdict and a sign-off to exact bytes.

    evidence = sha256("tunegate-evidence/1" | model artifact tree | resolved spec | evaluation report tree)

Each input is itself a content address (artifact trees hash every file they hold), so changing any
byte of the weights, the spec or the evaluation results changes the evidence hash, and an approval
bound to the old hash no longer counts. `current_evidence` recomputes it from the bytes on disk rather
than trusting recorded addresses.
"""

from __future__ import annotations

import hashlib

from tunegate.store.artifacts import ArtifactStore


def evidence_sha256(artifact_sha256: str, spec_sha256: str, evaluation_report_sha256: str) -> str:
    payload = "|".join(["tunegate-evidence/1", artifact_sha256, spec_sha256, evaluation_report_sha256])
    return hashlib.sha256(payload.encode()).hexdigest()


def current_evidence(
    artifacts: ArtifactStore, artifact_sha256: str, spec_sha256: str, evaluation_report_sha256: str
) -> str:
    """Re-verify both trees byte for byte (raises IntegrityError on any change), then hash."""
    artifacts.verify_tree(artifact_sha256)
    artifacts.verify_tree(evaluation_report_sha256)
    return evidence_sha256(artifact_sha256, spec_sha256, evaluation_report_sha256)
