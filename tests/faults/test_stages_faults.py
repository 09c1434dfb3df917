"""Bad inputs to the stage commands (train-dpo, sft, train-reward, push): one clear line, no traceback."""

import json
from pathlib import Path

import pytest

from faults.harness import Fault, check_fault


def _write(name: str, rows: list[dict]):
    def setup(tmp: Path) -> None:
        (tmp / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    return setup


def _final(tmp: Path) -> None:
    (tmp / "run" / "final").mkdir(parents=True)
    (tmp / "run" / "final" / "config.json").write_text("{}")


FAULTS = [
    Fault("dpo-no-section", ["train-dpo", "-p", "tiny-gpt2"], ("tiny-gpt2", "`dpo:`", "dpo-tiny.yaml")),
    Fault("dpo-missing-column", ["train-dpo", "-p", "dpo-tiny", "--output-dir", "{tmp}/runs",
                                 "--set", "dpo.data={tmp}/pairs.jsonl"],
          ("{tmp}/pairs.jsonl", "rejected"), setup=_write("pairs.jsonl", [{"prompt": "a", "chosen": "b"}] * 4)),
    Fault("dpo-one-pair", ["train-dpo", "-p", "dpo-tiny", "--output-dir", "{tmp}/runs", "--set",
                           "dpo.data={tmp}/pairs.jsonl", "--set", "dpo.max_pairs=null"],
          ("dpo.data", "1 pair(s)", "at least 2"),
          setup=_write("pairs.jsonl", [{"prompt": "a", "chosen": " b", "rejected": " c"}])),
    Fault("dpo-unknown-loss", ["train-dpo", "-p", "dpo-tiny", "--set", "dpo.loss_type=[dpo]"],
          ("dpo.loss_type", "sigmoid", "ipo")),
    Fault("dpo-loss-weights", ["train-dpo", "-p", "dpo-tiny", "--set", "dpo.loss_type=[sigmoid,sft]",
                               "--set", "dpo.loss_weights=[1.0]"], ("dpo.loss_weights", "one weight per loss type")),
    Fault("dpo-quantized-without-lora", ["train-dpo", "-p", "tiny-llama-4bit", "--set", "model.lora=null",
                                         "--set", "dpo.max_pairs=8"], ("model.quantization", "model.lora")),
    Fault("sft-no-section", ["sft", "-p", "tiny-gpt2"], ("tiny-gpt2", "`sft:`", "sft-tiny.yaml")),
    Fault("sft-bad-role", ["sft", "-p", "sft-tiny", "--set", "pretrain=null", "--set", "sft.data={tmp}/chats.jsonl"],
          ("{tmp}/chats.jsonl", "record 0", "'messages'", "role in"),
          setup=_write("chats.jsonl", [{"messages": [{"role": "human", "content": "hi"}]}] * 3)),
    Fault("sft-no-messages-column", ["sft", "-p", "sft-tiny", "--set", "pretrain=null",
                                     "--set", "sft.data={tmp}/chats.jsonl"], ("{tmp}/chats.jsonl", "messages"),
          setup=_write("chats.jsonl", [{"text": "hi"}] * 3)),
    Fault("reward-model-missing-tokenizer", ["train-reward", "-p", "reward-model-tiny",
                                             "--set", "reward_model.tokenizer={tmp}/nowhere"],
          ("{tmp}/nowhere", "builtin-wordpiece")),
    Fault("push-not-a-run", ["push", "{tmp}", "--repo", "me/model"], ("{tmp}", "no final model", "finished run")),
    Fault("push-offline", ["push", "{tmp}/run", "--repo", "me/model"], ("me/model", "hf auth login"),
          setup=_final, env={"HF_HUB_OFFLINE": "1"}),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_fault(fault: Fault, tmp_path: Path) -> None:
    check_fault(fault, tmp_path)
