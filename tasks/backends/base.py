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

BACKENDS = ("vllm", "hf", "openai")


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling parameters; part of every generation's content hash."""

    n: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_tokens < 1:
            raise ValueError("n and max_tokens must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")

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


def prefixes_for(assistant_prefix: str | Sequence[str], count: int) -> list[str]:
    """One assistant prefix per conversation, from a shared prefix or a per-conversation list."""
    if isinstance(assistant_prefix, str):
        return [assistant_prefix] * count
    if len(assistant_prefix) != count:
        raise ValueError(f"{len(assistant_prefix)} assistant prefixes for {count} conversations")
    return list(assistant_prefix)
