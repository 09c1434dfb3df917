"""The trained network: causal LM (+ LoRA) + optional value head, and the reference it is compared with.

With LoRA the reference model is the policy with its adapters disabled (no second copy in memory);
without LoRA it is a frozen copy, loaded on first use (a run with KL coefficient 0 never loads it).
:meth:`Policy.reference_logits` hides which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

VALUE_HEAD_FILE = "value_head.safetensors"


# ---------------------------------------------------------------------------------------- value head


class ValueHead(nn.Module):
    """PPO's critic: a scalar per token from the policy's last hidden state (kept in float32)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.summary.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # F.linear with the 1-D weight row gives (B, T) directly: a squeezed view would make FSDP warn that
        # an in-place op on it could skip its pre-backward hook.
        # .float(): FSDP mixed precision gathers the head in bf16 like the rest of the root.
        weight, bias = self.summary.weight[0].float(), self.summary.bias[0].float()
        return nn.functional.linear(hidden.float(), weight, bias)  # (B, T)


# -------------------------------------------------------------------------------------------- policy


@dataclass
class ForwardOutput:
    logits: torch.Tensor  # (B, K, V): the last K positions' logits
    values: torch.Tensor | None  # (B, K)


class Policy(nn.Module):
    """The trained network: causal LM (+ LoRA) + optional value head + a way to get reference outputs."""

    def __init__(self, model: nn.Module, value_head: ValueHead | None,
                 ref_model: nn.Module | Callable[[], nn.Module] | None, uses_lora: bool) -> None:
        super().__init__()
        self.model = model
        self.value_head = value_head
        self.uses_lora = uses_lora
        # A frozen reference outside the module tree, so it is neither trained, saved nor wrapped by DDP;
        # a callable loads it on first use.
        self.__dict__["_ref_model"] = ref_model
        self._captured: torch.Tensor | None = None
        self.model.get_output_embeddings().register_forward_hook(self._capture_hidden)

    def _capture_hidden(self, module, inputs, output) -> None:
        # The lm_head's input is the final hidden state (already cut to `logits_to_keep` positions).
        self._captured = inputs[0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int = 0,
                with_values: bool = True) -> ForwardOutput:
        """Logits (and values) of the last ``logits_to_keep`` positions (0: all), left padding aware."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         logits_to_keep=logits_to_keep, use_cache=False)
        hidden, self._captured = self._captured, None
        values = self.value_head(hidden) if with_values and self.value_head is not None else None
        return ForwardOutput(out.logits, values)

    @contextmanager
    def as_reference(self) -> Iterator[nn.Module]:
        """The reference network: the policy with adapters disabled (LoRA) or the frozen copy."""
        if self.uses_lora:
            with self.model.disable_adapter():
                yield self.model
        else:
            if callable(self.__dict__["_ref_model"]) and not isinstance(self.__dict__["_ref_model"], nn.Module):
                self.__dict__["_ref_model"] = self.__dict__["_ref_model"]()
            yield self.__dict__["_ref_model"]

    @property
    def reference_loaded(self) -> bool:
        """False while a frozen reference copy has not been needed yet (always True with LoRA)."""
        return self.uses_lora or isinstance(self.__dict__["_ref_model"], nn.Module)

    @torch.no_grad()
    def reference_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         logits_to_keep: int = 0) -> torch.Tensor:
        """Logits of the reference model for the last ``logits_to_keep`` positions (0: all)."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with self.as_reference() as network:
            out = network(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          logits_to_keep=logits_to_keep, use_cache=False)
        self._captured = None
        return out.logits

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def save(self, folder: str | Path, tokenizer=None, state_dict: dict | None = None) -> None:
        """``save_pretrained`` of the model (the adapter only, with LoRA), the value head and the tokenizer.

        ``state_dict`` (keyed like :meth:`state_dict`) replaces the module's own weights: the gathered whole
        weights of a sharded policy, so a sharded run saves the same folder as a single-process one.
        """
        from safetensors.torch import save_file

        folder = Path(folder)
        own = state_dict if state_dict is not None else self.state_dict()
        if state_dict is None:
            self.model.save_pretrained(folder)
        else:
            self.model.save_pretrained(folder, state_dict={k.removeprefix("model."): v for k, v in own.items()
                                                           if k.startswith("model.")})
        if self.value_head is not None:
            head = {k.removeprefix("value_head."): v for k, v in own.items() if k.startswith("value_head.")}
            save_file({k: v.detach().cpu().contiguous() for k, v in head.items()}, str(folder / VALUE_HEAD_FILE))
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
