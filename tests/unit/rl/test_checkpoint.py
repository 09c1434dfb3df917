import os
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from rlhf.rl.checkpoint import (
    MANIFEST_FILE, POLICY_DIR, STATE_FILE, STATE_KEYS, checkpoint_dir, latest_checkpoint, list_checkpoints,
    load_trainer_state, newest_intact_checkpoint, remove_leftovers, rng_state, save_checkpoint, set_rng_state,
    validate_checkpoint,
)


class TinyPolicy(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def save(self, folder, tokenizer=None):
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))


def full_state(step: int) -> dict:
    model = TinyPolicy()
    optimizer = torch.optim.AdamW(model.parameters())
    model.layer.weight.sum().backward()
    optimizer.step()
    return {"step": step, "tokens_seen": 10 * step, "optimizer": optimizer.state_dict(), "scheduler": {},
            "kl_controller": {"value": 0.1}, "sampler": {"position": 3}, "rng": [rng_state()]}


def test_rotation_keeps_the_newest(tmp_path):
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, TinyPolicy(), None, full_state(step), keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000004", "step-000006"]
    assert load_trainer_state(latest_checkpoint(tmp_path))["step"] == 6


def test_state_round_trips_without_unpickling_code(tmp_path):
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, full_state(1), keep=1)
    state = validate_checkpoint(checkpoint_dir(tmp_path, 1))
    assert set(STATE_KEYS) <= set(state) and state["optimizer"]["state"][0]["step"] == 1
    set_rng_state(state["rng"][0])  # numpy/python RNG states survive the safe format


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_planted_pickle_payload_is_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, full_state(1), keep=1)
    state_file = checkpoint_dir(tmp_path, 1) / STATE_FILE
    with state_file.open("wb") as f:
        pickle.dump({**full_state(1), "evil": Payload()}, f, protocol=2)
    with pytest.raises(ValueError, match="could run code"):
        load_trainer_state(state_file.parent)
    assert not (tmp_path / "PWNED").exists()


def test_incomplete_folders_are_not_checkpoints(tmp_path):
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, full_state(1), keep=3)
    half_written = checkpoint_dir(tmp_path, 2)
    half_written.mkdir()  # a crash before trainer_state.pt was written
    (tmp_path / "checkpoints" / ".tmp-step-000003-x").mkdir()
    assert latest_checkpoint(tmp_path).name == "step-000001"


def test_leftovers_of_a_killed_write_are_removed(tmp_path):
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, full_state(1), keep=3)
    leftover = tmp_path / "checkpoints" / ".tmp-step-000002-abc"
    leftover.mkdir()
    (leftover / "half.bin").write_bytes(b"x")
    assert remove_leftovers(tmp_path) == [leftover]
    assert not leftover.exists() and latest_checkpoint(tmp_path).name == "step-000001"


def test_failed_write_leaves_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, full_state(1), keep=3)

    class Broken(TinyPolicy):
        def save(self, folder, tokenizer=None):
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, Broken(), None, full_state(2), keep=3)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000001"]
    assert (latest_checkpoint(tmp_path) / STATE_FILE).exists()


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(("damage", "message"), [
    (lambda c: _truncate(c / POLICY_DIR / "model.safetensors"), "model.safetensors is truncated"),
    (lambda c: (c / POLICY_DIR / "model.safetensors").unlink(), "model.safetensors is missing"),
    (lambda c: _truncate(c / STATE_FILE), "trainer_state.pt is truncated"),
])
def test_damaged_checkpoints_are_named_and_skipped(tmp_path, damage, message):
    for step in (1, 2):
        save_checkpoint(tmp_path, step, TinyPolicy(), None, full_state(step), keep=3)
    damage(checkpoint_dir(tmp_path, 2))
    with pytest.raises(ValueError, match=message):
        validate_checkpoint(checkpoint_dir(tmp_path, 2))
    warnings = []
    found, state = newest_intact_checkpoint(tmp_path, warn=warnings.append)
    assert found.name == "step-000001" and state["step"] == 1
    assert len(warnings) == 1 and "step-000002" in warnings[0]


def test_truncated_weights_are_caught_without_a_manifest(tmp_path):
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, full_state(1), keep=1)
    checkpoint = checkpoint_dir(tmp_path, 1)
    (checkpoint / MANIFEST_FILE).unlink()  # a checkpoint from before manifests existed
    _truncate(checkpoint / POLICY_DIR / "model.safetensors")
    with pytest.raises(ValueError, match="damaged"):
        validate_checkpoint(checkpoint)


def test_a_state_missing_a_key_is_named(tmp_path):
    state = full_state(1)
    del state["sampler"]
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, state, keep=1)
    with pytest.raises(ValueError, match="missing key.*sampler"):
        validate_checkpoint(checkpoint_dir(tmp_path, 1))
    assert newest_intact_checkpoint(tmp_path, warn=lambda m: None) is None


def test_rng_state_round_trip():
    state = rng_state()
    first = torch.rand(3)
    set_rng_state(state)
    torch.testing.assert_close(torch.rand(3), first)


def test_unreadable_state_is_a_clear_error(tmp_path):
    (tmp_path / STATE_FILE).write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_trainer_state(tmp_path)
