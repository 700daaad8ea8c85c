"""Attention for packed rows on TRL's path: each conversation attends to itself, computed alone.

A packed batch is one row holding several conversations, with `position_ids` restarting at 0 where
each begins. transformers keeps attention inside conversations by building a block-diagonal
[row, row] mask, and SDPA then computes every block of it, the masked ones too: at 8 conversations
of ~200 tokens that is 8x the attention work that counts, about a third of a SmolLM2-135M step on a
CPU. Here the row is cut at the restarts and each conversation runs as its own causal SDPA call,
so no masked block is computed: the same result with no cross-conversation terms (the packing test
checks it against unpacked losses). transformers does this only through flash-attention's varlen
kernels (CUDA); this is the same idea for any device, as an attention function transformers calls.

Anything that is not one packed training row (padded batches, generation with a cache) goes to
transformers' own SDPA function unchanged.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F

NAME = "tunegate_packed_sdpa"
_registered = False


def _packed_sdpa(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    length = query.shape[2]
    if position_ids is None or query.shape[0] != 1 or key.shape[2] != length or length < 2:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    starts = (position_ids.reshape(-1) == 0).nonzero().reshape(-1).tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, length]
    gqa = query.shape[1] != key.shape[1]
    pieces = [
        F.scaled_dot_product_attention(
            query[:, :, a:b],
            key[:, :, a:b],
            value[:, :, a:b],
            dropout_p=dropout,
            is_causal=True,
            scale=scaling,
            enable_gqa=gqa,
        )
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]
    out = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)
    return out.transpose(1, 2).contiguous(), None


def packed_attention() -> str:
    """Register the attention function with transformers (once) and return its name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        AttentionInterface.register(NAME, _packed_sdpa)
        # Padded batches still need SDPA's mask; a packed row's mask is built and not read.
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
        _registered = True
    return NAME
