"""Chat-format SFT pieces: the default template's loss mask, and conversations checked in TRL's format."""

import json

import pytest

from rlhf.config import SftConfig
from rlhf.models.tokenizer import load_tokenizer
from rlhf.stages.sft import PLAIN_CHAT_TEMPLATE, conversations


def test_plain_template_masks_exactly_the_assistant_turn_and_its_eos():
    tokenizer = load_tokenizer("builtin-bpe", padding_side="right")
    tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Review the plot."},
                {"role": "assistant", "content": "The plot is great."}]
    encoded = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True,
                                            tokenize=True)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    trained = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert trained == "The plot is great." + tokenizer.eos_token  # the model learns to stop
    assert tokenizer.decode([i for i, m in zip(ids, mask) if not m]).startswith("System: Be brief.\nUser: ")
    prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, tokenize=False)
    assert prompt == "System: Be brief.\nUser: Review the plot.\nAssistant: "


def test_builtin_conversations_split_without_overlap():
    train, held_out = conversations(SftConfig(eval_fraction=0.1), seed=0)
    assert len(held_out) == 60 and len(train) == 540
    assert not {json.dumps(r) for r in train} & {json.dumps(r) for r in held_out}


@pytest.mark.parametrize("messages, needle", [
    ([{"role": "robot", "content": "hi"}], "role in"),
    ([{"role": "user", "content": "hi"}], "no assistant turn"),
    ("hello", "non-empty list"),
])
def test_malformed_conversations_name_the_record(tmp_path, messages, needle):
    data = tmp_path / "chats.jsonl"
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    data.write_text(json.dumps(good) + "\n" + json.dumps({"messages": messages}) + "\n")
    with pytest.raises(ValueError, match=needle) as error:
        conversations(SftConfig(data=str(data)), seed=0)
    assert "record 1" in str(error.value)


def test_sft_on_4bit_lora_saves_a_merged_full_model(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf.config import load_profile
    from rlhf.models.factory import model_source
    from rlhf.stages.sft import train_sft

    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps(row) + "\n" for row in conversations(SftConfig(), seed=0)[0][:24]))
    profile = load_profile("tiny-llama-4bit", [f"sft.data={chats}", f"sft.output_dir={tmp_path / 'sft'}",
                                               "sft.batch_size=8", "sft.learning_rate=1e-2", "sft.eval_fraction=0.25"])
    result = train_sft(profile)

    assert result.metrics["num_train"] == 18 and result.metrics["tokens"] > 0
    assert (result.output_dir / "adapter" / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(result.output_dir)  # a plain full model, no peft needed
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # merged into the unquantised base
    base = AutoModelForCausalLM.from_pretrained(str(model_source(profile.model)))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[name], base.state_dict()[name])  # the adapter is in the weights
    assert AutoTokenizer.from_pretrained(result.output_dir).chat_template == PLAIN_CHAT_TEMPLATE
