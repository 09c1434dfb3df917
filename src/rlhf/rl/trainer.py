"""The RL loop: rollout -> score -> advantage -> update, with checkpoints, resume and logging.

The loop never names an algorithm: the advantage estimator from ``rlhf.algos`` says whether it needs a
value head and whether the KL penalty goes into the reward (PPO) or into the loss (GRPO, RLOO).
Distribution goes through a strategy (``rl/strategies.py``: accelerate DDP, or FSDP2 sharding): each
process rolls out its share of every batch, gradients are averaged, the main process writes logs and
checkpoints.
"""

from __future__ import annotations

import math
import shutil
import signal
import time
from contextlib import contextmanager, nullcontext
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from rich.console import Console
from transformers import get_scheduler

from rlhf.algos import (
    ADVANTAGE_ESTIMATORS, LOSS_TYPES, AdvantageInputs, RunningMoments, aggregate_loss, approx_kl,
    clipped_surrogate, entropy_from_logits, full_kl, kl_estimate, make_kl_controller, masked_mean, scale_scores,
    value_loss,
)
from rlhf.rl.checkpoint import (
    POLICY_DIR, checkpoint_dir, latest_checkpoint, newest_intact_checkpoint, remove_leftovers, restore_rng_states,
    rng_state, save_checkpoint,
)
from rlhf.fsutil import atomic_directory
from rlhf.config import Profile
from rlhf.publish import write_model_card
from rlhf.data import PromptSampler, load_prompts
from rlhf.data.context import fit_prompts
from rlhf.eval.compare import Comparison, evaluate_and_report, evaluate_run
from rlhf.eval.hacking import HackingMonitor
from rlhf.eval.metrics import completion_metrics
from rlhf.models.factory import build_policy, merge_lora
from rlhf.models.layers import context_length
from rlhf.preflight import check_before_run
from rlhf.stages.pretrain import with_pretrained_policy
from rlhf.stages.reward_model import run_reward_model_stage
from rlhf.rewards import load_rewards
from rlhf.rewards.composite import DroppedStepGuard
from rlhf.rl.rollout import RolloutBatch, generate_rollouts, response_logprobs
from rlhf.rl.strategies import make_strategy
from rlhf.models.tokenizer import load_tokenizer
from rlhf.tracking import Tracker
from rlhf.progress import print_samples, step_progress


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived: the current step finished and a checkpoint was written."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint: {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


class TrainingAborted(BaseException):
    """A second SIGINT/SIGTERM: stop at once, mid-step (e.g. a reward that never returns).

    A ``BaseException`` like ``KeyboardInterrupt``, so a reward's ``except Exception`` cannot swallow it.
    Checkpoint writes are atomic, so the last complete checkpoint stays intact.
    """

    def __init__(self, signum: int, run_dir: Path) -> None:
        super().__init__(f"stopped at once by a second {signal.Signals(signum).name}")
        self.signum, self.run_dir = signum, run_dir


class TrainingDiverged(Exception):
    """The loss, the gradients or the weights became NaN/inf: nothing non-finite was applied or saved."""

    def __init__(self, step: int, what: str, hints: list[str], checkpoint: Path | None) -> None:
        cause = "; ".join(hints) if hints else "try a lower trainer.learning_rate"
        resume = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
        super().__init__(f"training diverged at step {step}: {what}. Likely cause: {cause}. Nothing non-finite "
                         f"was applied or saved; {resume}")
        self.step, self.checkpoint = step, checkpoint


