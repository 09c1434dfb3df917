from rlhf.tracking import SAMPLES_FILE, STATS_FILE, Tracker, read_csv


def test_csv_rows_and_resume_truncation(tmp_path):
    tracker = Tracker(tmp_path, ["csv"])
    for step in (1, 2, 3):
        tracker.log(step, {"objective/scores": step / 10, "objective/kl": 0.0})
        tracker.log_samples(step, ["p"], [f"c{step}"], [float(step)])
    tracker.close()
    assert [r["step"] for r in read_csv(tmp_path / "meta_data" / STATS_FILE)] == ["1", "2", "3"]

    resumed = Tracker(tmp_path, ["csv"], resume_step=1)  # the checkpoint was at step 1
    resumed.log(2, {"objective/scores": 0.5, "objective/kl": 0.1})
    rows = read_csv(tmp_path / "meta_data" / STATS_FILE)
    assert [(r["step"], r["objective/scores"]) for r in rows] == [("1", "0.1"), ("2", "0.5")]
    assert [r["completion"] for r in read_csv(tmp_path / "meta_data" / SAMPLES_FILE)] == ["c1"]


def test_only_enabled_tracker_writes(tmp_path):
    Tracker(tmp_path, ["csv", "tensorboard"], enabled=False).log(1, {"x": 1.0})
    assert not (tmp_path / "meta_data").exists() and not (tmp_path / "tensorboard").exists()


def test_tensorboard_events_are_written(tmp_path):
    tracker = Tracker(tmp_path, ["tensorboard"])
    tracker.log(1, {"objective/kl": 0.25})
    tracker.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.value for e in events.Scalars("objective/kl")] == [0.25]


def test_wandb_names_come_from_the_profile(tmp_path):
    from rlhf.config import load_profile
    from rlhf.tracking import wandb_names

    default = load_profile("tiny-gpt2").model_dump(mode="json")
    assert wandb_names(default, tmp_path / "run-7") == ("rlhf", "run-7")
    named = load_profile("tiny-gpt2", ["trainer.wandb_project=reviews", "trainer.wandb_run_name=ppo-a"])
    assert wandb_names(named.model_dump(mode="json"), tmp_path / "run-7") == ("reviews", "ppo-a")
