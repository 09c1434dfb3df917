"""How the policy is spread over processes: ``ddp`` (accelerate; whole model per process) or ``fsdp`` (FSDP2).

The loop talks to one small interface and never asks which strategy runs:

- :meth:`prepare` wraps the policy and builds its optimizer (DDP: ``accelerator.prepare``; FSDP:
  ``fully_shard`` per transformer block + the root, then the optimizer over the sharded parameters);
- :meth:`generation` makes the model usable outside its own ``forward`` (``generate``, the reference);
- :meth:`clip_grad_norm_` and :meth:`weights_finite` see the whole model, not one shard;
- :meth:`model_state_dict` / :meth:`optimizer_state_dict` gather what a checkpoint saves (full, FQN-keyed
  tensors on the main process), :meth:`load_optimizer_state_dict` puts it back onto any process count.

With both strategies each process rolls out its share of every batch with its own RNG stream; gradients
are averaged over processes (DDP: all-reduce; FSDP: reduce-scatter), so the update equals a one-process
update on the global batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from rlhf.config import FSDPConfig, TrainerConfig

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


class DDPStrategy:
    """accelerate's data parallelism: every process holds the whole model; gradients are all-reduced."""

    sharded = False
    quant_storage = None  # bitsandbytes' default (uint8)
    synced_generation = False  # a process may stop generating at EOS before the others

    def __init__(self, accelerator) -> None:
        self.accelerator = accelerator

    def prepare(self, policy: nn.Module, make_optimizer: OptimizerFactory):
        return self.accelerator.prepare(policy, make_optimizer(policy.trainable_parameters()))

    def generation(self, policy: nn.Module):
        return nullcontext()

    def clip_grad_norm_(self, params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
        return torch.as_tensor(self.accelerator.clip_grad_norm_(params, max_norm)).detach().float()

    def weights_finite(self, params: list[nn.Parameter]) -> bool:
        return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())

    def model_state_dict(self, policy: nn.Module) -> dict | None:
        return None  # the module's own weights are whole: saved as they are

    def optimizer_state_dict(self, model: nn.Module, optimizer) -> dict:
        return optimizer.state_dict()

    def load_optimizer_state_dict(self, model: nn.Module, optimizer, state: dict) -> None:
        if _keyed_by_name(state):  # written by a sharded run
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(model, getattr(optimizer, "optimizer", optimizer), state,
                                     options=StateDictOptions(full_state_dict=True))
        else:
            optimizer.load_state_dict(state)