@dataclass
class RunResult:
    """What a run produced: its folder, the final model, the last step's metrics and every artefact."""

    run_dir: Path
    final_dir: Path
    merged_dir: Path | None
    last_metrics: dict[str, float]
    comparison: Comparison | None = None

    @property
    def stats(self):
        """``meta_data/training_stats.csv`` as a pandas DataFrame, one row per step."""
        import pandas as pd

        return pd.read_csv(self.run_dir / "meta_data" / "training_stats.csv")

    @property
    def samples(self):
        """``meta_data/generated_outputs.csv`` (step, prompt, completion, reward) as a pandas DataFrame."""
        import pandas as pd

        return pd.read_csv(self.run_dir / "meta_data" / "generated_outputs.csv", keep_default_na=False)

    @property
    def paths(self) -> dict[str, Path]:
        """Every artefact of the run that exists, by name."""
        meta = self.run_dir / "meta_data"
        candidates = {"run_dir": self.run_dir, "profile": self.run_dir / "profile.yaml", "final": self.final_dir,
                      "merged": self.merged_dir, "checkpoints": self.run_dir / "checkpoints",
                      "training_stats": meta / "training_stats.csv", "samples": meta / "generated_outputs.csv",
                      "tensorboard": self.run_dir / "tensorboard"}
        return {name: path for name, path in candidates.items() if path is not None and Path(path).exists()}


StepCallback = Callable[[dict[str, float], list[dict]], None]  # (metrics, [{prompt, completion, reward}])


def run_dir_name(profile: Profile) -> str:
    """``<model>_<N>K_tokens__<YYYY-MM-DD__HH-MM-SS>`` with N the planned generated tokens."""
    tokens = profile.trainer.steps * profile.rollout.completions_per_step * profile.rollout.max_new_tokens
    stamp = datetime.now().strftime("%Y-%m-%d__%H-%M-%S")
    return f"{profile.model.display_name}_{max(1, round(tokens / 1000))}K_tokens__{stamp}"


