"""The engine's model: a Llama-family causal LM over packed rows, built on an HF model's weights.

`PackedCausalLM.from_hf` takes a transformers Llama / Mistral / Qwen2 model, plain or wrapped by
PEFT (LoRA), and builds the engine's modules around the same weights: q/k/v and gate/up are
concatenated into fused matrices and the HF modules' weights become views into them (no second
copy), and the LoRA parameters are PEFT's own `Parameter` objects. After training, the HF model
and its PEFT adapter hold the trained values, so `save_pretrained` works as usual.
`PackedCausalLM.from_config` builds the same modules with fresh random weights (benchmarks,
FSDP2 runs that start on the meta device).

The forward pass returns the summed cross-entropy over labelled tokens only: the final norm and
the vocabulary projection run on those rows alone (prompts and padding never reach the lm_head),
through Liger's fused linear cross-entropy on CUDA (no [tokens, vocab] logits in memory) or a
plain PyTorch cross-entropy elsewhere.

Not here: other architectures (Gemma's norms, Qwen3's QK-norm, MoE), DoRA, LoRA dropout, embedding
adapters. `check_supported` names what it refuses, so the caller can fall back to the plain path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from tunegate.errors import TrainError
from tunegate.train.engine.layer import LayerSpec, make_layer_fn, rms_norm

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2")
LORA_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_LORA_PARENT = ("self_attn",) * 4 + ("mlp",) * 3


def check_supported(config: Any, seq_len: int) -> None:
    """Raises TrainError naming the first config key the engine cannot honour."""
    mtype = getattr(config, "model_type", "?")
    if mtype not in SUPPORTED_MODEL_TYPES:
        raise TrainError(
            f"engine: model_type {mtype!r} is not supported (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    if getattr(config, "hidden_act", "silu") != "silu":
        raise TrainError(
            f"engine: config.hidden_act={config.hidden_act!r}; only 'silu' (SwiGLU) is supported"
        )
    window = getattr(config, "sliding_window", None)
    if window is not None and getattr(config, "use_sliding_window", True) and window < seq_len:
        raise TrainError(f"engine: config.sliding_window={window} is shorter than the row length {seq_len}")
    if getattr(config, "mlp_bias", False):
        raise TrainError("engine: config.mlp_bias=True is not supported")


def layer_spec_from_config(config: Any, attention: str, lora: tuple[bool, ...] = (False,) * 7) -> LayerSpec:
    n_heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    qkv_bias = bool(getattr(config, "attention_bias", False)) or config.model_type == "qwen2"
    return LayerSpec(
        hidden=config.hidden_size,
        n_heads=n_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
        head_dim=head_dim,
        intermediate=config.intermediate_size,
        rms_eps=config.rms_norm_eps,
        qkv_bias=qkv_bias,
        lora_qkv=(lora[0], lora[1], lora[2]),
        lora_o=(lora[3],),
        lora_gate_up=(lora[4], lora[5]),
        lora_down=(lora[6],),
        attention=attention,
    )


def _param(t: torch.Tensor, trainable: bool) -> nn.Parameter:
    return nn.Parameter(t, requires_grad=trainable)


class PackedDecoderLayer(nn.Module):
    """Holds one layer's fused weights and LoRA parameters; the math is in layer.py."""

    def __init__(
        self,
        weights: dict[str, torch.Tensor | None],
        lora: dict[str, tuple[nn.Parameter, nn.Parameter, float]],
        trainable: bool,
    ) -> None:
        super().__init__()
        for name, t in weights.items():
            if t is None:
                self.register_parameter(name, None)
            else:
                self.register_parameter(name, t if isinstance(t, nn.Parameter) else _param(t, trainable))
        self.lora_scales: list[float] = []
        for name in LORA_NAMES:
            a, b, s = lora.get(name, (None, None, 0.0))
            self.register_parameter(f"lora_A_{name}", a)
            self.register_parameter(f"lora_B_{name}", b)
            self.lora_scales.append(s)
        self.layer_fn: Callable[..., torch.Tensor] | None = None  # set by PackedCausalLM

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: object) -> torch.Tensor:
        assert self.layer_fn is not None
        weights = (self.ln1, self.qkv_w, self.qkv_b, self.o_w, self.ln2, self.gu_w, self.down_w)
        a = [getattr(self, f"lora_A_{n}") for n in LORA_NAMES]
        b = [getattr(self, f"lora_B_{n}") for n in LORA_NAMES]
        return self.layer_fn(x, cos, sin, mask, weights, a, b, self.lora_scales)


