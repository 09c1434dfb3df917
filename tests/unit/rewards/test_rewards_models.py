"""classifier and llm_judge on tiny random models built offline (see helpers_rewards.tiny_model_dirs)."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rlhf.rewards import LLMJudge, load_reward, load_rewards, parse_score
from rlhf.models.tokenizer import load_tokenizer

TEXTS = ["You have a lovely smile.", "", "Terrible. " * 100, "Ünïcödé ✓"]


def reference_logits(folder, texts):
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = load_tokenizer(folder, padding_side="right")
    with torch.no_grad():
        return torch.stack([model(**tokenizer(text + tokenizer.eos_token, return_tensors="pt", truncation=True,
                                              max_length=128)).logits[0] for text in texts])


def test_classifier_outputs_match_a_one_by_one_reference(tiny_models):
    folder = tiny_models["classifier"]
    logits = reference_logits(folder, TEXTS)  # (4, 2)
    spec = {"name": "classifier", "model": folder, "batch_size": 3}
    got = {output: torch.tensor(load_reward({**spec, "output": output, "label": 1})([""] * 4, TEXTS))
           for output in ("logit", "probability", "logit_diff")}
    torch.testing.assert_close(got["logit"], logits[:, 1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got["probability"], logits.softmax(-1)[:, 1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got["logit_diff"], logits[:, 1] - logits[:, 0], atol=1e-4, rtol=1e-4)


def test_classifier_label_by_name_and_input_with_prompt(tiny_models):
    folder = tiny_models["classifier"]
    by_index = load_reward({"name": "classifier", "model": folder, "label": 1})
    by_name = load_reward({"name": "classifier", "model": folder, "label": "positive"})
    assert by_index(["", ""], TEXTS[:2]) == by_name(["", ""], TEXTS[:2])
    with_prompt = load_reward({"name": "classifier", "model": folder, "input": "prompt+completion"})
    logits = reference_logits(folder, ["Hello there. You have a lovely smile."])
    assert with_prompt(["Hello there. "], [TEXTS[0]]) == [pytest.approx(logits[0, 0].item(), abs=1e-4)]


def test_classifier_without_eos_and_all_empty_batch(tiny_models):
    reward = load_reward({"name": "classifier", "model": tiny_models["classifier"], "append_eos": False})
    scores = reward(["", ""], ["", ""])
    assert len(scores) == 2 and scores[0] == pytest.approx(scores[1])


def test_classifier_with_one_logit(tiny_models):
    folder = tiny_models["scalar_classifier"]
    logit = load_reward({"name": "classifier", "model": folder})([""], ["hi"])[0]
    probability = load_reward({"name": "classifier", "model": folder, "output": "probability"})([""], ["hi"])[0]
    assert probability == pytest.approx(torch.sigmoid(torch.tensor(logit)).item(), abs=1e-6)
    with pytest.raises(ValueError, match="'logit_diff' needs at least 2 labels"):
        load_reward({"name": "classifier", "model": folder, "output": "logit_diff"})


def test_classifier_is_loaded_once_per_process(tiny_models):
    first = load_reward({"name": "classifier", "model": tiny_models["classifier"]})
    second = load_reward({"name": "classifier", "model": tiny_models["classifier"], "label": 1})
    assert first.fn._model is second.fn._model
    assert not first.fn._model.training


def test_classifier_saved_again_to_the_same_folder_is_reloaded(tiny_models, tmp_path):
    from transformers import GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification.from_pretrained(tiny_models["classifier"])
    model.save_pretrained(tmp_path)
    load_tokenizer(tiny_models["classifier"]).save_pretrained(tmp_path)
    before = load_reward({"name": "classifier", "model": str(tmp_path)})([""], ["hi"])
    with torch.no_grad():
        model.score.weight.mul_(-1.0)
    model.save_pretrained(tmp_path)
    after = load_reward({"name": "classifier", "model": str(tmp_path)})([""], ["hi"])
    assert after == [pytest.approx(-before[0], abs=1e-5)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"label": "flirty"}, "option 'label'='flirty' is not a label of this model; its labels: .*positive"),
        ({"label": 5}, "option 'label'=5 is out of range: the model has 2 labels"),
        ({"output": "score"}, "option 'output'='score'"),
        ({"tokenizer": "/no/such/tokenizer"}, "option 'tokenizer'='/no/such/tokenizer'"),
        ({"batch_size": 0}, "option 'batch_size'=0"),
    ],
)
def test_classifier_bad_options(tiny_models, options, message):
    with pytest.raises(ValueError, match=message) as info:
        load_reward({"name": "classifier", "model": tiny_models["classifier"], **options})
    assert "reward 'classifier'" in str(info.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("7", 7), ("Rating: 7", 7), (" 7/9", 7), ("I'd say 8 out of 9.", 8), ("10 - no, 3", 3),
        ("0, then 9", 9), ("-3 or 4", 4), ("7.5", None), ("seven", None), ("", None), ("12 and 99", None),
        ("Score:9", 9), ("1", 1),
    ],
)
def test_parse_score_by_hand(answer, expected):
    assert parse_score(answer, 1, 9) == expected


def test_judge_scores_the_teachers_answer_normalised(tiny_models):
    judge = load_reward({"name": "llm_judge", "model": tiny_models["teacher7"], "max_tokens": 1})
    assert judge(["Once upon a time", ""], [" there was a cat.", ""]) == [0.75, 0.75]  # (7 - 1) / (9 - 1)
    assert judge.fn.unparsed == 0 and judge.fn.parsed == 2
    wide = load_reward({"name": "llm_judge", "model": tiny_models["teacher7"], "max_tokens": 1,
                        "min_score": 0, "max_score": 10})
    assert wide([""], ["x"]) == [0.7]


def test_judge_unparseable_answers_get_the_fallback_and_are_counted(tiny_models):
    # The teacher answers "777": an integer, but outside [1, 9].
    judge = load_reward({"name": "llm_judge", "model": tiny_models["teacher7"], "max_tokens": 3,
                         "fallback": 0.25})
    assert judge(["a", "b", "c"], ["x", "y", "z"]) == [0.25] * 3
    assert judge.fn.unparsed == 3 and judge.last_info == {"unparsed": 3.0, "unparsed_share": 1.0}
    judge([""], [""])
    assert judge.fn.unparsed == 4 and judge.last_info == {"unparsed": 1.0, "unparsed_share": 1.0}


def test_judge_warns_then_stops_when_most_answers_cannot_be_parsed(tiny_models, caplog):
    judge = load_reward({"name": "llm_judge", "model": tiny_models["teacher7"], "max_tokens": 3, "patience": 2})
    with caplog.at_level("WARNING", logger="rlhf.rewards.judge"):
        judge(["a", "b"], ["x", "y"])  # 777 is outside [1, 9]: every answer unparsed
    assert "2 of 2 answers had no score in [1, 9]" in caplog.text and "'777'" in caplog.text
    with pytest.raises(ValueError, match="for 2 batches in a row"):
        judge(["a"], ["x"])
    parsed = load_reward({"name": "llm_judge", "model": tiny_models["teacher7"], "max_tokens": 1, "patience": 1})
    caplog.clear()
    with caplog.at_level("WARNING", logger="rlhf.rewards.judge"):
        parsed(["a"], ["x"])  # answers "7": parsed, so neither a warning nor a stop
    assert caplog.text == ""


def test_judge_fallback_null_abstains_and_the_composite_reports_unparsed(tiny_models):
    score = load_rewards([{"name": "llm_judge", "model": tiny_models["teacher7"], "max_tokens": 3,
                           "fallback": None}, {"name": "length", "target": 1}])
    out = score(["a", "b"], ["x", "y z"])
    assert torch.isnan(out.components["llm_judge"]).all()
    assert out.total.tolist() == [1.0, 0.0]
    assert out.metrics()["rewards/llm_judge/unparsed"] == 2.0


def test_judge_renders_the_shipped_template_and_truncates_long_prompts(tiny_models):
    judge = LLMJudge(model=tiny_models["lm"], max_tokens=2, min_score=1, max_score=5)
    rendered = judge.render("The context.", "The continuation.")
    assert "The context." in rendered and "The continuation." in rendered and "from 1" in rendered
    assert rendered.rstrip().endswith("Rating:")
    scores = judge(["long " * 2000, ""], ["x", "y " * 3000])  # far beyond the 128-token context
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)


def test_judge_custom_template(tmp_path, tiny_models):
    template = tmp_path / "t.jinja"
    template.write_text("Q: {{ context }} A: {{ continuation }} Score:")
    judge = LLMJudge(model=tiny_models["lm"], template=str(template), max_tokens=1)
    assert judge.render("a", "b") == "Q: a A: b Score:"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ context }} only", r"missing \['continuation'\]"),
        ("{{ context }} {{ continuation }} {{ reference }}", r"unknown \['reference'\]"),
        ("{{ context }} {{ continuation ", "Jinja syntax error"),
    ],
)
def test_judge_bad_templates(tmp_path, tiny_models, text, message):
    template = tmp_path / "bad.jinja"
    template.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_reward({"name": "llm_judge", "model": tiny_models["lm"], "template": str(template)})
    assert "reward 'llm_judge': option 'template'" in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"template": "/no/such.jinja"}, "option 'template'='/no/such.jinja': no such file"),
        ({"min_score": 5, "max_score": 5}, "max_score=5 must be above min_score=5"),
        ({"fallback": 2.0}, "option 'fallback'=2.0"),
        ({"max_tokens": 500}, "max_tokens=500 leaves no room"),
        ({"model": "./missing-teacher"}, "option 'model'='./missing-teacher': no such folder"),
    ],
)
def test_judge_bad_options(tiny_models, options, message):
    with pytest.raises(ValueError, match=message):
        load_reward({"name": "llm_judge", "model": tiny_models["lm"], **options})
