"""tunegate's GPU training engine for SFT: packed rows with document masking, fused pieces, a
memory planner, FSDP2 over several GPUs. Runs on CPU too (plain PyTorch), which the tests use.

Entry point: `train_sft(model, tokenizer, examples, config) -> EngineResult`.
"""

from tunegate.train.engine.config import EngineConfig, EngineResult
from tunegate.train.engine.flops import ModelShape, step_flops
from tunegate.train.engine.loop import train_sft
from tunegate.train.engine.model import PackedCausalLM, check_supported
from tunegate.train.engine.packing import TokenExample, build_batch, pack_rows, plan_steps, to_token_example
from tunegate.train.engine.planner import MemoryPlan, plan_memory

__all__ = [
    "EngineConfig",
    "EngineResult",
    "MemoryPlan",
    "ModelShape",
    "PackedCausalLM",
    "TokenExample",
    "build_batch",
    "check_supported",
    "pack_rows",
    "plan_memory",
    "plan_steps",
    "step_flops",
    "to_token_example",
    "train_sft",
]
