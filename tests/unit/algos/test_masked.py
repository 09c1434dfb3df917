"""Masked mean, variance and whitening on tiny hand-computed tensors."""

import math

import torch

from rlhf.algos import masked_mean, masked_var, whiten


def test_masked_mean_ignores_masked_entries_even_nan():
    x = torch.tensor([[1.0, 2.0, float("nan")], [3.0, float("inf"), 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    # (1 + 2 + 3 + 6) / 4 = 3
    assert torch.allclose(masked_mean(x, mask), torch.tensor(3.0))
    # rows: (1 + 2) / 2 = 1.5 ; (3 + 6) / 2 = 4.5
    assert torch.allclose(masked_mean(x, mask, dim=-1), torch.tensor([1.5, 4.5]))


def test_masked_mean_of_empty_selection_is_zero_with_finite_gradient():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    row_means = masked_mean(x, mask, dim=-1)
    assert torch.equal(row_means.detach(), torch.tensor([1.5, 0.0]))
    row_means.sum().backward()
    # d/dx of row 0's mean is 1/2 per entry; the empty row contributes nothing, not NaN.
    assert torch.equal(x.grad, torch.tensor([[0.5, 0.5], [0.0, 0.0]]))


def test_masked_var_unbiased_and_biased():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    # mean 2, squared deviations 1 + 0 + 1 = 2 -> biased 2/3, unbiased 2/2 = 1
    assert torch.allclose(masked_var(x, mask, unbiased=False), torch.tensor(2.0 / 3.0))
    assert torch.allclose(masked_var(x, mask), torch.tensor(1.0))


def test_masked_var_of_single_entry_is_zero_not_nan():
    assert masked_var(torch.tensor([[5.0, 7.0]]), torch.tensor([[1, 0]])) == 0.0


def test_whiten_hand_example():
    x = torch.tensor([[1.0, 2.0, 3.0, -50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # mean 2, unbiased var 1 -> (x - 2) / sqrt(1 + 1e-8); padding stays 0
    assert torch.allclose(whiten(x, mask), torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-6)
    # shift_mean=False adds the mean back: [1, 2, 3, 0]
    assert torch.allclose(whiten(x, mask, shift_mean=False), torch.tensor([[1.0, 2.0, 3.0, 0.0]]), atol=1e-6)


def test_whiten_std_is_unit():
    x = torch.tensor([[0.0, 4.0], [8.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    # mean 4, unbiased var (16 + 0 + 16) / 2 = 16, std 4 -> [-1, 0, 1]
    expected = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    assert torch.allclose(whiten(x, mask), expected, atol=1e-6)
    assert not math.isnan(whiten(x, mask).sum())
