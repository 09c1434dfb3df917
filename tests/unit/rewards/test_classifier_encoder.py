"""The seeds' reward models are BERT-style encoders (distilbert): tokenizers with [CLS]/[SEP] and no EOS."""

import helpers_rewards
import pytest

from rlhf.rewards import load_reward
from rlhf.testing import check_reward


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    return helpers_rewards.make_bert_classifier(tmp_path_factory.mktemp("bert"))


def test_bert_classifier_without_eos_scores_texts(bert_folder):
    reward = load_reward({"name": "classifier", "model": str(bert_folder), "label": 1, "output": "probability"})
    scores = reward(["", "", ""], ["The movie was great.", "", "awful"])
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)


def test_bert_classifier_has_the_generic_reward_properties(bert_folder):
    reward = load_reward({"name": "classifier", "model": str(bert_folder), "output": "logit_diff"})
    failures = [r for r in check_reward(reward, max_examples=15) if not r.passed]
    assert failures == []
