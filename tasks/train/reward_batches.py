"""Turning preference pairs into the padded batches a reward model trains and scores on.

Texts are tokenized once, before any epoch, and each batch is padded only to its own longest
sequence. Training batches group pairs of similar length (Hugging Face's ``group_by_length``
scheme, which TRL's ``RewardTrainer`` inherits from ``Trainer``): on 128 hh-rlhf pairs at 256
tokens, batches of a plain shuffle are about 2x the real tokens, length-grouped ones 1.5x.
Padding is masked out of attention, so it changes the cost and not the scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tasks.core.conversation import Message, hh_transcript
from tasks.train.reward_metrics import PreferenceRecord

MAX_MEGABATCH_BATCHES = 50
"""Hugging Face's ``get_length_grouped_indices`` cap: sort within at most 50 batches' worth."""


def format_text(messages: Sequence[Message], response: str) -> str:
    """The conversation as "Human: ...\\n\\nAssistant: ..." turns with the response as the last turn."""
    return f"{hh_transcript(messages).lstrip()} {response}"


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Each text's token ids, truncated to ``max_length`` on the tokenizer's truncation side, unpadded.

    One call over all texts: the fast tokenizers encode a list in parallel, in Rust.
    """
    if not texts:
        return []
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def pad_sequences(sequences: Sequence[Sequence[int]], tokenizer: Any) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of the sequences padded to the longest of them, with the
    tokenizer's pad token on its padding side (left for causal LMs that pad left)."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        start = width - len(ids) if tokenizer.padding_side == "left" else 0
        input_ids[row, start : start + len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, start : start + len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@dataclass(frozen=True)
class EncodedPair:
    """A training pair as token ids, with its soft target and weight."""

    chosen_ids: list[int]
    rejected_ids: list[int]
    target: float
    weight: float

    @property
    def length(self) -> int:
        """What the pair costs in a batch: chosen and rejected pad to the same width."""
        return max(len(self.chosen_ids), len(self.rejected_ids))


def encode_pairs(tokenizer: Any, pairs: Sequence[PreferenceRecord], max_length: int) -> list[EncodedPair]:
    """Every pair's chosen and rejected text (:func:`format_text`) tokenized in one call."""
    chosen = [format_text(p.prompt, p.chosen) for p in pairs]
    rejected = [format_text(p.prompt, p.rejected) for p in pairs]
    ids = encode_texts(tokenizer, chosen + rejected, max_length)
    return [
        EncodedPair(ids[index], ids[len(pairs) + index], pair.target, pair.weight)
        for index, pair in enumerate(pairs)
    ]


@dataclass(frozen=True)
class PairBatch:
    """One forward pass's inputs: the chosen texts' rows first, then the rejected texts' in the
    same order, so scores[:pairs] - scores[pairs:] are the pairs' margins."""

    inputs: dict[str, torch.Tensor]
    targets: torch.Tensor
    weights: torch.Tensor

    @property
    def pairs(self) -> int:
        return len(self.targets)

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(
            {name: tensor.to(device) for name, tensor in self.inputs.items()},
            self.targets.to(device),
            self.weights.to(device),
        )


def collate_pairs(pairs: Sequence[EncodedPair], tokenizer: Any) -> PairBatch:
    """The pairs as one batch, padded to its longest sequence (TRL's ``DataCollatorForPreference``
    layout, plus each pair's target and weight)."""
    sequences = [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs]
    return PairBatch(
        pad_sequences(sequences, tokenizer),
        torch.tensor([p.target for p in pairs], dtype=torch.float32),
        torch.tensor([p.weight for p in pairs], dtype=torch.float32),
    )


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """One epoch's batches of indices into ``lengths``, each index once, grouped by length.

    Hugging Face's ``get_length_grouped_indices``: a seeded shuffle, cut into megabatches of
    ``min(len // (4 * batch_size), 50)`` batches (at least one), each sorted longest first and
    cut into batches. The megabatches keep about four per epoch on small sets, so which pairs
    share a batch still changes with the epoch and the seed; a full sort would fix them. The
    batches' order is then shuffled too (Hugging Face leaves each megabatch's longest-first,
    which finds out-of-memory early on a GPU but makes the loop see length in step order).
    """
    count = len(lengths)
    megabatch = batch_size * max(1, min(count // (4 * batch_size), MAX_MEGABATCH_BATCHES))
    shuffled = torch.randperm(count, generator=generator).tolist()
    batches = []
    for start in range(0, count, megabatch):
        # sorted() is stable: equally long pairs keep the shuffle's order.
        members = sorted(shuffled[start : start + megabatch], key=lambda index: lengths[index], reverse=True)
        batches.extend(members[offset : offset + batch_size] for offset in range(0, len(members), batch_size))
    return [batches[index] for index in torch.randperm(len(batches), generator=generator).tolist()]
