"""Several GPUs: PyTorch's FSDP2 (`fully_shard`) over the engine's layers, processes from accelerate.

The processes come from `accelerate launch` (or torchrun); `accelerate.PartialState` joins the
process group and picks this process's GPU. Each decoder layer is one FSDP2 unit (its weights are
all-gathered just before it runs and its gradients reduce-scattered right after its backward),
then the root holds the embedding, final norm and lm_head. Nothing here moves tensors by hand.

LoRA: the frozen base weights are bf16 and only all-gathered, never reduced; they are kept
gathered between forward and backward (`reshard_after_forward=False`), trading memory the
adapters do not need for one all-gather per layer and step instead of two. Full fine-tuning keeps
fp32 shards (the optimizer's master weights) computed in bf16 and reduced in fp32, and reshards
after forward, since weights, gradients and Adam state for a large model fill the GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """This process's rank and device; joins the process group when launched on several GPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        from accelerate import PartialState

        cuda = torch.cuda.is_available()
        state = PartialState(cpu=not cuda)  # NCCL on GPUs; gloo on CPU (the tests)
        device = state.device if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        return DistInfo(state.process_index, state.num_processes, device)
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
    return DistInfo(0, 1, device)


def shard(
    model: torch.nn.Module,
    lora: bool,
    compute_dtype: torch.dtype = torch.bfloat16,
    replicate_base: bool = False,
) -> None:
    """Applies FSDP2 to each decoder layer, then to the root module.

    `replicate_base` (LoRA only): a (replicate = all GPUs) x (shard = 1) mesh, FSDP2's hybrid mode,
    keeps the frozen base weights whole on every GPU, so nothing is all-gathered and only the
    adapters' gradients are all-reduced. It needs the base model to fit on one GPU."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = None
    if lora and replicate_base:
        from torch.distributed.device_mesh import init_device_mesh

        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        world = torch.distributed.get_world_size()
        mesh = init_device_mesh(device_type, (world, 1), mesh_dim_names=("replicate", "shard"))
    mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    for layer in model.layers:
        fully_shard(layer, mesh=mesh, mp_policy=mp, reshard_after_forward=not lora)
    fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=not lora)


def set_gradient_sync(model: torch.nn.Module, sync: bool) -> None:
    """Skip the reduce-scatter on all but the last micro-batch of a step."""
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(sync)


def all_reduce_sum(t: torch.Tensor, world_size: int) -> torch.Tensor:
    if world_size > 1:
        torch.distributed.all_reduce(t)
    return t


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t
