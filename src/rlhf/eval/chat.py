"""``rlhf chat``: talk to a model in the terminal, or pipe lines to it on stdin.

With a tokenizer that has a chat template the conversation is a list of user/assistant turns rendered by
the template; without one it is plain continuation: the transcript so far plus the new line is the
prompt, and the model's continuation is its reply. ``/reset`` starts over; end of input quits. Long
conversations keep their most recent tokens (the model's context minus ``max_new_tokens``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

import torch

from rlhf.config import RolloutConfig
from rlhf.eval.generate import complete

RESET = "/reset"


class ChatSession:
    """The conversation with one model; :meth:`reply` adds a user turn and returns the model's answer."""

    def __init__(self, model, tokenizer, cfg: RolloutConfig, max_prompt_tokens: int | None, seed: int = 0,
                 system_prompt: str | None = None) -> None:
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.max_prompt_tokens, self.system_prompt = max_prompt_tokens, system_prompt
        self.uses_template = getattr(tokenizer, "chat_template", None) is not None
        self.generator = torch.Generator().manual_seed(seed)
        self.messages: list[dict[str, str]] = []
        self.transcript = ""

    def reset(self) -> None:
        self.messages, self.transcript = [], ""

    def prompt_for(self, user_text: str) -> str:
        """The text the model continues when the user says ``user_text`` next."""
        if self.uses_template:
            system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            turns = [*system, *self.messages, {"role": "user", "content": user_text}]
            return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return f"{self.transcript}\n{user_text}" if self.transcript else user_text

    def reply(self, user_text: str) -> str:
        prompt = self.prompt_for(user_text)
        truncation_side = self.tokenizer.truncation_side
        self.tokenizer.truncation_side = "left"  # keep the newest turns when the context is full
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=self.generator)))
                answer = complete(self.model, self.tokenizer, [prompt], self.cfg, self.max_prompt_tokens)[0]
        finally:
            self.tokenizer.truncation_side = truncation_side
        self.messages += [{"role": "user", "content": user_text}, {"role": "assistant", "content": answer}]
        self.transcript = prompt + answer
        return answer


def read_turns(stream: TextIO, prompt: Callable[[], None] | None = None) -> Iterator[str]:
    """Non-empty lines of ``stream`` (``prompt`` is called before each read, for a terminal)."""
    while True:
        if prompt is not None:
            prompt()
        line = stream.readline()
        if not line:
            return
        if line.strip():
            yield line.rstrip("\n")


def chat_loop(session: ChatSession, turns: Iterable[str], write: Callable[[str], None]) -> int:
    """Answer each turn (``/reset`` clears the history); returns the number of replies."""
    replies = 0
    for text in turns:
        if text.strip() == RESET:
            session.reset()
            write("(conversation reset)")
            continue
        write(f"model> {session.reply(text)}")
        replies += 1
    return replies
