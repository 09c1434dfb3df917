from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlhf.algos import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS
from rlhf.config import load_profile

overrides = st.fixed_dictionaries({
    "trainer.steps": st.integers(1, 10_000),
    "trainer.learning_rate": st.floats(1e-8, 1.0),
    "algo.kl.coef": st.floats(0.0, 10.0),
    "algo.kl.estimator": st.sampled_from(KL_ESTIMATORS.names()),
    "algo.name": st.sampled_from(ADVANTAGE_ESTIMATORS.names()),
    "algo.gamma": st.floats(0.0, 1.0),
    "rollout.temperature": st.floats(0.01, 5.0),
    "data.system_prompt": st.text(max_size=40),
    "seed": st.integers(0, 2**31),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=overrides)
def test_resolved_profile_round_trips_through_yaml(tmp_path_factory, values):
    sets = [f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}" for key, value in values.items()]
    sets += ["rollout.num_generations=2", "rollout.batch_size=4"]
    profile = load_profile("tiny-gpt2", sets)
    assert profile.trainer.steps == values["trainer.steps"] and profile.seed == values["seed"]
    path = tmp_path_factory.mktemp("roundtrip") / "resolved.yaml"
    path.write_text(profile.to_yaml(), encoding="utf-8")
    assert load_profile(str(path)) == profile
