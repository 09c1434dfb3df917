"""TRL's GRPOTrainer / RLOOTrainer at the settings of an rlhf profile, stepped one RL step at a time.

Equal settings (see shared/verified-facts.md): the same saved model folder and tokenizer, the same prompts
and reward callable, ``beta`` = ``algo.kl.coef``, ``epsilon``/``epsilon_high`` = ``algo.clip_bounds``, the
same learning rate, constant schedule, plain ``torch.optim.AdamW``, gradient clipping, sampling settings and
completion length, dropout disabled on both sides, gradient checkpointing as in the profile (TRL defaults
to on), float32 (``bf16=False``), GRPO's ``loss_type`` and ``scale_rewards`` as ours, RLOO's batch
normalisation only if ours, and no running reward scaling on our side (TRL has none). One RL step is one
generation batch: ``epochs * minibatches / grad_accum`` optimiser steps of TRL's loop, as in ours.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from rlhf.config import Profile

PEERS = ("grpo", "rloo")


def _config(profile: Profile, work_dir: Path):
    from trl import GRPOConfig, RLOOConfig

    r, a, t = profile.rollout, profile.algo, profile.trainer
    generation_kwargs = {"min_new_tokens": r.min_new_tokens} if r.min_new_tokens else None
    common = dict(
        output_dir=str(work_dir / "trl"), seed=profile.seed, learning_rate=t.learning_rate,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=t.weight_decay, optim="adamw_torch",
        max_grad_norm=t.max_grad_norm or 0.0, per_device_train_batch_size=a.mini_batch_size,
        gradient_accumulation_steps=t.grad_accum, steps_per_generation=r.completions_per_step // a.mini_batch_size,
        num_iterations=a.epochs, num_generations=r.num_generations, max_completion_length=r.max_new_tokens,
        temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, generation_kwargs=generation_kwargs,
        beta=a.kl.coef, epsilon=a.clip_bounds[0], epsilon_high=a.clip_bounds[1], disable_dropout=True,
        bf16=False, fp16=False,
        gradient_checkpointing=profile.model.gradient_checkpointing,  # TRL's default is True, ours the profile's
        use_cpu=not torch.cuda.is_available(), max_steps=10**6, save_strategy="no", report_to="none",
        logging_steps=10**6, disable_tqdm=True, dataloader_num_workers=0, log_completions=False,
    )
    if a.name == "grpo":
        return GRPOConfig(loss_type=a.loss_type, scale_rewards=a.scale_rewards or "group", **common)
    return RLOOConfig(normalize_advantages=a.scale_rewards == "batch", **common)


def check_supported(profile: Profile) -> None:
    """Raise ValueError unless TRL has a trainer for the profile at equal settings."""
    if profile.algo.name not in PEERS:
        raise ValueError(f"--against trl: TRL 1.x has trainers for {', '.join(PEERS)}, not "
                         f"algo.name={profile.algo.name!r}; compare it with the floor only")
    if profile.algo.reward_scaling != "none":
        raise ValueError(f"--against trl: TRL has no running reward scaling (algo.reward_scaling="
                         f"{profile.algo.reward_scaling!r}); --set algo.reward_scaling=none for equal settings")
    if profile.algo.name == "rloo" and profile.algo.scale_rewards == "group":
        raise ValueError("--against trl: TRL's RLOO normalises advantages over the batch only; "
                         "set algo.scale_rewards to none or batch")
    if profile.model.quantization is not None or profile.model.lora is not None:
        raise ValueError("--against trl supports unquantised models without LoRA (the bench profiles); "
                         "drop model.quantization / model.lora for the comparison")


class TrlStep:
    """TRL's trainer for ``algo.name`` (grpo or rloo) on the profile's model folder; ``serve`` steps it."""

    name = "trl"

    def __init__(self, profile: Profile, work_dir: Path) -> None:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, TrainerCallback
        from trl import GRPOTrainer, RLOOTrainer

        from rlhf.data import load_prompts
        from rlhf.models.factory import model_source
        from rlhf.models.tokenizer import load_tokenizer
        from rlhf.rewards import load_rewards

        check_supported(profile)
        folder = str(model_source(profile.model, profile.seed))
        tokenizer = load_tokenizer(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        score = load_rewards(profile.rewards, nonfinite=profile.trainer.nonfinite_rewards)

        def rlhf_reward(prompts, completions, **kwargs):
            return score(prompts, completions).total.tolist()

        dataset = Dataset.from_dict({"prompt": load_prompts(profile.data, tokenizer, profile.seed)})
        trainer_class = GRPOTrainer if profile.algo.name == "grpo" else RLOOTrainer
        self.steps_per_rl_step = (profile.algo.epochs * profile.rollout.completions_per_step
                                  // profile.algo.mini_batch_size // profile.trainer.grad_accum)
        peer = self

        class Stepper(TrainerCallback):
            def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
                peer._time(optimizer, "step", "optimizer")

            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step % peer.steps_per_rl_step == 0 and not peer._finish_step():
                    control.should_training_stop = True

        self.trainer = trainer_class(model=model, reward_funcs=rlhf_reward, args=_config(profile, work_dir),
                                     train_dataset=dataset, processing_class=tokenizer, callbacks=[Stepper()])
        self.sequences = profile.rollout.completions_per_step
        self._phases: dict[str, float] = {}
        self._in_rollout = False
        t = self.trainer
        self._time(t, "_generate", "generate")
        self._time(t, "_calculate_rewards", "score")
        self._time(t, "compute_loss", "update_forward")
        self._time(t.accelerator, "backward", "backward")
        self._time(t.accelerator, "clip_grad_norm_", "optimizer")
        rollout, logprobs = t._generate_and_score_completions, t._get_per_token_logps_and_entropies

        def timed_rollout(*args, **kwargs):
            self._in_rollout = True
            try:
                return rollout(*args, **kwargs)
            finally:
                self._in_rollout = False

        def timed_logprobs(model, *args, **kwargs):
            if not self._in_rollout:  # the update's forward: counted in update_forward
                return logprobs(model, *args, **kwargs)
            phase = "ref_logprobs" if model is t.ref_model and model is not None else "old_logprobs"
            start = time.perf_counter()
            try:
                return logprobs(model, *args, **kwargs)
            finally:
                self._phases[phase] = self._phases.get(phase, 0.0) + time.perf_counter() - start

        t._generate_and_score_completions, t._get_per_token_logps_and_entropies = timed_rollout, timed_logprobs

    def _time(self, owner, attr: str, phase: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._phases[phase] = self._phases.get(phase, 0.0) + time.perf_counter() - start

        setattr(owner, attr, timed)

    def serve(self, wait, emit) -> None:
        """Run TRL's loop; after every RL step ``emit`` its timings and block on ``wait`` for the next."""
        self._wait, self._emit = wait, emit
        if wait():
            self._start = time.perf_counter()
            self.trainer.train()

    def _finish_step(self) -> bool:
        step_s = time.perf_counter() - self._start
        phases = dict(self._phases)
        phases["other"] = max(step_s - sum(phases.values()), 0.0)
        self._emit({"step_s": step_s, "phases": phases, "tokens": self._last_tokens(), "sequences": self.sequences})
        self._phases.clear()
        go_on = self._wait()
        self._start = time.perf_counter()
        return go_on

    def _last_tokens(self) -> int:
        metrics = self.trainer._metrics["train"].get("completions/mean_length")
        return round(metrics[-1] * self.sequences) if metrics else 0
