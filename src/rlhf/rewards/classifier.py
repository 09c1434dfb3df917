"""A sequence-classification model as a reward: trained reward models, flirtiness, sentiment, IMDB."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, PrivateAttr, model_validator

from rlhf.rewards.base import REWARDS, UNBOUNDED, BuiltinReward
from rlhf.rewards.hf import context_length, load_model, resolve_device


@REWARDS.register("classifier")
class Classifier(BuiltinReward):
    """Score texts with any ``AutoModelForSequenceClassification`` (hub name or local folder).

    ``output``: ``logit`` of ``label`` (unbounded), its softmax ``probability`` (``[0, 1]``; sigmoid for a
    one-logit model), or ``logit_diff``: the label's logit minus the largest other logit (unbounded).
    ``input``: the completion, or prompt + completion concatenated. The model's own tokenizer (right padding,
    truncation to ``max_length``); batched, eval mode, no gradients. ``append_eos`` appends the tokenizer's
    EOS token to every text as TRL's ``RewardTrainer`` does in training (set it false for classifiers trained
    without it). Models are loaded once per process.

    >>> import tempfile, torch
    >>> from transformers import GPT2Config, GPT2ForSequenceClassification
    >>> from rlhf.models.tokenizer import load_tokenizer
    >>> tokenizer, folder = load_tokenizer("builtin-bpe"), tempfile.mkdtemp()
    >>> _ = torch.manual_seed(0)
    >>> config = GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=len(tokenizer), num_labels=2,
    ...                     pad_token_id=tokenizer.pad_token_id)
    >>> GPT2ForSequenceClassification(config).save_pretrained(folder)
    >>> _ = tokenizer.save_pretrained(folder)
    >>> reward = Classifier(model=folder, label=1, output="probability")
    >>> scores = reward(["Hi!", "Hi!"], ["You have a lovely smile.", ""])
    >>> len(scores), all(0.0 <= s <= 1.0 for s in scores)
    (2, True)
    """

    model: str = Field(description="hub name or local folder of the classifier")
    tokenizer: str | None = Field(None, description="its tokenizer (default: the model's folder/name)")
    label: int | str = Field(0, description="the rewarded label: index, or name from config.id2label")
    output: Literal["logit", "probability", "logit_diff"] = Field("logit", description="what is returned")
    input: Literal["completion", "prompt+completion"] = Field("completion", description="the scored text")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    max_length: int | None = Field(None, ge=1, description="truncate to this many tokens (default: model's)")
    append_eos: bool = Field(True, description="append EOS to every text, as TRL RewardTrainer does")
    device: str | None = Field(None, description="cpu, cuda, cuda:1 ... (default: cuda if available)")
    _model: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()
    _label_index: int = PrivateAttr()
    _max_length: int = PrivateAttr()

    @model_validator(mode="after")
    def _load(self) -> Classifier:
        self._model, self._tokenizer = load_model(
            "sequence-classification", self.model, self.tokenizer or self.model,
            padding_side="right", truncation_side="right", device=resolve_device(self.device),
        )
        num_labels = self._model.config.num_labels
        self._label_index = self._resolve_label(self._model.config.id2label, num_labels)
        if self.output == "logit_diff" and num_labels < 2:
            raise ValueError("option 'output'='logit_diff' needs at least 2 labels; this model has 1 logit: "
                             "use 'logit' or 'probability'")
        self._max_length = self.max_length or context_length(self._model, self._tokenizer)
        return self

    def _resolve_label(self, id2label: dict[int, str], num_labels: int) -> int:
        names = {str(name): int(index) for index, name in id2label.items()}
        label = self.label
        if isinstance(label, str) and label not in names and label.isdigit():
            label = int(label)
        if isinstance(label, str):
            if label not in names:
                raise ValueError(f"option 'label'={label!r} is not a label of this model; its labels: {names}")
            return names[label]
        if not 0 <= label < num_labels:
            raise ValueError(f"option 'label'={label} is out of range: the model has {num_labels} labels "
                             f"{sorted(names, key=names.get)}")
        return label

    @property
    def value_range(self) -> tuple[float, float]:
        return (0.0, 1.0) if self.output == "probability" else UNBOUNDED

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        texts = completions if self.input == "completion" else [p + c for p, c in zip(prompts, completions)]
        if self.append_eos and self._tokenizer.eos_token is not None:  # BERT-style tokenizers add [SEP] instead
            texts = [text + self._tokenizer.eos_token for text in texts]
        scores: list[float | None] = []
        for start in range(0, len(texts), self.batch_size):
            scores.extend(self._score_batch(texts[start : start + self.batch_size]).tolist())
        return scores

    @torch.inference_mode()
    def _score_batch(self, texts: list[str]) -> torch.Tensor:
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=self._max_length,
                                return_tensors="pt")
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]  # (B, T)
        if input_ids.shape[1] == 0:
            input_ids = torch.full((len(texts), 1), self._tokenizer.pad_token_id)
            attention_mask = torch.zeros(len(texts), 1, dtype=torch.long)
        # A text with no tokens is scored as a lone EOS, so its score does not depend on its batch-mates.
        empty = attention_mask.sum(dim=1) == 0  # (B,)
        input_ids[empty, 0] = self._tokenizer.eos_token_id if self._tokenizer.eos_token_id is not None \
            else self._tokenizer.pad_token_id
        attention_mask[empty, 0] = 1
        device = self._model.device
        batch = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
        logits = self._model(**batch).logits.float()  # (B, num_labels)
        label_logit = logits[:, self._label_index]  # (B,)
        if self.output == "logit":
            return label_logit.cpu()
        if self.output == "probability":
            if logits.shape[1] == 1:
                return torch.sigmoid(label_logit).cpu()
            return logits.softmax(dim=-1)[:, self._label_index].cpu()
        others = logits.clone()
        others[:, self._label_index] = -torch.inf
        return (label_logit - others.max(dim=-1).values).cpu()  # (B,)
