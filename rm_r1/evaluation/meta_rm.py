"""A meta reward model for meta-RM guided voting (DeepSeek-GRM): a second scorer rates each sampled judgement, and
voting keeps only the best-rated half (``rm_r1.evaluation.scaling.meta_guided_keep``).

Two kinds of meta scorer, both behind ``MetaScorer.score``:

* ``GenerativeMeta``: any judge backend asked whether a judgement is sound (``build_meta_messages``); it ends with
  ``Soundness: \\boxed{s}``, s an integer 1-10 read by ``rm_r1.judge.pointwise.parse_scores``;
* ``ClassifierMeta``: a ``transformers`` sequence-classification model reading the same messages; the score is its
  single logit, or with several labels the probability of the last label ("sound").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.generation import GenerationBackend, GenerationRequest, Sampling, chat_prompt_ids
from rm_r1.judge.instructions import META_INSTRUCTIONS
from rm_r1.judge.pointwise import parse_scores


def build_meta_messages(judge_messages: Sequence[dict[str, str]], judgement: str) -> list[dict[str, str]]:
    """Messages asking the meta scorer to rate ``judgement``, the judge's answer to ``judge_messages``."""
    task = "\n\n".join(m["content"] for m in judge_messages)
    user = (
        f"[The judge's task]\n{task}\n[End of the judge's task]\n\n[The judgement]\n{judgement}\n[End of the judgement]"
    )
    return [{"role": "system", "content": META_INSTRUCTIONS}, {"role": "user", "content": user}]


def parse_meta_score(response: str) -> float | None:
    """The 1-10 rating in the last ``\\boxed{}`` of a generative meta scorer's response, or None."""
    scores = parse_scores(response, 1)
    return None if scores is None else float(scores[0])


@dataclass(frozen=True)
class MetaRating:
    """The meta score of ``requests[index]`` (None: no parsable rating), the generated text (generative scorers),
    and the error of a failed request (``permanent``: refused as such, retrying is pointless)."""

    index: int
    score: float | None
    response: str | None = None
    error: str | None = None
    permanent: bool = False


class MetaScorer(Protocol):
    def score(self, requests: Sequence[GenerationRequest]) -> Iterator[MetaRating]: ...


class GenerativeMeta:
    """A judge backend as meta scorer, decoding with ``sampling`` (greedy by default)."""

    def __init__(self, backend: GenerationBackend, sampling: Sampling | None = None):
        self.backend, self.sampling = backend, sampling or Sampling()

    def score(self, requests: Sequence[GenerationRequest]) -> Iterator[MetaRating]:
        for c in self.backend.generate(requests, self.sampling):
            if c.text is None:
                yield MetaRating(c.index, None, None, c.error, c.permanent)
            else:
                yield MetaRating(c.index, parse_meta_score(c.text), c.text)


class ClassifierMeta:
    """``AutoModelForSequenceClassification`` over the chat-template text of the meta messages, in batches."""

    def __init__(self, model_path: str, batch_size: int = 4, device: str | None = None, dtype: str = "auto"):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(model_path, dtype=dtype)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size

    def score(self, requests: Sequence[GenerationRequest]) -> Iterator[MetaRating]:
        import torch

        pad = self.tokenizer.pad_token_id
        for start in range(0, len(requests), self.batch_size):
            batch = [chat_prompt_ids(self.tokenizer, r.messages) for r in requests[start : start + self.batch_size]]
            width = max(map(len, batch))  # right padding: the model reads the last non-pad token of each row
            input_ids = torch.tensor([p + [pad] * (width - len(p)) for p in batch], device=self.device)
            mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in batch], device=self.device)
            with torch.no_grad():
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits.float()
            values = logits[:, 0] if logits.shape[1] == 1 else logits.softmax(-1)[:, -1]
            for offset, value in enumerate(values.tolist()):
                yield MetaRating(start + offset, float(value))
