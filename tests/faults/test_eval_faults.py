"""Bad inputs to generate, evaluate, chat and serve: one readable line naming the input, exit code 2."""

import shutil
from pathlib import Path

import pytest

from faults.harness import Fault, check_fault


def _tiny_model(tmp: Path) -> None:
    from rlhf.config import load_profile
    from rlhf.models.factory import model_source

    shutil.copytree(model_source(load_profile("tiny-gpt2").model), tmp / "model")


def _files(files: dict[str, str], with_model: bool = False):
    def setup(tmp: Path) -> None:
        if with_model:
            _tiny_model(tmp)
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text, encoding="utf-8")

    return setup


def _empty_folder(tmp: Path) -> None:
    (tmp / "empty").mkdir()


MODEL = "{tmp}/model"
GEN = ["generate", MODEL, "-p", "tiny-gpt2", "--out", "{tmp}/out.csv"]
FAULTS = [
    Fault("generate-n-0", [*GEN, "--n", "0"], ("--n 0", "at least 1")),
    Fault("generate-best-of-0", [*GEN, "--best-of", "0"], ("--best-of 0", "at least 1")),
    Fault("generate-batch-size-0", [*GEN, "--batch-size", "0"], ("--batch-size 0", "at least 1")),
    Fault("evaluate-samples-0", ["evaluate", MODEL, "-p", "tiny-gpt2", "--samples", "0"], ("--samples 0", "at least 1")),
    Fault("model-folder-not-a-model", ["generate", "{tmp}/empty", "-p", "tiny-gpt2", "--out", "{tmp}/o.csv"],
          ("{tmp}/empty", "not a model", "config.json"), setup=_empty_folder),
    Fault("model-path-missing", ["chat", "{tmp}/missing"], ("{tmp}/missing", "no such folder")),
    Fault("model-config-broken", GEN, ("could not load MODEL", "{tmp}/model", "model_type"), setup=_files({"model/config.json": "{}"})),
    Fault("plain-model-without-profile", ["generate", MODEL, "--out", "{tmp}/o.csv"],
          ("does not belong to a run", "-p PROFILE"), setup=_files({"model/config.json": "{}"})),
    Fault("unknown-prompt-source", [*GEN, "--prompts", "builtin:nope"], ("builtin:nope", "occupations"),
          setup=_tiny_model),
    Fault("missing-prompt-file", [*GEN, "--prompts", "{tmp}/nope.jsonl"], ("{tmp}/nope.jsonl", "no such file"),
          setup=_tiny_model),
    Fault("prompt-column-missing", [*GEN, "--prompts", "{tmp}/p.jsonl"], ("p.jsonl", "no column", "'words'"),
          setup=_files({"p.jsonl": '{"words": "hi"}\n'}, with_model=True)),
    Fault("evaluate-out-not-empty", ["evaluate", MODEL, "-p", "tiny-gpt2", "--out", "{tmp}/taken"],
          ("--out", "{tmp}/taken", "already exists"), setup=_files({"taken/report.json": "{}"})),
    Fault("evaluate-unknown-reward", ["evaluate", MODEL, "-p", "tiny-gpt2", "--reward", "lenght"],
          ("--reward 'lenght'", "length")),
    Fault("evaluate-reward-bad-yaml", ["evaluate", MODEL, "-p", "tiny-gpt2", "--reward", "{name: ["],
          ("--reward", "not valid YAML")),
    Fault("chat-max-new-tokens-0", ["chat", MODEL, "--max-new-tokens", "0"], ("--max-new-tokens 0", "at least 1"),
          setup=_tiny_model),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_fault(fault: Fault, tmp_path: Path) -> None:
    check_fault(fault, tmp_path)
