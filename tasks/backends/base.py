"""The backend protocol and what crosses it.

Two operations, which every stage needs: sample N completions for a batch of
conversations, and read the log-probabilities of given candidate next tokens after a
conversation (what the AI judge reads: one forward pass, no generated text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tasks.core.conversation import Message
from tasks.generate.settings import GenerateSettings

BACKENDS = ("vllm", "hf", "openai")


_GENERATE_DEFAULTS = GenerateSettings()


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling parameters; part of every generation's content hash.

    Defaults and ranges are :class:`~tasks.generate.settings.GenerateSettings`' (the generate
    stage's settings), so they are written once; critique, the judge and evaluation pass
    their own values.
    """

    n: int = _GENERATE_DEFAULTS.n
    temperature: float = _GENERATE_DEFAULTS.temperature
    top_p: float = _GENERATE_DEFAULTS.top_p
    max_tokens: int = _GENERATE_DEFAULTS.max_tokens
    seed: int = _GENERATE_DEFAULTS.seed

    def __post_init__(self) -> None:
        GenerateSettings(**asdict(self))  # raises pydantic's ValidationError (a ValueError) out of range

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    num_tokens: int


class Backend(Protocol):
    """A loaded model that can sample and score."""

    name: str
    model_id: str

    def generate(
        self, conversations: Sequence[Sequence[Message]], sampling: SamplingSettings, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        """``sampling.n`` completions per conversation; ``seeds`` holds one seed per conversation."""
        ...

    def next_token_logprobs(
        self,
        conversations: Sequence[Sequence[Message]],
        candidates: Sequence[str],
        assistant_prefix: str | Sequence[str] = "",
    ) -> list[dict[str, float]]:
        """Per conversation, the log-probability of each candidate as the next token of the reply.

        The reply starts with ``assistant_prefix`` (one for all, or one per conversation: a
        chain-of-thought judge continues each conversation's own reasoning); each candidate
        must be a single token there.
        """
        ...

    def close(self) -> None: ...


class PolicyBackend(Backend, Protocol):
    """A backend holding the weights in this process (``vllm``, ``hf``): it can also score whole
    completions, which the scoreboard's KL estimate needs of the tuned model and its base."""

    def sequence_logprobs(
        self, conversations: Sequence[Sequence[Message]], completions: Sequence[str]
    ) -> list[float]:
        """Per conversation, the summed log-probability of its completion (end-of-sequence included)
        as the reply, from the raw logits (no temperature)."""
        ...


def prefixes_for(assistant_prefix: str | Sequence[str], count: int) -> list[str]:
    """One assistant prefix per conversation, from a shared prefix or a per-conversation list."""
    if isinstance(assistant_prefix, str):
        return [assistant_prefix] * count
    if len(assistant_prefix) != count:
        raise ValueError(f"{len(assistant_prefix)} assistant prefixes for {count} conversations")
    return list(assistant_prefix)
