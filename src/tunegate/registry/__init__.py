"""The registry stage: versions with lineage moving candidate -> staging -> production -> archived.

rules      which moves exist and why a promotion is refused (pure)
promotion  register_candidate, promote, rollback (the library calls behind the CLI verbs)
replay     the registry's stages recomputed from the decision log
resolve    a version reference -> a loaded model
"""

from tunegate.registry.promotion import evidence_facts, promote, register_candidate, rollback
from tunegate.registry.replay import registry_stages, replay, replay_differences
from tunegate.registry.rules import EvidenceFacts, Refusal, check_move, promotion_refusals

__all__ = [
    "EvidenceFacts",
    "Refusal",
    "check_move",
    "evidence_facts",
    "promote",
    "promotion_refusals",
    "register_candidate",
    "registry_stages",
    "replay",
    "replay_differences",
    "rollback",
]