class FSDPStrategy:
    """PyTorch FSDP2: ``fully_shard`` on every transformer block, then on the policy (embeddings, lm_head,
    value head); a frozen reference copy (no LoRA) is sharded the same way.

    Each process holds 1/N of every parameter, gradient and optimizer state; a block's weights are
    all-gathered for its forward and backward and freed after. Checkpoints hold gathered, FQN-keyed weights
    and optimizer states, so they load onto any process count.
    """

    sharded = True
    quant_storage = torch.float32  # uniform with LoRA and the norms in each block's flat group (FSDP-QLoRA)

    def __init__(self, accelerator, options: FSDPConfig) -> None:
        self.accelerator, self.options = accelerator, options
        self._blocks: list[nn.Module] = []
        # Blocks gathered per forward: every process must run as many forwards as the longest one.
        self.synced_generation = not options.gather_for_generation

    # ------------------------------------------------------------------------------------- prepare

    def _fsdp_kwargs(self) -> dict:
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

        kwargs: dict = {}
        if self.options.param_dtype is not None:
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=getattr(torch, self.options.param_dtype),
                                                       reduce_dtype=torch.float32)
        if self.options.cpu_offload:  # pinned host memory needs a GPU runtime
            kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=torch.cuda.is_available())
        return kwargs

    def _shard(self, network: nn.Module, root: nn.Module, trained: bool) -> list[nn.Module]:
        """``fully_shard`` every transformer block of ``network`` (``_no_split_modules``), then ``root``."""
        from torch.distributed.fsdp import fully_shard

        base = network.get_base_model() if hasattr(network, "get_base_model") else network
        block_names = set(getattr(base, "_no_split_modules", None) or ())
        blocks = [m for m in network.modules() if type(m).__name__ in block_names]
        if not blocks:
            raise ValueError(f"trainer.strategy: fsdp: no transformer blocks found in {type(base).__name__} "
                             "(it declares no `_no_split_modules`); use trainer.strategy: ddp for this model")
        kwargs = self._fsdp_kwargs()
        for block in blocks:
            fully_shard(block, reshard_after_forward=self.options.reshard_after_forward, **kwargs)
        # A trained root keeps its weights gathered from forward to backward (FSDP's default for the root):
        # the reference forward (adapters disabled) enters below the root and needs its embeddings and
        # lm_head. A frozen root has no backward to free them: it reshards after its forward.
        fully_shard(root, reshard_after_forward=None if trained else True, **kwargs)
        return blocks

    def prepare(self, policy: nn.Module, make_optimizer: OptimizerFactory):
        self._blocks = self._shard(policy.model, policy, trained=True)
        # A full fine-tune's frozen reference copy is sharded too, or it would not fit either. It may be
        # loaded lazily, at its first use (every process at the same step): then shard it when it loads.
        reference = policy.__dict__.get("_ref_model")
        if isinstance(reference, nn.Module):
            self._shard(reference, reference, trained=False)
        elif callable(reference):
            policy.__dict__["_ref_model"] = lambda: self._sharded_reference(reference())
        optimizer = make_optimizer(policy.trainable_parameters())
        # FSDP2 makes the first module to run forward the root. generate() and the reference forward enter
        # below the policy, so run one forward through the policy first.
        with torch.no_grad():
            token = torch.zeros((1, 1), dtype=torch.long, device=self.accelerator.device)
            policy(token, torch.ones_like(token), logits_to_keep=1, with_values=False)
        for module in (policy, *self._blocks):  # the root (and blocks without reshard_after_forward) keep
            module.reshard()                    # their weights gathered after a forward: free them
        return policy, optimizer

    def _sharded_reference(self, reference: nn.Module) -> nn.Module:
        self._shard(reference, reference, trained=False)
        return reference

    # ---------------------------------------------------------------------------------- generation

    @contextmanager
    def generation(self, policy) -> Iterator[None]:
        """Gather the root's weights (embeddings, lm_head: used by every generated token) for the rollout.

        ``gather_for_generation`` also gathers every block once (the whole model is held during the rollout,
        as DeepSpeed-Chat's hybrid engine and TRL's FSDP generation do); otherwise each block is gathered
        for each forward, i.e. at every generated token: memory-light, and many all-gathers.
        """
        gathered = [policy, *self._blocks] if self.options.gather_for_generation else [policy]
        for module in gathered:
            module.unshard()
        if self.options.gather_for_generation:
            for block in self._blocks:
                block.set_reshard_after_forward(False, recurse=False)
        try:
            yield
        finally:
            if self.options.gather_for_generation:
                for block in self._blocks:
                    block.set_reshard_after_forward(self.options.reshard_after_forward, recurse=False)
            for module in gathered:
                module.reshard()

    # ------------------------------------------------------------------------------- whole-model views

    def clip_grad_norm_(self, params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)  # over DTensor shards: the global norm
        return _full(norm).detach().float()

    def weights_finite(self, params: list[nn.Parameter]) -> bool:
        local = torch.stack([_local(p.detach()).isfinite().all() for p in params]).all().float()
        return bool(self.accelerator.reduce(local.to(self.accelerator.device), reduction="sum") ==
                    self.accelerator.num_processes)

    def model_state_dict(self, policy: nn.Module) -> dict:
        """Whole weights, keyed like ``policy.state_dict()``, on the main process (empty elsewhere)."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(policy, options=_full_options())

    def optimizer_state_dict(self, model: nn.Module, optimizer) -> dict:
        """Whole AdamW states keyed by parameter name (so any process count can load them), on the main
        process; tensors, numbers and strings only."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_full_options())

    def load_optimizer_state_dict(self, model: nn.Module, optimizer, state: dict) -> None:
        """Each process takes its shard of the whole, name-keyed state (every process read the file)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if not _keyed_by_name(state):  # written by a DDP run
            state = optimizer_state_by_name(state, [n for n, p in model.named_parameters() if p.requires_grad])
        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def optimizer_state_by_name(state: dict, names: list[str]) -> dict:
    """A torch optimizer state dict (parameters numbered in optimizer order) keyed by parameter name instead,
    as ``torch.distributed.checkpoint.state_dict`` writes it; ``names`` in the optimizer's order."""
    return {"state": {names[i]: v for i, v in state["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}


def _keyed_by_name(optimizer_state: dict) -> bool:
    groups = optimizer_state.get("param_groups") or [{"params": []}]
    return any(isinstance(p, str) for g in groups for p in g["params"])


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def make_strategy(trainer: TrainerConfig, accelerator) -> DDPStrategy | FSDPStrategy:
    """The strategy named by ``trainer.strategy``; ``ValueError`` for FSDP in a single process."""
    if trainer.strategy == "ddp":
        return DDPStrategy(accelerator)
    if accelerator.num_processes < 2:
        raise ValueError("trainer.strategy: fsdp shards the model across processes, but this is 1 process: "
                         "launch with `torchrun --nproc_per_node N -m rlhf run ...` (or `accelerate launch "
                         "--num_processes N -m rlhf run ...`), or use trainer.strategy: ddp")
    return FSDPStrategy(accelerator, trainer.fsdp_options)
