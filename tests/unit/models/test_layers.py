import pytest
from transformers import GPT2Config, LlamaConfig

from rlhf.config import ModelConfig
from rlhf.models.layers import check_model_options, context_length, model_layers

LLAMA = LlamaConfig(num_hidden_layers=1, num_attention_heads=2, hidden_size=32, intermediate_size=64,
                    vocab_size=100, max_position_embeddings=128)
GPT2 = GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=64, vocab_size=100)


@pytest.fixture
def folders(tmp_path):
    for name, config in (("llama", LLAMA), ("gpt2", GPT2)):
        config.save_pretrained(tmp_path / name)  # the config alone: the checks never load weights
    return tmp_path


def model(**kwargs):
    return ModelConfig(name_or_path="unused", **kwargs)


def test_layers_and_context_are_read_from_the_config():
    assert model_layers(LLAMA).adaptable == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"]
    gpt2 = model_layers(GPT2)
    assert gpt2.linear == [] and gpt2.adaptable == ["c_attn", "c_proj", "c_fc"]
    assert (context_length(LLAMA), context_length(GPT2)) == (128, 64)


def test_quantising_conv1d_models_is_refused_and_linear_models_pass(folders):
    q = {"quantization": {"bits": 4}, "lora": {"r": 4}}
    with pytest.raises(ValueError, match="Conv1D"):
        check_model_options(model(**q), folders / "gpt2")
    check_model_options(model(**q), folders / "llama")


@pytest.mark.parametrize("targets, message", [([], "is empty"), (["q_proj", "attn"], r"names \['attn'\]")])
def test_lora_targets_that_match_nothing_list_the_linear_layers(folders, targets, message):
    with pytest.raises(ValueError, match=message) as info:
        check_model_options(model(lora={"r": 4, "target_modules": targets}), folders / "llama")
    assert "'q_proj', 'k_proj'" in str(info.value) and "model.lora.target_modules" in str(info.value)
    check_model_options(model(lora={"r": 4, "target_modules": ["q_proj", "self_attn.v_proj"]}), folders / "llama")


def test_lora_on_gpt2_conv1d_is_built_transposed_without_peft_correcting_it():
    import warnings

    from rlhf.models.factory import build_policy

    cfg = ModelConfig(random_init={"arch": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 32},
                      lora={"r": 2, "target_modules": ["c_attn"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = build_policy(cfg, with_value_head=False)
    assert not [w for w in caught if "fan_in_fan_out" in str(w.message)], [str(w.message) for w in caught]
    assert policy.model.peft_config["default"].fan_in_fan_out
