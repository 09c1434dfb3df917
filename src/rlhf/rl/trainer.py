"""The RL loop: rollout -> score -> advantage -> update, with checkpoints, resume and logging.

The loop never names an algorithm: the advantage estimator from ``rlhf.algos`` says whether it needs a
value head and whether the KL penalty goes into the reward (PPO) or into the loss (GRPO, RLOO).
Distribution goes through ``accelerate``: each process rolls out its share of every batch, gradients
are averaged by DDP, the main process writes logs and checkpoints.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object, set_seed
from rich.console import Console
from transformers import get_scheduler

from rlhf.algos import (
    ADVANTAGE_ESTIMATORS, AdvantageInputs, approx_kl, entropy_from_logits, kl_estimate, make_kl_controller,
    masked_mean, policy_loss, value_loss,
)
from rlhf.rl.checkpoint import (
    POLICY_DIR, latest_checkpoint, load_trainer_state, rng_state, save_checkpoint, set_rng_state,
)
from rlhf.config import Profile
from rlhf.data import PromptSampler, load_prompts
from rlhf.eval.compare import Comparison, evaluate_and_report
from rlhf.eval.hacking import HackingMonitor
from rlhf.eval.metrics import completion_metrics
from rlhf.models.factory import build_policy, merge_lora
from rlhf.stages.pretrain import with_pretrained_policy
from rlhf.rewards import load_rewards
from rlhf.rl.rollout import RolloutBatch, generate_rollouts, response_logprobs
from rlhf.models.tokenizer import load_tokenizer
from rlhf.tracking import Tracker
from rlhf.progress import print_samples, step_progress


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived: the current step finished and a checkpoint was written."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint: {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


@dataclass
class RunResult:
    run_dir: Path
    final_dir: Path
    merged_dir: Path | None
    last_metrics: dict[str, float]
    comparison: Comparison | None = None


def new_run_dir(profile: Profile, parent: str | Path) -> Path:
    """``<parent>/<model>_<N>K_tokens__<YYYY-MM-DD__HH-MM-SS>`` with N the planned generated tokens."""
    tokens = profile.trainer.steps * profile.rollout.completions_per_step * profile.rollout.max_new_tokens
    stamp = datetime.now().strftime("%Y-%m-%d__%H-%M-%S")
    return Path(parent) / f"{profile.model.display_name}_{max(1, round(tokens / 1000))}K_tokens__{stamp}"


def disable_dropout(module: torch.nn.Module) -> None:
    """RL needs the same log-probs at sampling and update time: dropout off everywhere (as TRL does)."""
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


class Trainer:
    """One RL run of a profile, in ``run_dir`` (resumed from its last checkpoint if ``resume``)."""

    def __init__(self, profile: Profile, run_dir: Path, *, resume: bool = False,
                 console: Console | None = None) -> None:
        self.profile, self.run_dir = profile, Path(run_dir)
        self.console = console or Console(quiet=True)
        # A second run in the same process (a notebook, the test suite) may ask for another precision;
        # accelerate keeps one global state, so drop it (the process group itself is kept).
        AcceleratorState._reset_state()
        self.accelerator = Accelerator(mixed_precision=profile.trainer.mixed_precision,
                                       cpu=not torch.cuda.is_available())
        self.is_main = self.accelerator.is_main_process
        set_seed(profile.seed, device_specific=True)
        self.estimator = ADVANTAGE_ESTIMATORS.get(profile.algo.name)
        checkpoint = latest_checkpoint(self.run_dir) if resume else None
        if resume and checkpoint is None:
            raise ValueError(f"--resume {self.run_dir}: no complete checkpoint in {self.run_dir / 'checkpoints'}")
        self.tokenizer = load_tokenizer(profile.model.tokenizer)
        policy = build_policy(profile.model, with_value_head=self.estimator.needs_value_head, seed=profile.seed,
                              device=self.accelerator.device,
                              adapter_dir=checkpoint / POLICY_DIR if checkpoint else None)
        disable_dropout(policy)
        self.prompts = load_prompts(profile.data, self.tokenizer, profile.seed)
        world = self.accelerator.num_processes
        self.sampler = PromptSampler(self.prompts, profile.rollout.batch_size * world, profile.seed)
        self.reward = load_rewards(profile.rewards, nonfinite=profile.trainer.nonfinite_rewards)
        self.kl_ctl = make_kl_controller(profile.algo.kl.coef, profile.algo.kl.target, profile.algo.kl.horizon)
        t = profile.trainer
        optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
        self.scheduler = get_scheduler(t.lr_scheduler, optimizer, num_warmup_steps=t.warmup_steps,
                                       num_training_steps=t.steps * self.optimizer_steps_per_step)
        self.model, self.optimizer = self.accelerator.prepare(policy, optimizer)
        self.policy = self.accelerator.unwrap_model(self.model)
        self.step, self.tokens_seen = 0, 0
        if checkpoint is not None:
            self._restore(load_trainer_state(checkpoint))
        self.tracker = Tracker(self.run_dir, t.log_with, resume_step=self.step if resume else None,
                               config=profile.model_dump(mode="json"), enabled=self.is_main)
        self.last_checkpoint_step = self.step
        self._stop_signal: int | None = None
        self.hacking = HackingMonitor()  # warns when diversity, length or perplexity move like reward hacking

    @property
    def optimizer_steps_per_step(self) -> int:
        a = self.profile.algo
        minibatches = math.ceil(self.profile.rollout.completions_per_step / a.mini_batch_size)
        return a.epochs * math.ceil(minibatches / self.profile.trainer.grad_accum)

    # -------------------------------------------------------------------------------------- phases

    def rollout(self) -> RolloutBatch:
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        prompts = self.sampler.next_batch()[rank::world]
        max_prompt = getattr(self.policy.model.config, "max_position_embeddings",
                             getattr(self.policy.model.config, "n_positions", None))
        limit = max_prompt - self.profile.rollout.max_new_tokens if max_prompt else None
        return generate_rollouts(self.policy, self.tokenizer, prompts, self.profile.rollout,
                                 with_values=self.estimator.needs_value_head, max_prompt_tokens=limit)

    def score(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Sequence rewards (N,); samples whose reward was dropped as non-finite get their mask zeroed."""
        result = self.reward(batch.prompts, batch.completions)
        scores = result.total.to(batch.response_mask.device)
        if not bool(result.valid.all()):
            valid = result.valid.to(scores.device)
            batch.response_mask[~valid] = 0.0  # dropped samples take no part in the update
            fill = scores[valid].mean() if bool(valid.any()) else scores.new_zeros(())
            scores = torch.where(valid, scores, fill)
        return scores, result.metrics()

    def advantage(self, batch: RolloutBatch, scores: torch.Tensor):
        kl_cfg, mask = self.profile.algo.kl, batch.response_mask
        kl = kl_estimate(batch.logprobs, batch.ref_logprobs, kl_cfg.estimator) * mask  # (N, R)
        inputs = AdvantageInputs(
            seq_rewards=scores, response_mask=mask, values=batch.values, kl=kl,
            kl_coef=self.kl_ctl.value if self.estimator.kl_in_reward else 0.0,
            group_size=self.profile.rollout.num_generations, gamma=self.profile.algo.gamma,
            lam=self.profile.algo.lam,
        )
        advantages, returns = self.estimator(inputs)
        return advantages, returns, kl.sum(-1)  # (N, R), (N, R) | None, (N,)

    def update(self, batch: RolloutBatch, advantages: torch.Tensor, returns: torch.Tensor | None) -> dict:
        """``epochs`` passes of shuffled minibatches; ``grad_accum`` minibatches per optimiser step."""
        algo, accum = self.profile.algo, self.profile.trainer.grad_accum
        kl_in_loss = not self.estimator.kl_in_reward and self.kl_ctl.value > 0
        n, size = len(batch.prompts), algo.mini_batch_size
        stats: dict[str, list[torch.Tensor]] = {}
        self.model.train()
        for _ in range(algo.epochs):
            order = torch.randperm(n)
            minibatches = [order[i:i + size] for i in range(0, n, size)]
            for group in (minibatches[i:i + accum] for i in range(0, len(minibatches), accum)):
                self._accumulate(batch, group, advantages, returns, kl_in_loss, stats)
                if self.profile.trainer.max_grad_norm is not None:
                    norm = self.accelerator.clip_grad_norm_(self.policy.trainable_parameters(),
                                                            self.profile.trainer.max_grad_norm)
                    stats.setdefault("policy/grad_norm", []).append(torch.as_tensor(norm).detach().float())
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        return {key: torch.stack(values).mean() for key, values in stats.items()}

    def _accumulate(self, batch: RolloutBatch, group: list[torch.Tensor], advantages, returns, kl_in_loss: bool,
                    stats: dict[str, list[torch.Tensor]]) -> None:
        """Backward over the minibatches of one optimiser step, each weighted by its share of the tokens.

        Token-mean losses weighted by token share make ``grad_accum`` a pure memory knob: 2 x 4 sequences
        give the gradient of 1 x 8 (a plain 1/accum would weight short minibatches' tokens more).
        """
        tokens = [batch.response_mask[index].sum() for index in group]
        total = torch.stack(tokens).sum().clamp(min=1.0)
        for j, index in enumerate(group):
            sync = nullcontext() if j + 1 == len(group) else self.accelerator.no_sync(self.model)
            with sync, self.accelerator.autocast():
                loss, mb_stats = self._minibatch_loss(batch.select(index), advantages[index],
                                                      returns[index] if returns is not None else None, kl_in_loss)
                self.accelerator.backward(loss * (tokens[j] / total))
            for key, value in mb_stats.items():
                stats.setdefault(key, []).append(value)

    def _minibatch_loss(self, mb: RolloutBatch, advantages, returns, kl_in_loss: bool):
        algo, mask = self.profile.algo, mb.response_mask
        logprobs, values, logits = response_logprobs(self.model, mb.input_ids, mb.attention_mask,
                                                     mb.response_length, self.profile.rollout.temperature,
                                                     with_values=returns is not None)
        loss, clipfrac = policy_loss(logprobs, mb.logprobs, advantages, mask, algo.clip_range)
        stats = {"loss/policy_avg": loss.detach(), "policy/clipfrac_avg": clipfrac.detach(),
                 "policy/approxkl_avg": approx_kl(logprobs.detach(), mb.logprobs, mask)}
        with torch.set_grad_enabled(algo.entropy_coef > 0):
            entropy = masked_mean(entropy_from_logits(logits), mask)
        stats["policy/entropy_avg"] = entropy.detach()
        loss = loss - algo.entropy_coef * entropy
        if returns is not None:
            v_loss, v_clipfrac = value_loss(values, mb.values, returns, mask, algo.clip_range_value)
            loss = loss + algo.vf_coef * v_loss
            stats.update({"loss/value_avg": v_loss.detach(), "val/clipfrac_avg": v_clipfrac.detach(),
                          "val/mean": masked_mean(values.detach(), mask)})
        if kl_in_loss:
            kl = masked_mean(kl_estimate(logprobs, mb.ref_logprobs, algo.kl.estimator), mask)
            loss = loss + self.kl_ctl.value * kl
            stats["loss/kl_avg"] = kl.detach()
        return loss, stats

    # ---------------------------------------------------------------------------------------- step

    def train_step(self) -> tuple[dict[str, float], RolloutBatch, torch.Tensor]:
        timings: dict[str, float] = {}
        with self._timed("rollout", timings):
            batch = self.rollout()
        with self._timed("score", timings):
            scores, reward_metrics = self.score(batch)
        with self._timed("advantage", timings):
            advantages, returns, seq_kl = self.advantage(batch, scores)
        self._in_update = True
        with self._timed("update", timings):
            update_stats = self.update(batch, advantages, returns)
        self._in_update = False
        kl_coef = self.kl_ctl.value
        local = {
            "objective/scores": scores.mean(), "objective/kl": seq_kl.mean(),
            "objective/rlhf_reward": (scores - kl_coef * seq_kl).mean(),
            "objective/response_length": batch.response_mask.sum(-1).mean(),
            # perplexity of the completions under the reference (at the sampling temperature)
            "text/ref_perplexity": torch.exp(-masked_mean(batch.ref_logprobs, batch.response_mask)),
            "tokens": batch.response_mask.sum(), **update_stats,
        }
        names = list(local)
        stacked = torch.stack([local[k].float().to(self.accelerator.device) for k in names])
        reduced = self.accelerator.reduce(stacked, reduction="mean").tolist()  # the one host sync of the step
        metrics = dict(zip(names, reduced))
        total_tokens = round(metrics.pop("tokens") * self.accelerator.num_processes)
        self.kl_ctl.update(metrics["objective/kl"], len(batch.prompts) * self.accelerator.num_processes)
        self.tokens_seen += total_tokens
        step_s = sum(timings.values())
        metrics.update(reward_metrics)
        metrics.update(completion_metrics(batch.completions))  # distinct-n, repetition, length (this process's)
        metrics.update({f"timing/{k}": v for k, v in timings.items()})
        metrics.update({"kl_coef": kl_coef, "lr": self.scheduler.get_last_lr()[0], "tokens": self.tokens_seen,
                        "tokens_per_s": total_tokens / max(step_s, 1e-9), "step_s": step_s})
        return metrics, batch, scores

    @contextmanager
    def _timed(self, phase: str, timings: dict[str, float]):
        start = time.perf_counter()
        yield
        timings[phase] = time.perf_counter() - start

    # ------------------------------------------------------------------------------------ the run

    def train(self, merge: bool = False) -> RunResult:
        """Run the remaining steps; checkpoint, log and save the final model."""
        t = self.profile.trainer
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "profile.yaml").write_text(self.profile.to_yaml(), encoding="utf-8")
        metrics: dict[str, float] = {}
        self._in_update = False
        with self._signals(), step_progress(self.console, t.steps, self.step, enabled=self.is_main) as progress:
            while self.step < t.steps:
                try:
                    metrics, batch, scores = self.train_step()
                except Exception:
                    if not self._in_update and self.step > self.last_checkpoint_step:
                        self.checkpoint()  # the model is as after the last finished step: keep that work
                    last = latest_checkpoint(self.run_dir)
                    if last is not None and self.is_main:
                        self.console.print(f"[yellow]stopped at step {self.step + 1}; last checkpoint: {last} "
                                           f"(continue with: rlhf run --resume {self.run_dir})", soft_wrap=True)
                    raise
                self.step += 1
                self.tracker.log(self.step, metrics)
                for warning in self.hacking.update(self.step, metrics) if self.is_main else []:
                    self.console.print(f"[bold yellow]warning:[/] {warning}", soft_wrap=True, highlight=False)
                self.tracker.log_samples(self.step, batch.prompts, batch.completions, scores.tolist())
                progress(self.step, metrics)
                if self.step % t.sample_every == 0 and self.is_main:
                    print_samples(self.console, self.step, batch.prompts, batch.completions, scores.tolist())
                if self.step % t.checkpoint_every == 0 or self.step == t.steps:
                    self.checkpoint()
                if self._should_stop():
                    if self.step > self.last_checkpoint_step:
                        self.checkpoint()
                    raise TrainingInterrupted(self._stop_signal or signal.SIGTERM, latest_checkpoint(self.run_dir))
        self.tracker.close()
        result = self._save_final(merge, metrics)
        if t.eval_samples and self.is_main:
            result.comparison = self.evaluate(t.eval_samples, t.eval_best_of)
        return result

    def evaluate(self, samples: int, best_of: int = 1) -> Comparison:
        """Base vs tuned on ``samples`` seeded prompts, saved to ``meta_data/`` and printed."""
        return evaluate_and_report(self.policy, self.tokenizer, self.reward, self.prompts, self.profile, samples,
                                   self.run_dir, self.console, best_of)

    def checkpoint(self) -> None:
        state = {
            "step": self.step, "tokens_seen": self.tokens_seen, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "kl_controller": self.kl_ctl.state_dict(),
            "sampler": self.sampler.state_dict(),
        }
        rng = gather_object([rng_state()]) if self.accelerator.num_processes > 1 else [rng_state()]
        if self.is_main:
            save_checkpoint(self.run_dir, self.step, self.policy, self.tokenizer, {**state, "rng": rng},
                            keep=self.profile.trainer.keep_checkpoints)
        self.accelerator.wait_for_everyone()
        self.last_checkpoint_step = self.step

    def _restore(self, state: dict) -> None:
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.kl_ctl.load_state_dict(state["kl_controller"])
        self.sampler.load_state_dict(state["sampler"])
        rng = state["rng"]
        if len(rng) != self.accelerator.num_processes:
            raise ValueError(f"checkpoint was written by {len(rng)} processes; resume with the same number "
                             f"(got {self.accelerator.num_processes})")
        set_rng_state(rng[self.accelerator.process_index])

    def _save_final(self, merge: bool, metrics: dict[str, float]) -> RunResult:
        final_dir, merged_dir = self.run_dir / "final", None
        if self.is_main:
            self.policy.save(final_dir, self.tokenizer)
            if merge and self.policy.uses_lora:
                merged_dir = self.run_dir / "final-merged"
                merge_lora(self.profile.model, final_dir, self.profile.seed).save_pretrained(merged_dir)
                self.tokenizer.save_pretrained(merged_dir)
        self.accelerator.wait_for_everyone()
        return RunResult(self.run_dir, final_dir, merged_dir, metrics)

    # ----------------------------------------------------------------------------------- signals

    @contextmanager
    def _signals(self):
        def handler(signum, frame):
            self._stop_signal = signum
            self.console.print(f"[yellow]{signal.Signals(signum).name}: finishing this step, then checkpointing")

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _should_stop(self) -> bool:
        flag = torch.tensor(float(self._stop_signal is not None), device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            flag = self.accelerator.reduce(flag, reduction="sum")
        return bool(flag.item() > 0)


def run(profile: Profile, *, output_dir: str | Path | None = None, resume_dir: str | Path | None = None,
        merge: bool = False, console: Console | None = None) -> RunResult:
    """Train a profile in a new run folder, or continue the run in ``resume_dir``.

    A profile with a ``pretrain:`` section is pretrained first (once; cached) and trained from the result.
    """
    if resume_dir is None:
        profile = with_pretrained_policy(profile, console)
    run_dir = Path(resume_dir) if resume_dir else new_run_dir(profile, output_dir or profile.trainer.output_dir)
    trainer = Trainer(profile, run_dir, resume=resume_dir is not None, console=console)
    try:
        return trainer.train(merge=merge)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
