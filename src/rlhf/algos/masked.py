"""Masked statistics over response tokens: mean, variance and whitening.

Every function selects entries with ``torch.where`` instead of multiplying by the mask, so NaN or inf
left in padded positions (mask == 0) never leaks into a result or its gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

WHITEN_EPS = 1e-8


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is nonzero.

    Shapes: ``x`` and ``mask`` broadcastable, e.g. ``(B, T)``; the result is a scalar when ``dim`` is None,
    else ``x`` reduced over ``dim`` (e.g. ``(B,)`` for ``dim=-1``).
    A float mask counts an entry when it is nonzero (it is a selector, not a weight). Where no entry is
    selected the mean is 0, not NaN, so an all-padding micro-batch adds nothing instead of poisoning a step.
    """
    selected = mask.bool()
    total = torch.where(selected, x, 0.0).sum(dim=dim)
    count = selected.expand_as(x).sum(dim=dim).to(total.dtype)
    # Divide by a safe count, then zero the empty groups: dividing by 0 first would put NaN in the gradient.
    safe_count = torch.where(count > 0, count, torch.ones_like(count))
    return torch.where(count > 0, total / safe_count, 0.0)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over the entries where ``mask`` is nonzero (a scalar).

    Shapes: ``x`` and ``mask`` broadcastable, e.g. ``(B, T)``; the result is a scalar.
    ``unbiased`` applies Bessel's correction ``n / (n - 1)`` as TRL's ``masked_var`` does. Departure from
    TRL: with fewer than two selected entries TRL raises; here the (biased, zero) variance is returned,
    because raising would need a host sync (``.item()``) on every call.
    """
    mean = masked_mean(x, mask)
    centered = torch.where(mask.bool(), x - mean, 0.0)
    var = masked_mean(centered.square(), mask)
    if not unbiased:
        return var
    count = mask.bool().expand_as(x).sum().to(var.dtype)
    correction = torch.where(count > 1, count / (count - 1).clamp(min=1), torch.ones_like(count))
    return var * correction


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """Normalise ``x`` to zero mean and unit variance over the masked entries; 0 where ``mask`` is 0.

    Shapes: ``x`` ``(B, T)``, ``mask`` ``(B, T)`` -> ``(B, T)``.
    Uses the unbiased masked variance and adds ``1e-8`` before the square root (as TRL's ``masked_whiten``).
    ``shift_mean=False`` only rescales: the masked mean is added back after dividing by the std.
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask, unbiased=True)
    whitened = (x - mean) * torch.rsqrt(var + WHITEN_EPS)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, 0.0)
