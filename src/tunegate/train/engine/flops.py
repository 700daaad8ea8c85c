"""Model FLOPs of a training step, counted the same way for every training path that is compared.

Only work the step needs is counted ("useful model FLOPs"): the layers' matmuls on real (non-pad)
tokens, the vocabulary projection on labelled tokens only, and causal attention within each
document (a token at position p of its document attends to p + 1 keys). A path that does more
(padding, logits for prompt tokens, recomputation for checkpointing) gets no credit for it, so
MFU = these FLOPs / time / peak compares paths fairly.

LoRA steps do the forward (2 FLOPs per parameter and token) and the input gradients (2 more) of
the frozen weights, but no weight gradients; full fine-tuning adds those (6 in all). The adapters
themselves cost 6 per adapter parameter and token. Attention backward is 2.5x its forward.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        n_heads = config.num_attention_heads
        return cls(
            n_layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            n_heads=n_heads,
            n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // n_heads,
            intermediate=config.intermediate_size,
            vocab=config.vocab_size,
            tied=bool(getattr(config, "tie_word_embeddings", False)),
        )

    @property
    def layer_matmul_params(self) -> int:
        d, dq, dkv = self.hidden, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        return d * (dq + 2 * dkv) + dq * d + 3 * d * self.intermediate

    def lora_params(self, rank: int) -> int:
        d, dq, dkv, i = (
            self.hidden,
            self.n_heads * self.head_dim,
            self.n_kv_heads * self.head_dim,
            self.intermediate,
        )
        per_layer = rank * ((d + dq) + 2 * (d + dkv) + (dq + d) + 2 * (d + i) + (i + d))
        return per_layer * self.n_layers

    @property
    def total_params(self) -> int:
        embed = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.n_layers * (self.layer_matmul_params + 2 * self.hidden) + embed + self.hidden


def attention_pairs(doc_lengths: Iterable[int]) -> int:
    """Query-key pairs that causal attention within documents computes."""
    return sum(n * (n + 1) // 2 for n in doc_lengths)


def step_flops(
    shape: ModelShape, doc_lengths: Iterable[int], labelled_tokens: int, lora_rank: int | None
) -> float:
    """Useful model FLOPs of one training pass over documents of these lengths."""
    lengths = list(doc_lengths)
    tokens = sum(lengths)
    matmul_factor = 4 if lora_rank is not None else 6
    flops = matmul_factor * shape.n_layers * shape.layer_matmul_params * tokens
    flops += matmul_factor * shape.vocab * shape.hidden * labelled_tokens
    if lora_rank is not None:
        flops += 6 * shape.lora_params(lora_rank) * tokens
    attn_fwd = 4 * shape.n_heads * shape.head_dim * shape.n_layers * attention_pairs(lengths)
    return float(flops + 3.5 * attn_fwd)
