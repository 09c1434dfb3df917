"""Bad inputs the preflight catches (`rlhf run --dry-run`, and every real run before anything loads).

Each row fails with exit code 2 and one `error:` line naming the check, the value and the fix; rows that run
for real (no --dry-run) also prove that no run folder was started.
"""

from pathlib import Path

import pytest

from faults.harness import Fault, check_fault
from rlhf import preflight as preflight_module


def _no_runs(tmp: Path) -> None:
    assert not (tmp / "runs").exists(), "a run folder was created before the checks passed"


def _mkdir(name: str):
    def setup(tmp: Path) -> None:
        (tmp / name).mkdir()

    return setup


RUN = ["run", "--output-dir", "{tmp}/runs"]
DRY = [*RUN, "--dry-run"]
CLASSIFIER_AT = "rewards=[{{name: classifier, model: {}}}]".format
STAGE = ["-p", "reward-model-tiny", "--set", "reward_model.output_dir={tmp}/rm", "--set", "rewards.0.model={tmp}/rm"]

FAULTS = [
    Fault("dry-run-missing-reward-model", [*DRY, "--set", CLASSIFIER_AT("{tmp}/no-model")],
          ("reward 0 (classifier)", "no folder {tmp}/no-model", "rlhf train-reward -p tiny-gpt2")),
    Fault("run-missing-reward-model", [*RUN, "--set", CLASSIFIER_AT("{tmp}/no-model")],
          ("reward 0 (classifier)", "{tmp}/no-model", "rlhf train-reward"), keeps=_no_runs),
    Fault("reward-model-folder-without-config", [*RUN, "--set", CLASSIFIER_AT("{tmp}/empty")],
          ("{tmp}/empty", "config.json"), setup=_mkdir("empty"), keeps=_no_runs),
    Fault("classifier-unknown-option", [*DRY, "--set", "rewards=[{name: classifier, model: x/y, lable: 1}]"],
          ("reward 0 (classifier)", "'lable'", "label")),
    Fault("plan-does-not-fit", [*DRY, "--gpu-memory", "0.5"], ("memory plan", "0.5 GiB", "does not fit")),
    Fault("hub-model-offline", [*DRY, "-p", "a100-8b"],
          ("meta-llama/Meta-Llama-3-8B-Instruct", "HF_HUB_OFFLINE", "hf download"), env={"HF_HUB_OFFLINE": "1"}),
    Fault("chat-template-missing", [*DRY, "--set", "data.chat_template=true"],
          ("policy tokenizer", "builtin-bpe", "data.chat_template")),
    Fault("unknown-builtin-prompts", [*RUN, "--set", "data.prompts=builtin:nope"],
          ("prompts", "builtin:nope", "review-openers"), keeps=_no_runs),
    Fault("prompts-file-missing", [*DRY, "--set", "data.prompts={tmp}/prompts.jsonl"],
          ("prompts", "{tmp}/prompts.jsonl", "no such file")),
    Fault("reward-model-data-missing", [*DRY, *STAGE, "--set", "reward_model.data={tmp}/labelled.jsonl"],
          ("reward model data", "{tmp}/labelled.jsonl", "reward_model.data")),
    Fault("reward-model-stage-under-multi-process-launch", [*DRY, *STAGE],
          ("reward model stage", "rlhf train-reward -p reward-model-tiny"), env={"WORLD_SIZE": "2"}),
]

# An optional package is simulated missing by patching the preflight's import check, not by uninstalling it.
MISSING_PACKAGES = [
    (Fault("sentiment-without-vadersentiment", [*RUN, "--set", "rewards=[{name: sentiment}]"],
           ("reward 0 (sentiment)", "vaderSentiment", "pip install 'rlhf[sentiment]'"), keeps=_no_runs),
     "vaderSentiment.vaderSentiment"),
    (Fault("toxicity-without-profanity-check", [*DRY, "--set", "rewards=[{name: length}, {name: toxicity}]"],
           ("reward 1 (toxicity)", "profanity_check", "pip install 'rlhf[toxicity]'")), "profanity_check"),
    (Fault("quantization-without-bitsandbytes", [*DRY, "-p", "tiny-llama-4bit"],
           ("accelerator", "bitsandbytes", "pip install bitsandbytes")), "bitsandbytes"),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_fault(fault: Fault, tmp_path: Path) -> None:
    check_fault(fault, tmp_path)


@pytest.mark.parametrize(("fault", "module"), MISSING_PACKAGES, ids=lambda row: getattr(row, "id", ""))
def test_missing_optional_package(fault: Fault, module: str, tmp_path: Path, monkeypatch) -> None:
    installed = preflight_module.package_installed
    monkeypatch.setattr(preflight_module, "package_installed", lambda name: name != module and installed(name))
    check_fault(fault, tmp_path)
