"""Bad inputs to the CLI: each fails with its exit code, one readable line, no traceback, nothing lost.

Add a row for every new bad input a user can give (see ``faults.harness.Fault``).
"""

import errno
import os
import shutil
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import pytest

from faults.harness import Fault, check_fault
from rlhf.rl.checkpoint import latest_checkpoint


def _write(name: str, text: str):
    def setup(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text, encoding="utf-8")

    return setup


def _write_bytes(name: str, data: bytes):
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(data)

    return setup


def _fail_writes_under(folder: str, code: int, call: str):
    """Patch ``call`` so that writing a path under ``tmp/folder`` fails with OSError(code)."""

    def patch(tmp: Path):
        real = _resolve(call)

        def failing(*args, **kwargs):
            target = next((a for a in args if isinstance(a, (str, Path)) and str(tmp / folder) in str(a)), None)
            if target is not None:
                raise OSError(code, os.strerror(code), str(target))
            return real(*args, **kwargs)

        return mock.patch(call, failing)

    return patch


def _disk_full_under(folder: str):
    """What a full disk does to ``torch.save`` (measured on /dev/full): a RuntimeError riddle, no errno."""

    def patch(tmp: Path):
        real_save, stack = _resolve("torch.save"), ExitStack()

        def save(obj, target, *args, **kwargs):
            if str(tmp / folder) in str(target):
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
            return real_save(obj, target, *args, **kwargs)

        stack.enter_context(mock.patch("torch.save", save))
        stack.enter_context(mock.patch("shutil.disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0)))
        return stack

    return patch


def _write_fails_without_a_name(code: int, call: str):
    """Python's ``write`` on a full disk: OSError(ENOSPC) that names no file."""

    def patch(tmp: Path):
        def failing(*args, **kwargs):
            raise OSError(code, os.strerror(code))

        return mock.patch(call, failing)

    return patch


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _nothing_in(folder: str):
    def keeps(tmp: Path) -> None:
        assert not (tmp / folder).exists() or not any((tmp / folder).iterdir()), list((tmp / folder).iterdir())

    return keeps


def _no_partial_checkpoint(tmp: Path) -> None:
    for run_dir in (tmp / "out").iterdir():
        assert not list(run_dir.glob("checkpoints/.tmp-*")), list(run_dir.glob("checkpoints/*"))


def _checkpoint_kept(step: int):
    def keeps(tmp: Path) -> None:
        (run_dir,) = [p for p in (tmp / "out").iterdir() if p.is_dir()]
        checkpoint = latest_checkpoint(run_dir)
        assert checkpoint is not None and checkpoint.name == f"step-{step:06d}", checkpoint
        assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]

    return keeps


_RUN = ["run", "--output-dir", "{tmp}/out", "--set", "trainer.log_with=[csv]"]
_PAIRWISE = ["train-reward", "-p", "reward-model-tiny", "--set", "reward_model.output_dir={tmp}/rm"]
_LONG_PROMPT = "This movie was a long and winding story " * 4

FAULTS = [
    Fault("unknown-profile", ["run", "-p", "no-such-profile"], ("no-such-profile",)),
    Fault("unknown-key", ["profiles", "show", "tiny-gpt2", "--set", "trainer.stepz=3"], ("trainer.stepz", "steps")),
    Fault("wrong-type", ["profiles", "show", "tiny-gpt2", "--set", "trainer.steps=many"], ("trainer.steps", "many")),
    Fault("extends-missing", ["profiles", "show", "{tmp}/p.yaml"], ("p.yaml", "nowhere"),
          setup=_write("p.yaml", "extends: nowhere\n")),
    Fault("unknown-reward", ["run", "--output-dir", "{tmp}", "--set", "rewards=[{name: lenght}]"], ("lenght", "length")),
    Fault("resume-not-a-run", ["run", "--resume", "{tmp}"], ("--resume", "profile.yaml")),
    # profiles: empty files, and rules across keys name the file or --set that set each key
    Fault("empty-profile", ["profiles", "show", "{tmp}/p.yaml"], ("p.yaml", "empty"), setup=_write("p.yaml", "")),
    Fault("empty-profile-comments", ["run", "-p", "{tmp}/p.yaml"], ("p.yaml", "empty"),
          setup=_write("p.yaml", "# nothing yet\n")),
    Fault("cross-field-set", ["profiles", "show", "tiny-gpt2", "--set", "algo.mini_batch_size=3"],
          ("algo.mini_batch_size from --set algo.mini_batch_size=3", "tiny-gpt2.yaml", "must divide")),
    Fault("cross-field-file", ["profiles", "show", "{tmp}/p.yaml"],
          ("algo.mini_batch_size from {tmp}/p.yaml", "algo.mini_batch_size (5) must divide"),
          setup=_write("p.yaml", "extends: tiny-gpt2\nalgo: {mini_batch_size: 5}\n")),
    Fault("cross-field-model-source", ["profiles", "show", "tiny-gpt2", "--set", "model.name_or_path=gpt2"],
          ("model.name_or_path from --set model.name_or_path=gpt2", "model.random_init from", "base.yaml")),
    Fault("cross-field-grpo", ["profiles", "show", "tiny-gpt2", "--set", "algo.name=grpo"],
          ("algo.name from --set algo.name=grpo", "rollout.num_generations >= 2")),
    # the model's context, quantisation and LoRA targets: checked before any step, with the numbers/names
    Fault("context-max-new-tokens", [*_RUN, "--set", "rollout.max_new_tokens=300"],
          ("rollout.max_new_tokens=300", "context of 256 tokens"), keeps=_nothing_in("out")),
    Fault("context-shortest-prompt", [*_RUN, "--set", "rollout.max_new_tokens=250", "--set", "data.prompts={tmp}/p.txt"],
          ("rollout.max_new_tokens=250 plus the shortest prompt", "at most"),
          setup=_write("p.txt", _LONG_PROMPT + "\n" + _LONG_PROMPT + " and more\n"), keeps=_nothing_in("out")),
    Fault("gpt2-4bit", [*_RUN, "--set", "model.quantization={bits: 4, compute_dtype: float32}",
                        "--set", "model.lora={r: 4}"], ("model.quantization (bits: 4)", "Conv1D", "llama")),
    Fault("gpt2-8bit", [*_RUN, "--set", "model.quantization={bits: 8}", "--set", "model.lora={r: 4}"],
          ("model.quantization (bits: 8)", "Conv1D")),
    Fault("lora-targets-match-nothing", [*_RUN, "--set", "model.lora={r: 4, target_modules: [q_proj, c_attn]}"],
          ("model.lora.target_modules", "['q_proj']", "'c_attn', 'c_proj', 'c_fc'")),
    Fault("lora-targets-empty", [*_RUN, "--set", "model.lora={r: 4, target_modules: []}"],
          ("model.lora.target_modules is empty", "'c_attn', 'c_proj', 'c_fc'")),
    # prompt files that are not text
    Fault("prompts-binary", [*_RUN, "--set", "data.prompts={tmp}/p.txt"], ("{tmp}/p.txt", "binary"),
          setup=_write_bytes("p.txt", b"PK\x03\x04\x00\x00\xff\xfe binary \x00\x01")),
    Fault("prompts-latin1", [*_RUN, "--set", "data.prompts={tmp}/p.csv"], ("{tmp}/p.csv", "0xe9 is not UTF-8", "iconv"),
          setup=_write_bytes("p.csv", "prompt\nLe caf\xe9 est bon\n".encode("latin-1"))),
    Fault("prompts-bad-parquet", [*_RUN, "--set", "data.prompts={tmp}/p.parquet"], ("{tmp}/p.parquet", "parquet"),
          setup=_write_bytes("p.parquet", b"not parquet at all")),
    # the output folder: which path and why, before the model loads; nothing half-written is left
    Fault("output-parent-is-file", ["run", "--output-dir", "{tmp}/file/runs"], ("{tmp}/file", "is a file"),
          setup=_write("file", "x")),
    Fault("output-is-file", ["run", "--output-dir", "{tmp}/file"], ("{tmp}/file", "is a file, not a folder"),
          setup=_write("file", "x")),
    Fault("output-read-only", [*_RUN], ("{tmp}/out", "read-only file system"),
          patch=_fail_writes_under("out", errno.EROFS, "os.mkdir")),
    Fault("output-permission", [*_RUN], ("{tmp}/out", "permission denied"),
          patch=_fail_writes_under("out", errno.EACCES, "os.mkdir")),
    Fault("disk-full-at-checkpoint", [*_RUN, "--set", "trainer.steps=2", "--set", "trainer.checkpoint_every=1"],
          ("checkpoints/step-000001: disk full", "{tmp}/out"), patch=_disk_full_under("out"),
          keeps=_no_partial_checkpoint),
    Fault("disk-full-errno-at-checkpoint", [*_RUN, "--set", "trainer.steps=2", "--set", "trainer.checkpoint_every=1"],
          ("checkpoints/step-000001: disk full",), patch=_fail_writes_under("out", errno.ENOSPC, "torch.save"),
          keeps=_no_partial_checkpoint),
    Fault("disk-full-writing-stats", [*_RUN, "--set", "trainer.steps=2"],
          ("meta_data/training_stats.csv: disk full",),
          patch=_write_fails_without_a_name(errno.ENOSPC, "csv.DictWriter.writerow")),
    # --resume continues the saved run: no other profile, no --set that changes what the checkpoint holds
    Fault("resume-with-profile", ["run", "--resume", "{tmp}/run", "-p", "tiny-gpt2"], ("--resume", "drop -p tiny-gpt2")),
    Fault("resume-changes-shape", ["run", "--resume", "{tmp}/run", "--set", "model.lora={r: 4}"],
          ("--set model.lora={r: 4}", "model.lora", "only these may change", "trainer.steps"),
          setup=_write("run/profile.yaml", "extends: tiny-gpt2\n")),
    Fault("resume-changes-optimizer", ["run", "--resume", "{tmp}/run", "--set", "trainer.weight_decay=0.1"],
          ("trainer.weight_decay", "only these may change"), setup=_write("run/profile.yaml", "extends: tiny-gpt2\n")),
    # train-reward data columns name the profile key and the column that is there
    Fault("reward-label-column", [*_PAIRWISE, "--set", "reward_model.data={tmp}/d.jsonl"],
          ("reward_model.label_column='label'", "to 'labels'"),
          setup=_write("d.jsonl", '{"text": "good", "labels": 1}\n{"text": "bad", "labels": 0}\n')),
    Fault("reward-classifier-label-column", [*_PAIRWISE, "--set", "reward_model.data={tmp}/d.jsonl",
                                             "--set", "reward_model.kind=classifier"],
          ("reward_model.label_column='label'", "to 'labels'"),
          setup=_write("d.jsonl", '{"text": "good", "labels": 1}\n{"text": "bad", "labels": 0}\n')),
    Fault("reward-chosen-without-rejected", [*_PAIRWISE, "--set", "reward_model.data={tmp}/d.jsonl"],
          ("chosen column 'chosen' but no rejected column 'rejected'", "reward_model.rejected_column to 'reject'"),
          setup=_write("d.jsonl", '{"chosen": "good", "reject": "bad"}\n{"chosen": "fine", "reject": "awful"}\n')),
    # numbers out of range
    Fault("evaluate-samples-0", ["evaluate", "{tmp}", "--samples", "0"], ("--samples 0", "at least 1")),
    *[Fault(f"plan-gpu-memory-{value}", ["plan", "--gpu-memory", value], (f"--gpu-memory {value}", "finite number > 0"))
      for value in ("-5", "0", "nan", "inf")],
    # rewards: dropping every sample warns each step, then stops, keeping the finished steps
    Fault("nonfinite-drop-everything", [*_RUN, "--set", "rewards=[{name: 'faults.fault_rewards:always_nan'}]",
                                        "--set", "trainer.nonfinite_rewards=drop", "--set", "trainer.steps=6"],
          ("warning: step 1", "warning: step 2", "dropped every sample for 3 steps in a row", "always_nan"),
          keeps=_checkpoint_kept(2)),
    Fault("fails-in-first-step-leaves-no-folder", [*_RUN, "--set", "rewards=[{name: 'faults.fault_rewards:always_nan'}]"],
          ("always_nan",), keeps=_nothing_in("out")),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_fault(fault: Fault, tmp_path: Path) -> None:
    check_fault(fault, tmp_path)


def test_prompts_cut_to_fit_are_reported_once_and_logged_as_cut(tmp_path: Path) -> None:
    import csv

    from faults.harness import invoke
    from rlhf.models.tokenizer import load_tokenizer

    long = _LONG_PROMPT * 3
    (tmp_path / "p.txt").write_text(f"Hello there\n{long}\n", encoding="utf-8")
    outcome = invoke([*_RUN, "--output-dir", str(tmp_path / "out"), "--set", f"data.prompts={tmp_path}/p.txt",
                      "--set", "model.random_init.n_positions=32", "--set", "rollout.max_new_tokens=16",
                      "--set", "trainer.steps=2",
                      "--set", "rollout.batch_size=4", "--set", "algo.mini_batch_size=4"])
    assert outcome.exit_code == 0, outcome.output
    warnings = [line for line in outcome.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "1 of 2 prompts" in warnings[0] and "first 16 tokens" in warnings[0], warnings
    (samples,) = (tmp_path / "out").glob("*/meta_data/generated_outputs.csv")
    prompts = {row["prompt"] for row in csv.DictReader(samples.open(encoding="utf-8"))}
    tokenizer = load_tokenizer("builtin-bpe")
    (cut,) = prompts - {"Hello there"}
    assert long.startswith(cut) and len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= 16


def test_a_profile_typo_is_reported_before_the_model_libraries_load() -> None:
    import subprocess
    import sys

    script = ("import sys\nfrom rlhf.cli import app\n"
              "try:\n    app(['run', '--set', 'trainer.stepz=1'], prog_name='rlhf')\nexcept SystemExit as e:\n"
              "    print('exit', e.code, sorted(m for m in ('transformers', 'peft', 'trl', 'bitsandbytes', 'accelerate')"
              " if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "error:" in proc.stderr and "trainer.stepz" in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "exit 2 []", proc.stdout + proc.stderr


def test_verbose_is_a_global_option() -> None:
    from faults.harness import invoke

    outcome = invoke(["--verbose", "profiles", "show", "tiny-gpt2"])
    assert outcome.exit_code == 0 and "random_init" in outcome.output, outcome.output
    invoke(["profiles", "show", "tiny-gpt2"])  # back to quiet for the tests that follow