def new_run_dir(profile: Profile, parent: str | Path) -> Path:
    """Create and return a run folder no other run uses: ``<parent>/<name>``, else ``<name>_2``, ``_3``...

    The folder is claimed with an exclusive ``mkdir``, so two runs started in the same second never share
    it. Under a multi-process launch the main process claims it and tells the others.
    """
    # The first accelerate state of the process decides the process count: `cpu=True` as in the Trainer,
    # else a CPU-only `torchrun`/`accelerate launch` is taken for one process per rank.
    state = PartialState(cpu=not torch.cuda.is_available())
    chosen: list[str | None] = [None]
    if state.is_main_process:
        parent, name = Path(parent), run_dir_name(profile)
        parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 10_000):
            candidate = parent / (name if attempt == 1 else f"{name}_{attempt}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            chosen[0] = str(candidate)
            break
    if state.num_processes > 1:
        broadcast_object_list(chosen)
    return Path(chosen[0])


def disable_dropout(module: torch.nn.Module) -> None:
    """RL needs the same log-probs at sampling and update time: dropout off everywhere (as TRL does)."""
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


class Trainer:
    """One RL run of a profile, in ``run_dir`` (resumed from its last checkpoint if ``resume``)."""

    def __init__(self, profile: Profile, run_dir: Path, *, resume: bool = False,
                 console: Console | None = None, rewards: Sequence | None = None,
                 on_step: StepCallback | None = None) -> None:
        self.profile, self.run_dir = profile, Path(run_dir)
        self.on_step = on_step
        self.console = console or Console(quiet=True)
        # A second run in the same process (a notebook, the test suite) may ask for another precision;
        # accelerate keeps one global state, so drop it (the process group itself is kept).
        AcceleratorState._reset_state()
        self.accelerator = Accelerator(mixed_precision=profile.trainer.mixed_precision,
                                       cpu=not torch.cuda.is_available())
        self.is_main = self.accelerator.is_main_process
        self.strategy = make_strategy(profile.trainer, self.accelerator)
        # The same random init (LoRA, value head) in every process: FSDP keeps each process's shard of it.
        set_seed(profile.seed)
        self.estimator = ADVANTAGE_ESTIMATORS.get(profile.algo.name)
        checkpoint, state = self._find_checkpoint() if resume else (None, None)
        # Rewards first: a reward model that cannot load fails before the (possibly 8B) policy does.
        self.reward = load_rewards(profile.rewards if rewards is None else rewards,
                                   nonfinite=profile.trainer.nonfinite_rewards)
        self.tokenizer = load_tokenizer(profile.model.tokenizer)
        policy = build_policy(profile.model, with_value_head=self.estimator.needs_value_head, seed=profile.seed,
                              device=self.accelerator.device,
                              adapter_dir=checkpoint / POLICY_DIR if checkpoint else None,
                              quant_storage=self.strategy.quant_storage)
        disable_dropout(policy)
        if self.accelerator.num_processes > 1:
            set_seed(profile.seed, device_specific=True)  # then each process samples its own completions
        self.prompts = load_prompts(profile.data, self.tokenizer, profile.seed)
        context = context_length(policy.model.config)
        fitted = fit_prompts(self.prompts, self.tokenizer, context, profile.rollout.max_new_tokens)
        if fitted.num_cut and self.is_main:  # once per run, not per batch
            self.console.print(f"[yellow]warning:[/] {fitted.warning(profile.rollout.max_new_tokens, context)}",
                               soft_wrap=True, highlight=False)
        self.prompts, self.max_prompt_tokens = fitted.prompts, fitted.max_prompt_tokens
        self.dropped_guard = DroppedStepGuard()
        world = self.accelerator.num_processes
        self.sampler = PromptSampler(self.prompts, profile.rollout.batch_size * world, profile.seed)
        self.kl_ctl = make_kl_controller(profile.algo.kl.coef, profile.algo.kl.target, profile.algo.kl.horizon)
        self.reward_moments = RunningMoments()  # running statistics of the scores, for algo.reward_scaling
        t = profile.trainer
        self.model, self.optimizer = self.strategy.prepare(
            policy, lambda params: torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay))
        self.policy = self.accelerator.unwrap_model(self.model)
        # transformers' "constant" ignores warm-up; "constant_with_warmup" is what a warm-up asks for.
        schedule = "constant_with_warmup" if t.lr_scheduler == "constant" and t.warmup_steps else t.lr_scheduler
        # On the torch optimizer, not accelerate's wrapper (whose step may be wrapped again, e.g. by the bench).
        self.scheduler = get_scheduler(schedule, getattr(self.optimizer, "optimizer", self.optimizer),
                                       num_warmup_steps=t.warmup_steps,
                                       num_training_steps=t.steps * self.optimizer_steps_per_step)
        self.step, self.tokens_seen = 0, 0
        if state is not None:
            self._restore(state)
        self.tracker = Tracker(self.run_dir, t.log_with, resume_step=self.step if resume else None,
                               config=profile.model_dump(mode="json"), enabled=self.is_main)
        self.last_checkpoint_step = self.step
        self._stop_signal: int | None = None
        self._weights_changed = False
        self.hacking = HackingMonitor()  # warns when diversity, length or perplexity move like reward hacking

    def _find_checkpoint(self) -> tuple[Path, dict]:
        """The newest intact checkpoint and its state; damaged newer ones are skipped with a warning."""
        if self.is_main:
            for leftover in remove_leftovers(self.run_dir):
                self.console.print(f"[yellow]removed {leftover.name}, left by an interrupted checkpoint write")
        found = newest_intact_checkpoint(self.run_dir, warn=lambda m: self.console.print(f"[yellow]{m}",
                                                                                          soft_wrap=True))
        if found is None:
            raise ValueError(f"--resume {self.run_dir}: no intact checkpoint in {self.run_dir / 'checkpoints'}")
        if found[0] != latest_checkpoint(self.run_dir) and self.is_main:
            self.console.print(f"[yellow]resuming from {found[0].name}, the newest intact checkpoint")
        return found

    @property
    def optimizer_steps_per_step(self) -> int:
        return self.profile.optimizer_steps_per_step

    # -------------------------------------------------------------------------------------- phases

    def rollout(self) -> RolloutBatch:
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        prompts = self.sampler.next_batch()[rank::world]
        policy_forward, reference_forward = self.rollout_forwards()
        kl = self.profile.algo.kl
        try:
            with self.strategy.generation(self.policy):
                return generate_rollouts(self.policy, self.tokenizer, prompts, self.profile.rollout,
                                         with_values=self.estimator.needs_value_head,
                                         max_prompt_tokens=self.max_prompt_tokens,
                                         full_kl_direction=kl.direction if kl.is_full else None,
                                         with_logprobs=policy_forward, with_reference=reference_forward,
                                         synced_gpus=self.strategy.synced_generation)
        except RuntimeError as exc:  # torch.multinomial on NaN/inf probabilities
            if "inf" in str(exc) and "nan" in str(exc):
                raise self._diverged("the next-token probabilities are not finite during sampling") from exc
            raise

    def rollout_forwards(self) -> tuple[bool, bool]:
        """Whether this step's rollout needs the policy forward and the reference forward (see the profile's)."""
        return self.profile.rollout_forwards

    def score(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Sequence rewards (N,); samples whose reward was dropped as non-finite get their mask zeroed."""
        result = self.reward(batch.prompts, batch.completions)
        warning = self.dropped_guard.check(result)
        if warning and self.is_main:
            self.console.print(f"[yellow]warning:[/] step {self.step + 1}: {warning}", soft_wrap=True, highlight=False)
        scores = result.total.to(batch.response_mask.device)
        if not bool(result.valid.all()):
            valid = result.valid.to(scores.device)
            batch.response_mask[~valid] = 0.0  # dropped samples take no part in the update
            fill = scores[valid].mean() if bool(valid.any()) else scores.new_zeros(())
            scores = torch.where(valid, scores, fill)
        return scores, result.metrics()

    def advantage(self, batch: RolloutBatch, scores: torch.Tensor):
        algo, mask = self.profile.algo, batch.response_mask
        kl = None  # not computed at rollout time (see rollout_forwards); the update may measure it
        if algo.kl.is_full:
            kl = batch.full_kl * mask if batch.full_kl is not None else None  # (N, R) exact, from the rollout
        elif batch.logprobs is not None and batch.ref_logprobs is not None:
            kl = kl_estimate(batch.logprobs, batch.ref_logprobs, algo.kl.estimator) * mask  # (N, R)
        self.reward_moments.update(self.accelerator.gather(scores))  # every rank keeps the same statistics
        inputs = AdvantageInputs(
            seq_rewards=scale_scores(scores, self.reward_moments, algo.reward_scaling, algo.reward_clip),
            response_mask=mask, values=batch.values, kl=kl,
            kl_coef=self.kl_ctl.value if self.estimator.kl_in_reward else 0.0,
            group_size=self.profile.rollout.num_generations, gamma=algo.gamma, lam=algo.lam,
            scale_rewards=algo.scale_rewards, whiten_rewards=algo.whiten_rewards,
        )
        advantages, returns = self.estimator(inputs)
        return advantages, returns, kl.sum(-1) if kl is not None else None  # (N, R), (N, R) | None, (N,) | None

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
                loss = self._accumulate(batch, group, advantages, returns, kl_in_loss, stats)
                max_norm = self.profile.trainer.max_grad_norm
                norm = self.strategy.clip_grad_norm_(self.policy.trainable_parameters(),
                                                     max_norm if max_norm is not None else math.inf)
                self._check_finite(loss, norm)
                stats.setdefault("policy/grad_norm", []).append(norm)
                self.optimizer.step()
                self._weights_changed = True
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        if not self._weights_finite():
            raise self._diverged("the weights are not finite after the optimizer step")
        return {key: torch.stack(values).mean() for key, values in stats.items()}

    def _check_finite(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Stop before an optimizer step that would apply a NaN/inf loss or gradient (one host sync).

        With fp16 mixed precision the gradient scaler skips inf-gradient steps itself; only the loss counts.
        """
        checked = loss if self.accelerator.scaler is not None else torch.stack([loss.float(), grad_norm])
        if not bool(torch.isfinite(checked).all()):
            what = "the loss" if not bool(torch.isfinite(loss)) else "the gradient norm"
            raise self._diverged(f"{what} is not finite (loss {float(loss):.4g}, gradient norm {float(grad_norm):.4g})")

    def _weights_finite(self) -> bool:
        return self.strategy.weights_finite(self.policy.trainable_parameters())

    def _diverged(self, what: str) -> TrainingDiverged:
        """The error to raise; sets aside the newest checkpoint if its own weights produced the NaN/inf.

        Before this step's first optimizer step the weights are those of the last finished step: if they
        were checkpointed, that checkpoint is finite but poisoned (any resume from it diverges at once), so
        it is renamed ``diverged-step-N`` (kept, not deleted) and the one before it becomes the last good one.
        """
        last = latest_checkpoint(self.run_dir)
        if not self._weights_changed and last is not None and last == checkpoint_dir(self.run_dir, self.step):
            if self.is_main:
                last.rename(last.with_name(f"diverged-{last.name}"))
            self.accelerator.wait_for_everyone()
        t, m = self.profile.trainer, self.profile.model
        hints = []
        if t.learning_rate > 1e-2:
            hints.append(f"trainer.learning_rate={t.learning_rate:g} is very high")
        if t.max_grad_norm is None:
            hints.append("gradient clipping is off (set trainer.max_grad_norm, e.g. 1.0)")
        if m.dtype == "float16" or t.mixed_precision == "fp16":
            hints.append("float16 overflows easily: use bfloat16 or float32 weights")
        return TrainingDiverged(self.step + 1, what, hints, latest_checkpoint(self.run_dir))

    def _accumulate(self, batch: RolloutBatch, group: list[torch.Tensor], advantages, returns, kl_in_loss: bool,
                    stats: dict[str, list[torch.Tensor]]) -> None:
        """Backward over the minibatches of one optimiser step, each weighted by its share of the tokens.

        Token-mean losses weighted by token share (sequence-mean ones by sequence share) make ``grad_accum``
        a pure memory knob: 2 x 4 sequences give the gradient of 1 x 8 (a plain 1/accum would weight short
        minibatches' tokens more).
        """
        loss_type = LOSS_TYPES.get(self.profile.algo.loss_type)  # its unit: tokens or sequences
        tokens = [loss_type.count(batch.response_mask[index]) for index in group]
        total = torch.stack(tokens).sum().clamp(min=1.0)
        weighted_loss = torch.zeros((), device=total.device)
        for j, index in enumerate(group):
            sync = nullcontext() if j + 1 == len(group) else self.accelerator.no_sync(self.model)
            with sync, self.accelerator.autocast():
                loss, mb_stats = self._minibatch_loss(batch.select(index), advantages[index],
                                                      returns[index] if returns is not None else None, kl_in_loss)
                self.accelerator.backward(loss * (tokens[j] / total))
            weighted_loss = weighted_loss + loss.detach().float() * (tokens[j] / total)
            for key, value in mb_stats.items():
                stats.setdefault(key, []).append(value)
        return weighted_loss  # the optimiser step's loss, for the finiteness check

    def _minibatch_loss(self, mb: RolloutBatch, advantages, returns, kl_in_loss: bool):
        algo, mask = self.profile.algo, mb.response_mask
        logprobs, values, logits = response_logprobs(self.model, mb.input_ids, mb.attention_mask,
                                                     mb.response_length, self.profile.rollout.temperature,
                                                     with_values=returns is not None)
        # No rollout forward (see rollout_forwards): these weights are the sampling-time weights.
        old_logprobs = mb.logprobs if mb.logprobs is not None else logprobs.detach()
        per_token, clipped = clipped_surrogate(logprobs, old_logprobs, advantages, mask, *algo.clip_bounds)
        max_len = self.profile.rollout.max_new_tokens
        loss = aggregate_loss(per_token, mask, algo.loss_type, max_len)
        stats = {"loss/policy_avg": loss.detach(), "policy/clipfrac_avg": masked_mean(clipped, mask),
                 "policy/approxkl_avg": approx_kl(logprobs.detach(), old_logprobs, mask)}
        if mb.logprobs is None and mb.ref_logprobs is not None:  # the sampling-time KL, free here
            seq_kl = (kl_estimate(logprobs.detach(), mb.ref_logprobs, algo.kl.estimator) * mask).sum(-1)  # (B,)
            stats["objective/kl"] = seq_kl.mean()
        if kl_in_loss:  # aggregated like the policy loss (TRL's convention)
            kl = self._loss_kl(mb, logprobs, logits)  # (B, R)
            loss = loss + self.kl_ctl.value * aggregate_loss(kl, mask, algo.loss_type, max_len)
            stats["loss/kl_avg"] = masked_mean(kl.detach(), mask)
        with torch.set_grad_enabled(algo.entropy_coef > 0):
            entropy = masked_mean(entropy_from_logits(logits), mask)
        stats["policy/entropy_avg"] = entropy.detach()
        loss = loss - algo.entropy_coef * entropy
        if returns is not None:
            v_loss, v_clipfrac = value_loss(values, mb.values, returns, mask, algo.clip_range_value)
            loss = loss + algo.vf_coef * v_loss
            stats.update({"loss/value_avg": v_loss.detach(), "val/clipfrac_avg": v_clipfrac.detach(),
                          "val/mean": masked_mean(values.detach(), mask)})
        return loss, stats

    def _loss_kl(self, mb: RolloutBatch, logprobs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Per-token KL to the reference with gradient: sampled from log-probs, or exact from full logits.

        The exact one needs the reference's full distribution: one more reference forward per minibatch
        (the rollout's reference logits are not kept: ``(N, R, V)`` would not fit for a large vocabulary).
        """
        kl = self.profile.algo.kl
        if not kl.is_full:
            return kl_estimate(logprobs, mb.ref_logprobs, kl.estimator)
        ref_logits = self.policy.reference_logits(mb.input_ids, mb.attention_mask, mb.response_length + 1)
        ref_logits = ref_logits[:, :-1].float() / self.profile.rollout.temperature  # (B, R, V), as `logits`
        return full_kl(logits, ref_logits, kl.direction)

    # ---------------------------------------------------------------------------------------- step

    def train_step(self) -> tuple[dict[str, float], RolloutBatch, torch.Tensor]:
        timings: dict[str, float] = {}
        self._weights_changed = False
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
        kl = seq_kl.mean() if seq_kl is not None else update_stats.pop("objective/kl", None)
        local = {
            "objective/scores": scores.mean(),
            "objective/rlhf_reward": scores.mean() - kl_coef * kl if kl is not None else scores.mean(),
            "objective/response_length": batch.response_mask.sum(-1).mean(),
            "tokens": batch.response_mask.sum(), **update_stats,
        }
        if batch.ref_logprobs is not None:  # perplexity under the reference (sampling temperature), when it ran
            local["text/ref_perplexity"] = torch.exp(-masked_mean(batch.ref_logprobs, batch.response_mask))
        if kl is not None:  # None: KL coefficient 0, no reference forward (said once at start)
            local["objective/kl"] = kl
        names = list(local)
        stacked = torch.stack([local[k].float().to(self.accelerator.device) for k in names])
        reduced = self.accelerator.reduce(stacked, reduction="mean").tolist()  # the one host sync of the step
        metrics = dict(zip(names, reduced))
        total_tokens = round(metrics.pop("tokens") * self.accelerator.num_processes)
        if "objective/kl" in metrics:
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
        if not self.rollout_forwards()[1] and self.is_main:
            self.console.print("objective/kl is not computed (nor logged): algo.kl.coef is 0, so the reference "
                               "forward is skipped", soft_wrap=True)
        with self._signals(), step_progress(self.console, t.steps, self.step, enabled=self.is_main) as progress:
            while self.step < t.steps:
                try:
                    tokens_before = self.tokens_seen
                    metrics, batch, scores = self.train_step()
                except Exception as exc:
                    if (not self._in_update and not isinstance(exc, TrainingDiverged)
                            and self.step > self.last_checkpoint_step):
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
                if self.on_step is not None and self.is_main:
                    self.on_step(metrics, [{"prompt": p, "completion": c, "reward": r} for p, c, r
                                           in zip(batch.prompts, batch.completions, scores.tolist())])
                if self.step % t.sample_every == 0 and self.is_main:
                    print_samples(self.console, self.step, batch.prompts, batch.completions, scores.tolist())
                every_tokens = t.checkpoint_every_tokens
                passed_tokens = every_tokens and tokens_before // every_tokens < self.tokens_seen // every_tokens
                if self.step % t.checkpoint_every == 0 or self.step == t.steps or passed_tokens:
                    self.checkpoint()
                if self._should_stop():
                    if self.step > self.last_checkpoint_step:
                        self.checkpoint()
                    raise TrainingInterrupted(self._stop_signal or signal.SIGTERM, latest_checkpoint(self.run_dir))
        self.tracker.close()
        result = self._save_final(merge, metrics)
        if t.eval_samples and self.is_main:
            result.comparison = self.evaluate(t.eval_samples, t.eval_best_of)
        if self.is_main:  # after the evaluation, so the card carries its summary
            write_model_card(result.final_dir, self.profile, algorithm=self.profile.algo.name, metrics=metrics,
                             steps=self.step, tokens=self.tokens_seen, run_dir=self.run_dir)
        return result

    def evaluate(self, samples: int, best_of: int = 1) -> Comparison:
        """Base vs tuned on ``samples`` seeded prompts, saved to ``meta_data/`` and printed."""
        if self.strategy.sharded:  # this process holds a shard only: compare the saved final model
            return evaluate_run(self.profile, self.run_dir, samples, self.console, best_of)
        return evaluate_and_report(self.policy, self.tokenizer, self.reward, self.prompts, self.profile, samples,
                                   self.run_dir, self.console, best_of)

    def checkpoint(self) -> None:
        # No finiteness scan here: every caller comes after an update that ended with one (update()), or
        # with the weights unchanged since then (the keep-finished-work checkpoint after a failed phase).
        state = {
            "step": self.step, "tokens_seen": self.tokens_seen,
            "optimizer": self.strategy.optimizer_state_dict(self.model, self.optimizer),
            "scheduler": self.scheduler.state_dict(), "kl_controller": self.kl_ctl.state_dict(),
            "reward_moments": self.reward_moments.state_dict(),
            "sampler": self.sampler.state_dict(),
        }
        rng = gather_object([rng_state()]) if self.accelerator.num_processes > 1 else [rng_state()]
        weights = self.strategy.model_state_dict(self.policy)  # gathered on the main process when sharded
        if self.is_main:
            save_checkpoint(self.run_dir, self.step, self.policy, self.tokenizer, {**state, "rng": rng},
                            keep=self.profile.trainer.keep_checkpoints, weights=weights)
        self.accelerator.wait_for_everyone()
        self.last_checkpoint_step = self.step

    def _restore(self, state: dict) -> None:
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]
        self.strategy.load_optimizer_state_dict(self.model, self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._apply_learning_rate(self.profile.trainer.learning_rate)
        self.kl_ctl.load_state_dict(state["kl_controller"])
        if "reward_moments" in state:  # absent in checkpoints written before reward scaling existed
            self.reward_moments.load_state_dict(state["reward_moments"])
        self.sampler.load_state_dict(state["sampler"])
        note = restore_rng_states(state["rng"], self.accelerator.process_index, self.accelerator.num_processes,
                                  self.profile.seed)
        if note and self.is_main:
            self.console.print(f"[yellow]{note}", soft_wrap=True)

    def _apply_learning_rate(self, lr: float) -> None:
        """Use the profile's learning rate after a resume (the scheduler's saved state holds the old one).

        Resuming a diverged run with a lower ``trainer.learning_rate`` is the usual fix; without this the
        restored ``base_lrs`` would silently keep the old rate.
        """
        lambdas = getattr(self.scheduler, "lr_lambdas", None)
        self.scheduler.base_lrs = [lr] * len(self.scheduler.base_lrs)
        for i, group in enumerate(self.optimizer.param_groups):
            group["initial_lr"] = lr
            group["lr"] = lr * lambdas[i](self.scheduler.last_epoch) if lambdas else lr
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _save_final(self, merge: bool, metrics: dict[str, float]) -> RunResult:
        final_dir, merged_dir = self.run_dir / "final", None
        weights = self.strategy.model_state_dict(self.policy)  # gathered on the main process when sharded
        if self.is_main:  # written like checkpoints: complete or absent, never half a model
            with atomic_directory(final_dir, replace=True) as tmp:
                self.policy.save(tmp, self.tokenizer, state_dict=weights)
            if merge and self.policy.uses_lora:
                merged_dir = self.run_dir / "final-merged"
                with atomic_directory(merged_dir, replace=True) as tmp:
                    merge_lora(self.profile.model, final_dir, self.profile.seed).save_pretrained(tmp)
                    self.tokenizer.save_pretrained(tmp)
        self.accelerator.wait_for_everyone()
        return RunResult(self.run_dir, final_dir, merged_dir, metrics)

    # ----------------------------------------------------------------------------------- signals

    @contextmanager
    def _signals(self):
        def handler(signum, frame):
            if self._stop_signal is not None:  # the second signal: the user wants out now
                raise TrainingAborted(signum, self.run_dir)
            self._stop_signal = signum
            self.console.print(f"[yellow]{signal.Signals(signum).name}: finishing this step, then checkpointing "
                               "(send it again to stop at once)")

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
        merge: bool = False, console: Console | None = None, rewards: Sequence | None = None,
        on_step: StepCallback | None = None, profile_ref: str = "PROFILE") -> RunResult:
    """Train a profile in a new run folder, or continue the run in ``resume_dir``.

    The preflight checks (:mod:`rlhf.preflight`) run first and stop a run that cannot work before anything
    loads. A profile with a ``pretrain:`` section is pretrained first (once; cached) and trained from the
    result; a reward model that a ``reward_model:`` section produces is trained first (once; keyed).
    ``rewards`` (callables or specs) replace the profile's; ``on_step(metrics, samples)`` is called after
    every step (the main process only). A new run that fails before its first step leaves no run folder behind.
    """
    check_before_run(profile, console=console, profile_ref=profile_ref, output_dir=output_dir,
                     resume_dir=resume_dir, check_rewards=rewards is None)
    parent = Path(output_dir or profile.trainer.output_dir)
    if resume_dir is None and PartialState().is_main_process:
        parent.mkdir(parents=True, exist_ok=True)  # an unusable --output-dir fails now, not after pretraining
    if resume_dir is None:
        profile = with_pretrained_policy(profile, console)
    run_reward_model_stage(profile, console)
    run_dir = Path(resume_dir) if resume_dir else new_run_dir(profile, parent)
    trainer = None
    try:
        trainer = Trainer(profile, run_dir, resume=resume_dir is not None, console=console, rewards=rewards,
                          on_step=on_step)
        return trainer.train(merge=merge)
    except BaseException:
        if resume_dir is None and (trainer is None or trainer.step == 0) and PartialState().is_main_process:
            shutil.rmtree(run_dir, ignore_errors=True)  # failed before its first step: nothing to keep
        raise
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
