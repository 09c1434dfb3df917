"""``rlhf serve``: a small Gradio page to try a model: base and tuned side by side, with their rewards.

Gradio is the ``ui`` extra (``pip install 'rlhf[ui]'``). The server binds to 127.0.0.1 unless ``--host``
says otherwise, so a model is not exposed to the network by accident.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlhf.eval.evaluate import base_network
from rlhf.eval.generate import complete
from rlhf.eval.loading import LoadedModel

DEFAULT_HOST = "127.0.0.1"


def _gradio():
    try:
        import gradio
    except ImportError as exc:
        raise ImportError("rlhf serve needs gradio, which is not installed: pip install 'rlhf[ui]'") from exc
    return gradio


def responder(tuned: LoadedModel, base: LoadedModel | None, reward, seed: int = 0) -> Callable:
    """``respond(prompt) -> (base text, base reward, tuned text, tuned reward)``; rewards as text ("" without)."""

    def score(prompt: str, completion: str) -> str:
        if reward is None:
            return "(no rewards in the profile)"
        scores = reward([prompt], [completion])
        parts = [f"{name} {values[0].item():+.3f}" for name, values in scores.components.items()]
        return f"reward {scores.total[0].item():+.3f}" + (f" ({', '.join(parts)})" if len(parts) > 1 else "")

    def respond(prompt: str) -> tuple[str, str, str, str]:
        cfg, limit = tuned.profile.rollout, tuned.max_prompt_tokens
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with base_network(tuned, base) as (network, tokenizer):
                base_text = complete(network, tokenizer, [prompt], cfg, limit)[0]
            tuned_text = complete(tuned.model, tuned.tokenizer, [prompt], cfg, limit)[0]
        return base_text, score(prompt, base_text), tuned_text, score(prompt, tuned_text)

    return respond


def build_app(tuned: LoadedModel, base: LoadedModel | None, reward, title: str):
    """The Gradio Blocks app (not launched)."""
    gr = _gradio()
    respond = responder(tuned, base, reward, tuned.profile.seed)
    with gr.Blocks(title=title) as app:
        gr.Markdown(f"## {title}\nBase (left) and tuned (right) complete the same prompt, scored by the rewards.")
        prompt = gr.Textbox(label="prompt", lines=2)
        button = gr.Button("generate")
        with gr.Row():
            with gr.Column():
                base_text = gr.Textbox(label="base", lines=4)
                base_reward = gr.Textbox(label="base reward")
            with gr.Column():
                tuned_text = gr.Textbox(label="tuned", lines=4)
                tuned_reward = gr.Textbox(label="tuned reward")
        outputs = [base_text, base_reward, tuned_text, tuned_reward]
        button.click(respond, inputs=prompt, outputs=outputs)
        prompt.submit(respond, inputs=prompt, outputs=outputs)
    return app


def serve(app, host: str = DEFAULT_HOST, port: int | None = None) -> None:
    """Launch ``app`` on ``host:port`` (blocks until stopped)."""
    app.launch(server_name=host, server_port=port, share=False)