class PackedCausalLM(nn.Module):
    def __init__(
        self,
        config: Any,
        layers: list[PackedDecoderLayer],
        embed: nn.Parameter,
        norm: nn.Parameter,
        lm_head: nn.Parameter,
        rotary: nn.Module,
        spec: LayerSpec,
    ) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.layers = nn.ModuleList(layers)
        self.embed_w = embed
        self.norm_w = norm
        self.tied = lm_head is embed
        if not self.tied:
            self.lm_head_w = lm_head
        self.rotary = rotary
        self.checkpoint_layers = 0  # the first N layers recompute their activations in backward
        self.compiled = False
        self.fused_loss = False
        self.peft_names: dict[str, str] = {}  # engine parameter name -> PEFT adapter key
        self.set_layer_fn(compile_layers=False)

    @property
    def head_weight(self) -> torch.Tensor:
        return self.embed_w if self.tied else self.lm_head_w

    def set_layer_fn(self, compile_layers: bool) -> None:
        compile_fn = partial(torch.compile, fullgraph=True, dynamic=False) if compile_layers else None
        fn = make_layer_fn(self.spec, compile_fn)
        self.compiled = compile_layers
        for layer in self.layers:
            layer.layer_fn = fn

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_hf(cls, model: Any, attention: str = "sdpa", keep_hf_views: bool = True) -> PackedCausalLM:
        """Wraps an HF causal LM (optionally a PeftModel with LoRA adapters) without copying weights."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = base.config
        check_supported(config, seq_len=0)
        trainable_base = any(p.requires_grad for n, p in base.named_parameters() if "lora_" not in n)
        inner = base.model
        layers: list[PackedDecoderLayer] = []
        lora_flags: tuple[bool, ...] | None = None
        peft_names: dict[str, str] = {}
        for i, hf in enumerate(inner.layers):
            mods = [
                getattr(getattr(hf, parent), name)
                for parent, name in zip(_LORA_PARENT, LORA_NAMES, strict=True)
            ]
            lora: dict[str, tuple[nn.Parameter, nn.Parameter, float]] = {}
            for name, parent, mod in zip(LORA_NAMES, _LORA_PARENT, mods, strict=True):
                if hasattr(mod, "lora_A") and "default" in mod.lora_A:
                    if getattr(mod, "use_dora", {}).get("default", False):
                        raise TrainError(f"engine: DoRA on layers.{i}.{parent}.{name} is not supported")
                    drop = mod.lora_dropout["default"]
                    if isinstance(drop, nn.Dropout) and drop.p > 0:
                        raise TrainError(
                            f"engine: lora_dropout={drop.p} on {name}; the engine needs lora_dropout=0"
                        )
                    lora[name] = (
                        mod.lora_A["default"].weight,
                        mod.lora_B["default"].weight,
                        float(mod.scaling["default"]),
                    )
                    for ab in ("A", "B"):
                        peft_names[f"layers.{i}.lora_{ab}_{name}"] = (
                            f"base_model.model.model.layers.{i}.{parent}.{name}.lora_{ab}.weight"
                        )
            flags = tuple(n in lora for n in LORA_NAMES)
            if lora_flags is not None and flags != lora_flags:
                raise TrainError(
                    f"engine: layer {i} has LoRA on {flags}, layer 0 on {lora_flags}; all layers must match"
                )
            lora_flags = flags
            base_lin = [getattr(m, "base_layer", m) for m in mods]
            with torch.no_grad():
                qkv_w = torch.cat([m.weight for m in base_lin[:3]])
                qkv_b = torch.cat([m.bias for m in base_lin[:3]]) if base_lin[0].bias is not None else None
                gu_w = torch.cat([base_lin[4].weight, base_lin[5].weight])
            weights = {
                "ln1": hf.input_layernorm.weight,
                "qkv_w": _param(qkv_w, trainable_base),
                "qkv_b": None if qkv_b is None else _param(qkv_b, trainable_base),
                "o_w": base_lin[3].weight,
                "ln2": hf.post_attention_layernorm.weight,
                "gu_w": _param(gu_w, trainable_base),
                "down_w": base_lin[6].weight,
            }
            # The HF modules now read views of the fused matrices, so nothing is stored twice.
            _repoint(base_lin[:3], weights["qkv_w"], "weight", keep_hf_views)
            if qkv_b is not None:
                _repoint(base_lin[:3], weights["qkv_b"], "bias", keep_hf_views)
            _repoint(base_lin[4:6], weights["gu_w"], "weight", keep_hf_views)
            layers.append(PackedDecoderLayer(weights, lora, trainable_base))
        spec = layer_spec_from_config(config, attention, lora_flags or (False,) * 7)
        lm_head = base.lm_head.weight
        embed = inner.embed_tokens.weight
        model_ = cls(config, layers, embed, inner.norm.weight, lm_head, inner.rotary_emb, spec)
        model_.peft_names = peft_names
        return model_

    @classmethod
    def from_config(
        cls,
        config: Any,
        lora_rank: int | None,
        lora_alpha: float = 32.0,
        attention: str = "sdpa",
        dtype: torch.dtype = torch.bfloat16,
        device: torch.device | str = "cpu",
    ) -> PackedCausalLM:
        """Random weights in the engine's own layout (LoRA on all linear layers when lora_rank is set)."""
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        check_supported(config, seq_len=0)
        trainable = lora_rank is None
        flags = (lora_rank is not None,) * 7
        spec = layer_spec_from_config(config, attention, flags)
        d, inter = spec.hidden, spec.intermediate
        dq, dk, dv = spec.qkv_sizes
        dev = torch.device(device)
        std = getattr(config, "initializer_range", 0.02)

        def w(*shape: int) -> torch.Tensor:
            t = torch.empty(*shape, dtype=dtype, device=dev)
            return t if dev.type == "meta" else t.normal_(0.0, std)

        def ones(n: int) -> torch.Tensor:
            return torch.ones(n, dtype=dtype, device=dev)

        layers = []
        outs = {
            "q_proj": dq,
            "k_proj": dk,
            "v_proj": dv,
            "o_proj": d,
            "gate_proj": inter,
            "up_proj": inter,
            "down_proj": d,
        }
        ins = {
            "q_proj": d,
            "k_proj": d,
            "v_proj": d,
            "o_proj": dq,
            "gate_proj": d,
            "up_proj": d,
            "down_proj": inter,
        }
        for _ in range(config.num_hidden_layers):
            lora = {}
            if lora_rank is not None:
                for n in LORA_NAMES:
                    a = torch.empty(lora_rank, ins[n], dtype=torch.float32, device=dev)
                    if dev.type != "meta":
                        nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT's default init
                    b = torch.zeros(outs[n], lora_rank, dtype=torch.float32, device=dev)
                    lora[n] = (nn.Parameter(a), nn.Parameter(b), lora_alpha / lora_rank)
            weights = {
                "ln1": ones(d),
                "qkv_w": w(dq + dk + dv, d),
                "qkv_b": torch.zeros(dq + dk + dv, dtype=dtype, device=dev) if spec.qkv_bias else None,
                "o_w": w(d, dq),
                "ln2": ones(d),
                "gu_w": w(2 * inter, d),
                "down_w": w(d, inter),
            }
            layers.append(PackedDecoderLayer(weights, lora, trainable))
        embed = _param(w(config.vocab_size, d), trainable)
        head = embed if config.tie_word_embeddings else _param(w(config.vocab_size, d), trainable)
        rotary = LlamaRotaryEmbedding(config)  # built on the CPU; meta models rebuild it after to_empty
        if dev.type != "meta":
            rotary.to(dev)
        return cls(config, layers, embed, _param(ones(d), trainable), head, rotary, spec)

    # --- forward --------------------------------------------------------------------------------

    def hidden_states(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, mask: object
    ) -> torch.Tensor:
        x = F.embedding(input_ids, self.embed_w)
        cos, sin = self.rotary(x, position_ids)
        for i, layer in enumerate(self.layers):
            if i < self.checkpoint_layers and torch.is_grad_enabled():
                x = checkpoint(layer, x, cos, sin, mask, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask)
        return x

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        mask: object,
        label_index: torch.Tensor,
        label_targets: torch.Tensor,
    ) -> torch.Tensor:
        """Summed cross-entropy (fp32) over the labelled positions `label_index` of the flattened rows."""
        x = self.hidden_states(input_ids, position_ids, mask)
        h = x.reshape(-1, x.shape[-1]).index_select(0, label_index)
        h = rms_norm(h, self.norm_w, self.spec.rms_eps)
        return labelled_loss_sum(h, self.head_weight, label_targets, fused=self.fused_loss)

    @torch.no_grad()
    def token_losses(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, mask: object, targets: torch.Tensor
    ) -> torch.Tensor:
        """[rows, seq] fp32 cross-entropy of every position (0 where the target is -100); for
        evaluation and per-example losses, not for training (it materialises all logits)."""
        x = self.hidden_states(input_ids, position_ids, mask)
        h = rms_norm(x, self.norm_w, self.spec.rms_eps)
        logits = F.linear(h, self.head_weight).float()
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(targets.shape)

    def trainable_parameters(self) -> list[nn.Parameter]:
        seen: set[int] = set()
        out = []
        for p in self.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out


def _repoint(mods: list[nn.Module], fused: nn.Parameter, attr: str, keep_views: bool) -> None:
    start = 0
    for m in mods:
        n = getattr(m, attr).shape[0]
        if keep_views:
            view = fused.detach()[start : start + n]
        else:
            view = torch.empty(0, dtype=fused.dtype, device=fused.device)
        setattr(m, attr, nn.Parameter(view, requires_grad=fused.requires_grad))
        start += n


def labelled_loss_sum(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, fused: bool
) -> torch.Tensor:
    """Sum of token cross-entropies; `fused` uses Liger's kernel, which never holds all logits."""
    if fused:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        # chunk_mem_const=8 lets each chunk's logits take 8x the hidden rows' memory: ~2k-row chunks,
        # large enough for efficient matmuls, small enough (~0.5 GiB) to never matter for memory.
        # Full fine-tuning accumulates the lm_head gradient over chunks: in fp32, not bf16.
        accum = torch.float32 if weight.requires_grad else None
        return liger_fused_linear_cross_entropy(
            h, weight, targets, reduction="sum", chunk_mem_const=8, accum_dtype=accum
        )
    logits = F.linear(h, weight).float()
    return F.cross_entropy(logits, targets, reduction="sum")
