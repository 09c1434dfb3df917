"""load_reward: every spec form, the registry, options bound to plain functions, and the errors."""

import math

import pytest
import torch

from rlhf.rewards import REWARDS, Length, Reward, load_reward, validate_scores
from rlhf.rewards.base import RewardOutputError


def test_every_registered_reward_is_a_factory_of_callables():
    assert REWARDS.names() == ["agentic_communal", "classifier", "hackable_word_count", "length", "llm_judge",
                               "sentiment", "target_words", "toxicity"]
    reward = REWARDS.get("length")(target=3)
    assert isinstance(reward, Length) and reward(["p"], ["a b c"]) == [1.0]


@pytest.mark.parametrize(
    "spec",
    ["length", {"name": "length"}, {"name": "LENGTH", "weight": 2}, {"name": "length", "target": 20}],
)
def test_spec_forms(spec):
    reward = load_reward(spec)
    assert isinstance(reward, Reward) and reward.name == "length" and reward.__name__ == "length"
    assert reward(["", ""], ["word " * 20, ""]) == [1.0, 0.0]


def test_weight_is_carried_not_applied():
    reward = load_reward({"name": "length", "target": 1, "weight": 0.5})
    assert reward.weight == 0.5 and reward([""], ["one"]) == [1.0]


def test_profile_reward_spec_model_is_accepted():
    from rlhf.config import RewardSpec

    reward = load_reward(RewardSpec(name="length", weight=0.5, target=1, shaping=[{"name": "negate"}]))
    assert (reward.weight, reward([""], ["one"])) == (0.5, [-1.0])


def test_module_function_with_bound_options():
    reward = load_reward({"name": "helpers_rewards:scaled_length", "scale": 0.5, "weight": 2.0})
    assert reward.name == "scaled_length" and reward.weight == 2.0
    assert reward(["", ""], ["abcd", ""]) == [2.0, 0.0]


def test_module_function_from_a_file_path(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text("def shout(prompts, completions, **kw):\n    return [float(c.isupper()) for c in completions]\n")
    reward = load_reward(f"{path}:shout")
    assert reward.name == "shout" and reward(["", ""], ["HI", "hi"]) == [1.0, 0.0]


def test_options_a_plain_function_does_not_accept_are_refused(tmp_path):
    path = tmp_path / "strict_rewards.py"
    path.write_text("def scaled(prompts, completions, scale=1.0):\n    return [scale] * len(completions)\n")
    assert load_reward({"name": f"{path}:scaled", "scale": 3.0})([""], ["a"]) == [3.0]
    with pytest.raises(ValueError, match="unknown option 'factor'; the function accepts completions, prompts, scale"):
        load_reward({"name": f"{path}:scaled", "factor": 2})


def test_a_callable_is_wrapped():
    def politeness(prompts, completions, **kw):
        return [float("please" in c) for c in completions]

    reward = load_reward(politeness)
    assert reward.name == "politeness" and reward([""], ["please"]) == [1.0]
    assert load_reward(reward) is reward


def test_a_builtin_reward_instance_keeps_its_registry_name():
    from rlhf.rewards import AgenticCommunal, CompositeReward

    reward = load_reward(AgenticCommunal(min_words=1))
    assert reward.name == "agentic_communal" and reward.value_range == (-0.4, 1.2)
    assert CompositeReward([Length(target=1)]).names == ["length"]


def test_tensor_outputs_are_accepted():
    reward = load_reward(lambda prompts, completions, **kw: torch.ones(len(completions)) * 0.5)
    assert reward(["", ""], ["a", "b"]) == [0.5, 0.5]


def test_trl_kwargs_and_conversational_completions_are_accepted():
    reward = load_reward({"name": "length", "target": 2})
    messages = [[{"role": "assistant", "content": "two words"}]]
    assert reward([[{"role": "user", "content": "hi"}]], messages, completion_ids=[[1, 2]], trainer_state=None) == [1.0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lenght", "unknown reward 'lenght'.*Did you mean 'length'.*module:function"),
        ({"weight": 1.0}, "has no 'name'"),
        ({"name": "length", "taget": 3}, "reward 'length': unknown option 'taget'; valid options: target, mode"),
        ({"name": "length", "target": "long"}, "reward 'length': option 'target'='long'"),
        ({"name": "length", "weight": "heavy"}, "option 'weight'='heavy' must be a finite number"),
        ({"name": "length", "weight": math.nan}, "option 'weight'=nan"),
        ({"name": "length", "weight": math.inf}, "option 'weight'=inf"),
        ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
        ("helpers_rewards:no_such_fn", "has no attribute 'no_such_fn'"),
        ("helpers_rewards:_BUILT", "is a dict, not a callable"),
        ({"name": "classifier", "model": "/no/such/folder"}, "reward 'classifier': option 'model'='/no/such/folder'"),
        ({"name": "classifier"}, "reward 'classifier': option 'model'"),
        (42, "a reward entry is a name"),
    ],
)
def test_errors_name_the_reward_and_the_option(spec, message):
    with pytest.raises(ValueError, match=message):
        load_reward(spec)


def test_wrong_output_length_or_type_raises_in_the_wrapper():
    too_many = load_reward("helpers_rewards:one_value_too_many")
    with pytest.raises(RewardOutputError, match="returned 3 values for 2 completions"):
        too_many(["", ""], ["a", "b"])
    with pytest.raises(RewardOutputError, match=r"shape \(2, 1\)"):
        load_reward(lambda p, c, **kw: torch.zeros(len(c), 1))(["", ""], ["a", "b"])
    with pytest.raises(RewardOutputError, match="returned 'high' \\(str\\) at index 0"):
        load_reward(lambda p, c, **kw: ["high"])([""], ["a"])


def test_validate_scores():
    scores = validate_scores("demo", [1, None, torch.tensor(2.5)], ["a", "b", "c"])
    assert scores.dtype == torch.float32 and scores.shape == (3,)
    assert scores[0] == 1.0 and math.isnan(scores[1]) and scores[2] == 2.5
    long_completion = "word " * 100
    with pytest.raises(ValueError, match=r"reward 'demo' returned inf at index 1 .*'word word.*\(500 characters\)"):
        validate_scores("demo", [0.0, math.inf], ["a", long_completion])
    with pytest.raises(ValueError, match="returned inf"):
        validate_scores("demo", [1e300], ["overflows float32"])
    with pytest.raises(ValueError, match="returned 1 values for 2 completions"):
        validate_scores("demo", [0.0], ["a", "b"])
