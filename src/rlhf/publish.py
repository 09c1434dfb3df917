"""Hub-ready outputs: the model card in ``final/README.md`` and ``rlhf push RUN --repo NAME``.

The card is a ``huggingface_hub.ModelCard``: YAML metadata (base model, library, tags) and a body with the
run's facts: base model, profile, algorithm, rewards, steps, tokens, final metrics and, when the run
folder has one (``meta_data/evaluation.json``), the base-vs-tuned evaluation summary. ``push`` uploads
``final/`` with ``HfApi.create_repo`` and ``HfApi.upload_folder``.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlhf.config import Profile

CARD_FILE = "README.md"
EVALUATION_FILE = "evaluation.json"


def _base_model(profile: Profile) -> tuple[str, str | None]:
    """``(description, hub id or None)`` of the model the run started from."""
    model = profile.model
    if model.random_init is not None:
        spec = model.random_init
        return f"random-init {spec.arch} ({spec.n_layer} layers, hidden {spec.n_embd}; built from a config)", None
    name = model.name_or_path
    return (f"`{name}` (local folder)", None) if Path(name).expanduser().exists() else (f"`{name}`", name)


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def model_card_text(profile: Profile, *, algorithm: str, metrics: dict, steps: int | None = None,
                    tokens: int | None = None, evaluation: dict | None = None) -> str:
    """The card's Markdown (with YAML metadata) for a run's final model."""
    from huggingface_hub import ModelCard, ModelCardData

    base, hub_id = _base_model(profile)
    model = profile.model
    library = "peft" if model.lora is not None else "transformers"
    data = ModelCardData(base_model=hub_id, library_name=library, tags=["rlhf", algorithm.split()[0], "trl"],
                         pipeline_tag="text-generation")
    if algorithm.startswith("dpo"):  # no reward function: the implicit reward of the preference pairs
        reward_text = f"none; preference pairs from `{profile.dpo.data}`" if profile.dpo else "none"
    else:
        reward_text = ", ".join(f"`{r.name}` (weight {r.weight:g})" for r in profile.rewards) or "none"
    lines = [
        f"# {profile.model.display_name}, tuned with {algorithm}", "",
        "Trained with `rlhf` (RL fine-tuning of language models) on the profile below.", "",
        f"- **base model:** {base}",
        f"- **profile:** {profile.description or '(no description)'}",
        f"- **algorithm:** {algorithm}",
        f"- **rewards:** {reward_text}",
        f"- **weights:** {'LoRA adapter (r=' + str(model.lora.r) + ')' if model.lora else 'full model'}"
        f"{', base loaded in ' + str(model.quantization.bits) + '-bit' if model.quantization else ''}",
        f"- **steps:** {steps if steps is not None else 'n/a'}",
        f"- **tokens:** {tokens if tokens is not None else 'n/a'}",
        f"- **seed:** {profile.seed}", "",
        "## Final metrics", "", "| metric | value |", "| --- | --- |",
        *[f"| {key} | {_format(value)} |" for key, value in metrics.items()],
    ]
    if evaluation:
        lines += ["", "## Evaluation (base vs tuned)", "", "| metric | value |", "| --- | --- |",
                  *[f"| {key} | {_format(value)} |" for key, value in evaluation.items()]]
    lines += ["", "## Profile", "", "```yaml", profile.to_yaml().rstrip(), "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)).content


def write_model_card(folder: str | Path, profile: Profile, *, algorithm: str, metrics: dict,
                     steps: int | None = None, tokens: int | None = None, run_dir: str | Path | None = None) -> Path:
    """Write ``README.md`` into ``folder``; the evaluation summary is read from ``run_dir`` if present."""
    evaluation = None
    if run_dir is not None and (Path(run_dir) / "meta_data" / EVALUATION_FILE).exists():
        evaluation = json.loads((Path(run_dir) / "meta_data" / EVALUATION_FILE).read_text(encoding="utf-8"))
    path = Path(folder) / CARD_FILE
    path.write_text(model_card_text(profile, algorithm=algorithm, metrics=metrics, steps=steps, tokens=tokens,
                                    evaluation=evaluation), encoding="utf-8")
    return path


def push_run(run_dir: str | Path, repo: str, *, private: bool = False, api=None) -> str:
    """Upload ``RUN/final`` (model, tokenizer, card) to the hub repo ``repo``; return the commit URL.

    ``api`` defaults to ``huggingface_hub.HfApi()`` (token from ``hf auth login`` or ``HF_TOKEN``).
    Raises ``ValueError`` (bad run folder) or ``OSError`` naming the repo when the hub cannot be reached.
    """
    final = Path(run_dir) / "final"
    if not (final / "config.json").exists() and not (final / "adapter_config.json").exists():
        raise ValueError(f"{run_dir}: no final model in {final} (needs config.json or adapter_config.json); "
                         "push a finished run folder")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo, folder_path=str(final), commit_message=f"rlhf: {Path(run_dir).name}")
    except Exception as exc:  # requests/httpx errors, offline mode, auth: all one line for the user
        detail = str(exc).splitlines()[0].rstrip(".") if str(exc) else "no details"
        raise OSError(f"could not push {final} to the hub repo {repo!r} ({type(exc).__name__}: {detail}); "
                      "check the network and `hf auth login`") from exc
    return str(getattr(commit, "commit_url", commit))
