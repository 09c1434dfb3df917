"""An LLM teacher as a reward: render a Jinja rating prompt, decode greedily, parse the score."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, PrivateAttr, model_validator

from rlhf.rewards.base import REWARDS, BuiltinReward
from rlhf.rewards.hf import context_length, load_model, resolve_device

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "rating_prompt.jinja"
TEMPLATE_VARIABLES = {"context", "continuation", "min_score", "max_score"}
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def parse_score(answer: str, min_score: int, max_score: int) -> int | None:
    """The first integer in ``[min_score, max_score]`` in the judge's answer; ``None`` if there is none.

    Decimals ("7.5") and integers outside the range are skipped.

    >>> parse_score("Rating: 7/9", 1, 9), parse_score("10, no: 8", 1, 9), parse_score("7.5", 1, 9)
    (7, 8, None)
    """
    for match in _NUMBER.finditer(answer):
        token = match.group()
        if "." not in token and min_score <= int(token) <= max_score:
            return int(token)
    return None


def load_template(path: str | Path):
    """A sandboxed Jinja template that uses ``{{ context }}`` and ``{{ continuation }}``; ``ValueError`` if not."""
    import jinja2
    from jinja2 import meta
    from jinja2.sandbox import SandboxedEnvironment

    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"option 'template'={str(path)!r}: no such file")
    source = path.read_text(encoding="utf-8")
    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        variables = meta.find_undeclared_variables(environment.parse(source))
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"option 'template'={str(path)!r}: Jinja syntax error on line {exc.lineno}: {exc}") from exc
    missing = {"context", "continuation"} - variables
    unknown = variables - TEMPLATE_VARIABLES
    if missing or unknown:
        raise ValueError(f"option 'template'={str(path)!r}: the template must use {{{{ context }}}} and "
                         f"{{{{ continuation }}}} and may use only {sorted(TEMPLATE_VARIABLES)}; missing "
                         f"{sorted(missing)}, unknown {sorted(unknown)}")
    return environment.from_string(source)


@REWARDS.register("llm_judge")
class LLMJudge(BuiltinReward):
    """A teacher causal LM rates (prompt, completion); the score is normalised to ``[0, 1]``.

    The template (default ``templates/rating_prompt.jinja``) gets ``context`` (the prompt), ``continuation``
    (the completion), ``min_score`` and ``max_score``; it goes through the tokenizer's chat template when it
    has one (``chat_template``). Greedy decoding of up to ``max_tokens`` tokens; the first integer in
    ``[min_score, max_score]`` of the answer is the score, ``(score - min_score) / (max_score - min_score)``.
    An unparseable answer gets ``fallback`` (``null``: abstain) and is counted: ``unparsed`` (total) and
    ``last_info["unparsed"]`` (last call). Prompts longer than ``max_length`` tokens lose their beginning.

    >>> import tempfile, torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from rlhf.models.tokenizer import load_tokenizer
    >>> tokenizer, folder = load_tokenizer("builtin-bpe"), tempfile.mkdtemp()
    >>> _ = torch.manual_seed(0)
    >>> config = GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=256, vocab_size=len(tokenizer),
    ...                     pad_token_id=tokenizer.pad_token_id)
    >>> GPT2LMHeadModel(config).save_pretrained(folder)
    >>> _ = tokenizer.save_pretrained(folder)
    >>> judge = LLMJudge(model=folder, max_tokens=4, fallback=0.5)
    >>> scores = judge(["Once upon a time"], [" there was a cat."])  # a random teacher rarely answers a number
    >>> 0.0 <= scores[0] <= 1.0, judge.unparsed + judge.parsed
    (True, 1)
    """

    model: str = Field(description="hub name or local folder of the teacher causal LM")
    tokenizer: str | None = Field(None, description="its tokenizer (default: the model's folder/name)")
    template: str | None = Field(None, description="Jinja template file (default: the shipped rating prompt)")
    min_score: int = Field(1, description="lowest score the teacher may answer")
    max_score: int = Field(9, description="highest score the teacher may answer")
    max_tokens: int = Field(32, ge=1, description="new tokens decoded for the answer")
    fallback: float | None = Field(0.5, ge=0.0, le=1.0, description="normalised score of an unparseable "
                                                                     "answer (null: abstain)")
    batch_size: int = Field(8, ge=1, description="prompts per generate call")
    max_length: int | None = Field(None, ge=1, description="prompt tokens kept (default: context - max_tokens)")
    chat_template: bool = Field(True, description="wrap the prompt in the tokenizer's chat template if any")
    device: str | None = Field(None, description="cpu, cuda, ... (default: cuda if available)")
    warn_unparsed: float = Field(0.5, ge=0.0, le=1.0, description="warn when more than this share of a "
                                                                  "batch's answers has no score")
    max_unparsed: float = Field(0.9, ge=0.0, le=1.0, description="stop when more than this share is unparsed "
                                                                 "for `patience` batches in a row")
    patience: int = Field(3, ge=1, description="consecutive batches over max_unparsed before stopping")
    _model: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()
    _template: Any = PrivateAttr()
    _max_length: int = PrivateAttr()
    _counts: dict[str, int] = PrivateAttr(
        default_factory=lambda: {"parsed": 0, "unparsed": 0, "last": 0, "last_total": 0, "streak": 0})

    @model_validator(mode="after")
    def _load(self) -> LLMJudge:
        if self.max_score <= self.min_score:
            raise ValueError(f"max_score={self.max_score} must be above min_score={self.min_score}")
        self._template = load_template(self.template or DEFAULT_TEMPLATE)
        # Left padding for batched generation; left truncation keeps the end of the prompt, where the
        # template asks for the rating.
        self._model, self._tokenizer = load_model(
            "causal-lm", self.model, self.tokenizer or self.model,
            padding_side="left", truncation_side="left", device=resolve_device(self.device),
        )
        self._max_length = self.max_length or context_length(self._model, self._tokenizer) - self.max_tokens
        if self._max_length < 1:
            raise ValueError(f"max_tokens={self.max_tokens} leaves no room for the prompt in the model's "
                             f"{context_length(self._model, self._tokenizer)}-token context; lower max_tokens")
        return self

    @property
    def value_range(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def unparsed(self) -> int:
        """Answers without a score in range, since the judge was built."""
        return self._counts["unparsed"]

    @property
    def parsed(self) -> int:
        return self._counts["parsed"]

    @property
    def last_info(self) -> dict[str, float]:
        share = self._counts["last"] / self._counts["last_total"] if self._counts["last_total"] else 0.0
        return {"unparsed": float(self._counts["last"]), "unparsed_share": share}

    def _check_unparsed(self, unparsed: int, total: int, answers: list[str]) -> None:
        """Warn past ``warn_unparsed``; stop past ``max_unparsed`` for ``patience`` batches in a row.

        A judge that cannot be parsed silently scores the fallback: the policy then learns nothing (or
        learns to please the parser). Saying so early saves a wasted run.
        """
        share = unparsed / total if total else 0.0
        self._counts["streak"] = self._counts["streak"] + 1 if share > self.max_unparsed else 0
        example = next((a for a in answers if parse_score(a, self.min_score, self.max_score) is None), "")
        if self._counts["streak"] >= self.patience:
            raise ValueError(
                f"llm_judge {self.model!r}: {share:.0%} of the last batch's answers had no score in "
                f"[{self.min_score}, {self.max_score}] for {self.patience} batches in a row (e.g. {example[:80]!r}); "
                "fix the template or the teacher model, or raise max_unparsed/patience")
        if share > self.warn_unparsed:
            logger.warning("llm_judge %r: %d of %d answers had no score in [%d, %d] and got fallback=%s "
                           "(e.g. %r)", self.model, unparsed, total, self.min_score, self.max_score,
                           self.fallback, example[:80])

    def render(self, prompt: str, completion: str) -> str:
        """The teacher's input for one sample."""
        text = self._template.render(context=prompt, continuation=completion,
                                     min_score=self.min_score, max_score=self.max_score)
        if self.chat_template and getattr(self._tokenizer, "chat_template", None):
            text = self._tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                       add_generation_prompt=True)
        return text

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        inputs = [self.render(p, c) for p, c in zip(prompts, completions)]
        answers: list[str] = []
        for start in range(0, len(inputs), self.batch_size):
            answers.extend(self.generate(inputs[start : start + self.batch_size]))
        parsed = [parse_score(answer, self.min_score, self.max_score) for answer in answers]
        unparsed = sum(score is None for score in parsed)
        self._counts["unparsed"] += unparsed
        self._counts["parsed"] += len(parsed) - unparsed
        self._counts["last"], self._counts["last_total"] = unparsed, len(parsed)
        self._check_unparsed(unparsed, len(parsed), answers)
        span = self.max_score - self.min_score
        return [self.fallback if score is None else (score - self.min_score) / span for score in parsed]

    @torch.inference_mode()
    def generate(self, inputs: list[str]) -> list[str]:
        """Greedy answers of the teacher to rendered prompts."""
        from transformers import GenerationConfig

        tokenizer = self._tokenizer
        batch = tokenizer(inputs, padding=True, truncation=True, max_length=self._max_length,
                          return_tensors="pt", add_special_tokens=not self.chat_template or not tokenizer.chat_template)
        batch = {key: value.to(self._model.device) for key, value in batch.items()}
        config = GenerationConfig(do_sample=False, max_new_tokens=self.max_tokens,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        output = self._model.generate(**batch, generation_config=config)  # (B, T + new)
        return tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
