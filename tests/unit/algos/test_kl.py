"""KL estimators and controllers on hand-computed numbers."""

import math

import pytest
import torch

from rlhf.algos import (
    KL_ESTIMATORS,
    AdaptiveKLController,
    FixedKLController,
    kl_estimate,
    make_kl_controller,
)


def test_registry_names():
    assert KL_ESTIMATORS.names() == ["k1", "k2", "k3"]


def test_estimators_on_known_numbers():
    logp = torch.tensor([[-1.0, -2.0, -0.5]])
    ref_logp = torch.tensor([[-2.0, -1.0, -0.5]])
    # logp - ref = [1, -1, 0]
    assert torch.allclose(kl_estimate(logp, ref_logp, "k1"), torch.tensor([[1.0, -1.0, 0.0]]))
    # 0.5 * d^2 = [0.5, 0.5, 0]
    assert torch.allclose(kl_estimate(logp, ref_logp, "k2"), torch.tensor([[0.5, 0.5, 0.0]]))
    # log r = ref - logp = [-1, 1, 0]; exp(log r) - log r - 1 = [e^-1, e - 2, 0] = [0.36788, 0.71828, 0]
    expected_k3 = torch.tensor([[math.exp(-1.0), math.e - 2.0, 0.0]])
    assert torch.allclose(kl_estimate(logp, ref_logp, "k3"), expected_k3)


def test_k3_clamps_log_ratio_to_stay_finite():
    logp = torch.tensor([0.0, 0.0])
    ref_logp = torch.tensor([-1000.0, 1000.0])
    # log r clamped to -20 and 20: e^-20 + 20 - 1 ~ 19 ; e^20 - 20 - 1
    expected = torch.tensor([math.exp(-20.0) + 19.0, math.exp(20.0) - 21.0])
    result = kl_estimate(logp, ref_logp, "k3")
    assert torch.isfinite(result).all()
    assert torch.allclose(result, expected)


def test_unknown_estimator_is_a_value_error_listing_names():
    with pytest.raises(ValueError, match="'k4'.*k1, k2, k3"):
        kl_estimate(torch.zeros(1), torch.zeros(1), "k4")


def test_estimator_names_are_case_insensitive():
    assert torch.equal(kl_estimate(torch.ones(1), torch.zeros(1), "K1"), torch.ones(1))


def test_fixed_controller_never_moves():
    controller = FixedKLController(0.1)
    controller.update(current_kl=100.0, n_steps=10**6)
    assert controller.value == 0.1
    assert controller.state_dict() == {"value": 0.1}


def test_adaptive_controller_moves_toward_target_and_clips_at_20_percent():
    # target 6, horizon 10000, n_steps 1000 -> multiplier 1 + e * 0.1
    controller = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10000)
    controller.update(current_kl=12.0, n_steps=1000)  # e = 12/6 - 1 = 1 -> clipped to 0.2 -> x1.02
    assert controller.value == pytest.approx(0.204)
    controller = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10000)
    controller.update(current_kl=3.0, n_steps=1000)  # e = 3/6 - 1 = -0.5 -> clipped to -0.2 -> x0.98
    assert controller.value == pytest.approx(0.196)
    controller = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10000)
    controller.update(current_kl=6.6, n_steps=1000)  # e = 0.1, inside the clip -> x1.01
    assert controller.value == pytest.approx(0.202)
    controller.update(current_kl=6.0, n_steps=1000)  # on target: e = 0 -> unchanged
    assert controller.value == pytest.approx(0.202)


def test_adaptive_controller_state_round_trip():
    controller = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10000)
    controller.update(current_kl=12.0, n_steps=1000)
    restored = AdaptiveKLController(init_coef=0.5, target=6.0, horizon=10000)
    restored.load_state_dict(controller.state_dict())
    assert restored.value == controller.value
    controller.update(current_kl=1.0, n_steps=500)
    restored.update(current_kl=1.0, n_steps=500)
    assert restored.value == controller.value


def test_make_kl_controller_picks_adaptive_only_with_target():
    assert isinstance(make_kl_controller(0.2), FixedKLController)
    adaptive = make_kl_controller(0.2, target=6.0, horizon=500)
    assert isinstance(adaptive, AdaptiveKLController)
    assert adaptive.horizon == 500


@pytest.mark.parametrize(
    "kwargs, field",
    [({"init_coef": -1.0, "target": 6.0, "horizon": 10}, "coef"),
     ({"init_coef": 0.1, "target": 0.0, "horizon": 10}, "target"),
     ({"init_coef": 0.1, "target": 6.0, "horizon": 0}, "horizon")],
)
def test_adaptive_controller_rejects_bad_settings(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AdaptiveKLController(**kwargs)
