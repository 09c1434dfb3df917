"""Models for the after-training tests (generate, evaluate, chat, serve), built once per test session.

- ``tiny_lora_run``: a 2-step tiny-gpt2 PPO run with LoRA (run folder, checkpoints, adapter in final/),
  trained with a hair-trigger hacking monitor so the run's warning path is exercised;
- ``base_model_dir``: the tiny random GPT-2 folder the tiny profiles start from (with its tokenizer);
- ``hacked_model_dir``: that model edited so it says " great" at every position (a reward hacker for
  ``hackable_word_count``: maximal reward, no diversity);
- ``cycle_model``: a tiny GPT-2 trained for a second on a fixed cycle of words, so it has real structure.
"""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console

HACK_WORD = " great"  # one token of builtin-bpe, counted by hackable_word_count
CYCLE = [" great", " good", " the", " movie", " was", " and", " film", " bad"]
_BUILT: dict[tuple[str, str], object] = {}


def _once(tmp_path_factory, name: str, build):
    key = (str(tmp_path_factory.getbasetemp()), name)
    if key not in _BUILT:
        _BUILT[key] = build(tmp_path_factory.mktemp(name))
    return _BUILT[key]


def tiny_lora_run(tmp_path_factory) -> tuple[Path, str]:
    """``(run folder, console output of the run)``."""

    def build(root: Path):
        from rlhf.config import load_profile
        from rlhf.eval.hacking import HackingMonitor, Thresholds
        from rlhf.rl.trainer import Trainer, new_run_dir

        profile = load_profile("tiny-gpt2", ["trainer.steps=2", "trainer.checkpoint_every=1",
                                             "model.lora={r: 4, alpha: 8, dropout: 0.0}", "rollout.batch_size=4",
                                             "algo.mini_batch_size=4", "algo.epochs=1"])
        console = Console(record=True, width=200, force_terminal=False)
        trainer = Trainer(profile, new_run_dir(profile, root), console=console)
        # Fires whenever the mean length did not triple: the warning path of `rlhf run`, deterministically.
        trainer.hacking = HackingMonitor(window=1, thresholds=Thresholds(length_collapse=3.0))
        result = trainer.train()
        return result.run_dir, console.export_text()

    return _once(tmp_path_factory, "lora-run", build)


def base_model_dir(tmp_path_factory) -> Path:
    from rlhf.config import load_profile
    from rlhf.models.factory import model_source

    return Path(model_source(load_profile("tiny-gpt2").model))


def hacked_model_dir(tmp_path_factory) -> Path:
    def build(root: Path) -> Path:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = base_model_dir(tmp_path_factory)
        model = AutoModelForCausalLM.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        (token,) = tokenizer(HACK_WORD, add_special_tokens=False).input_ids
        direction = torch.nn.functional.normalize(torch.randn(model.config.n_embd, generator=torch.Generator().manual_seed(0)), dim=0)
        with torch.no_grad():  # the last hidden state becomes `direction` everywhere; only `token` aligns with it
            model.transformer.ln_f.weight.zero_()
            model.transformer.ln_f.bias.copy_(direction)
            model.transformer.wte.weight[token] = 50.0 * direction
        model.save_pretrained(root)
        tokenizer.save_pretrained(root)
        return root

    return _once(tmp_path_factory, "hacked-model", build)


def cycle_model(tmp_path_factory):
    """``(model, tokenizer)``: a tiny GPT-2 that learned to continue the word cycle ``CYCLE``."""

    def build(root: Path):
        from transformers import GPT2Config, GPT2LMHeadModel

        from rlhf.models.tokenizer import load_tokenizer

        tokenizer = load_tokenizer("builtin-bpe")
        ids = torch.tensor([tokenizer(w, add_special_tokens=False).input_ids[0] for w in CYCLE])
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=32, n_positions=64,
                                           bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                                           pad_token_id=tokenizer.pad_token_id))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(40):
            starts = torch.randint(0, len(CYCLE), (16, 1))
            batch = ids[(starts + torch.arange(24)) % len(CYCLE)]  # (16, 24) the cycle from random offsets
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.eval(), tokenizer

    return _once(tmp_path_factory, "cycle-model", build)


def write_profile(folder: Path, rewards: str = "[{name: hackable_word_count}]", extra: str = "") -> Path:
    path = Path(folder) / "eval-profile.yaml"
    path.write_text(f"extends: tiny-gpt2\nrewards: {rewards}\n{extra}", encoding="utf-8")
    return path
