import torch
from torch import nn

from rlhf.rl.checkpoint import (
    STATE_FILE, checkpoint_dir, latest_checkpoint, list_checkpoints, load_trainer_state, rng_state, save_checkpoint,
    set_rng_state,
)


class TinyPolicy(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def save(self, folder, tokenizer=None):
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), folder / "weights.pt")


def test_rotation_keeps_the_newest(tmp_path):
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, TinyPolicy(), None, {"step": step}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000004", "step-000006"]
    assert load_trainer_state(latest_checkpoint(tmp_path))["step"] == 6


def test_incomplete_folders_are_not_checkpoints(tmp_path):
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, {"step": 1}, keep=3)
    half_written = checkpoint_dir(tmp_path, 2)
    half_written.mkdir()  # a crash before trainer_state.pt was written
    (tmp_path / "checkpoints" / ".tmp-step-000003-x").mkdir()
    assert latest_checkpoint(tmp_path).name == "step-000001"


def test_failed_write_leaves_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, 1, TinyPolicy(), None, {"step": 1}, keep=3)

    class Broken(TinyPolicy):
        def save(self, folder, tokenizer=None):
            raise OSError("disk full")

    try:
        save_checkpoint(tmp_path, 2, Broken(), None, {"step": 2}, keep=3)
    except OSError:
        pass
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000001"]
    assert (latest_checkpoint(tmp_path) / STATE_FILE).exists()


def test_rng_state_round_trip():
    state = rng_state()
    first = torch.rand(3)
    set_rng_state(state)
    torch.testing.assert_close(torch.rand(3), first)


def test_unreadable_state_is_a_clear_error(tmp_path):
    import pytest

    (tmp_path / STATE_FILE).write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_trainer_state(tmp_path)
