"""Reward-model batching: padding, length-grouped batches, and the proof that a padded, grouped
batch trains exactly as its pairs would one at a time (MiniLM on real hh-rlhf pairs)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest
import torch

from tasks.train.reward_batches import (
    collate_pairs,
    encode_pairs,
    format_text,
    length_grouped_batches,
    pad_sequences,
)
from tasks.train.reward_metrics import PreferenceRecord
from tasks.train.reward_model import (
    bt_loss,
    disable_dropout,
    load_backbone,
    pair_batch_loss,
    train_reward_model,
)
from tasks.train.settings import RewardModelSettings
from tests.train.test_reward_model import hh_records


@pytest.fixture(scope="module")
def minilm() -> tuple[object, object]:
    """The embedded MiniLM with a fresh head (seed 0), dropout off as training runs it."""
    torch.manual_seed(0)
    model, tokenizer = load_backbone(RewardModelSettings())
    disable_dropout(model)
    return model, tokenizer


# --- padding ------------------------------------------------------------------------------


def test_pad_sequences_pads_to_the_longest_on_the_tokenizers_side(minilm: tuple) -> None:
    _, tokenizer = minilm
    pad = tokenizer.pad_token_id  # MiniLM's [PAD] is id 0
    right = pad_sequences([[101, 7, 102], [101, 102]], tokenizer)
    assert right["input_ids"].tolist() == [[101, 7, 102], [101, 102, pad]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    tokenizer.padding_side = "left"
    try:
        left = pad_sequences([[101, 7, 102], [101, 102]], tokenizer)
    finally:
        tokenizer.padding_side = "right"
    assert left["input_ids"].tolist() == [[101, 7, 102], [pad, 101, 102]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]


def test_collated_batch_keeps_each_pairs_target_and_weight_in_place(minilm: tuple) -> None:
    _, tokenizer = minilm
    pairs = [
        PreferenceRecord(
            prompt=[{"role": "user", "content": "word " * n}],
            chosen="yes",
            rejected="no " * n,
            target=t,
            weight=w,
        )
        for n, t, w in [(1, 1.0, 2.0), (9, 0.7, 1.0), (4, 0.5, 0.25)]
    ]
    encoded = encode_pairs(tokenizer, pairs, max_length=16)
    # "[CLS] human : word x n assistant : yes [SEP]" is 7 + n tokens, the rejected "... no x n
    # [SEP]" 6 + 2n: 8 and 8, 16 and 24 (cut to 16), 11 and 14.
    assert [len(p.chosen_ids) for p in encoded] == [8, 16, 11]
    assert [len(p.rejected_ids) for p in encoded] == [8, 16, 14]
    assert [p.length for p in encoded] == [8, 16, 14]
    batch = collate_pairs([encoded[2], encoded[0]], tokenizer)
    assert batch.pairs == 2
    assert batch.targets.tolist() == [0.5, 1.0] and batch.weights.tolist() == [0.25, 2.0]
    # Rows: the chosen texts of pairs 2 and 0, then their rejected; padded to the longest, 14.
    assert batch.inputs["input_ids"].shape == (4, 14)
    assert batch.inputs["attention_mask"].sum(dim=1).tolist() == [11, 8, 14, 8]
    assert batch.inputs["input_ids"][2].tolist() == encoded[2].rejected_ids


# --- length-grouped batches ---------------------------------------------------------------


def test_length_grouped_batches_cover_every_pair_once_and_group_lengths() -> None:
    # 200 pairs of batch 5: megabatches of min(200 // 20, 50) = 10 batches, 4 of them. Half the
    # pairs are short (10 tokens), half long (200), in random order.
    lengths = [10, 200] * 100
    batches = length_grouped_batches(lengths, 5, torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    assert Counter(len(batch) for batch in batches) == {5: 40}
    # Sorted within each megabatch, a batch mixes short and long pairs only where a megabatch's
    # sorted run turns from long to short: at most one batch per megabatch. A plain shuffle mixes
    # nearly all of them (each batch is pure with probability 2 / 2**5).
    mixed = [batch for batch in batches if len({lengths[i] for i in batch}) > 1]
    assert len(mixed) <= 4
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    # All real tokens (100 * 10 + 100 * 200), plus at most 4 short pairs padded by 190 in each mixed batch.
    assert padded <= 21_000 + 4 * 4 * 190
    # The batches' order is shuffled: long and short batches interleave (about 20 changes of kind
    # among 40 batches) rather than run longest first in each megabatch (7 changes).
    kinds = [max(lengths[i] for i in batch) for batch in batches]
    assert sum(a != b for a, b in itertools.pairwise(kinds)) >= 12


def test_length_grouped_batches_vary_with_epoch_and_seed_and_repeat_with_the_seed() -> None:
    lengths = list(range(300, 0, -1))

    def epochs(seed: int) -> list[list[list[int]]]:
        generator = torch.Generator().manual_seed(seed)
        return [length_grouped_batches(lengths, 4, generator) for _ in range(2)]

    first, second = epochs(0)
    assert epochs(0) == [first, second]
    as_sets = [{frozenset(batch) for batch in epoch} for epoch in (first, second, epochs(1)[0])]
    assert as_sets[0] != as_sets[1] and as_sets[0] != as_sets[2]
    # A batch's pairs are neighbours in length within their megabatch (4 * min(300 // 16, 50) = 72
    # pairs here): 4 of 72 random lengths in 1..300 span ~12 on average, 4 of a plain shuffle ~180.
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first]
    assert sum(spreads) / len(spreads) < 40


def test_small_sets_fall_back_to_a_plain_shuffle_of_one_batch_megabatches() -> None:
    # Fewer than 4 batches' worth: megabatches of one batch, so the batches are the consecutive
    # slices of the seeded shuffle, as before length grouping; only their order is shuffled again.
    batches = length_grouped_batches([5, 1, 4, 2, 3, 6, 7], 2, torch.Generator().manual_seed(3))
    shuffle = torch.randperm(7, generator=torch.Generator().manual_seed(3)).split(2)
    assert {frozenset(b) for b in batches} == {frozenset(chunk.tolist()) for chunk in shuffle}


# --- padded, grouped batch = pairs one at a time ------------------------------------------


@pytest.mark.integration
def test_padded_batch_loss_and_gradients_equal_unpadded_pairs_one_at_a_time(
    minilm: tuple, hh_rlhf_sample: Path
) -> None:
    model, tokenizer = minilm
    targets, weights = [1.0, 0.8, 0.5, 0.3, 1.0, 0.9], [1.0, 2.0, 0.5, 1.0, 0.0, 1.5]
    # Six real pairs from short to long (every 8th of the first 48 by length), so most rows pad.
    by_length = sorted(
        hh_records(hh_rlhf_sample)[:48], key=lambda r: len(format_text(r["prompt"], r["chosen"]))
    )
    pairs = [
        PreferenceRecord.model_validate({**record, "target": t, "weight": w})
        for record, t, w in zip(by_length[::8], targets, weights, strict=True)
    ]
    model.train()
    batch = collate_pairs(encode_pairs(tokenizer, pairs, max_length=128), tokenizer)
    mask = batch.inputs["attention_mask"]
    assert mask.sum() < 0.75 * mask.numel(), "the batch must really pad for this test to mean anything"
    model.zero_grad()
    loss, _ = pair_batch_loss(model, batch)
    loss.backward()
    padded_grads = {name: p.grad.clone() for name, p in model.named_parameters()}

    # The reference: each text alone (no padding at all), the pairs' losses weighted by hand.
    def score(text: str) -> torch.Tensor:
        alone = tokenizer(text, truncation=True, max_length=128, return_tensors="pt")
        return model(input_ids=alone["input_ids"]).logits.reshape(1)

    model.zero_grad()
    reference = sum(
        w
        * bt_loss(
            score(format_text(p.prompt, p.chosen)),
            score(format_text(p.prompt, p.rejected)),
            torch.tensor([p.target]),
            torch.ones(1),
        )
        for p, w in zip(pairs, weights, strict=True)
    ) / sum(weights)
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), abs=1e-5)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(padded_grads[name], parameter.grad, atol=1e-5, rtol=0, msg=name)
    model.zero_grad()


def test_held_out_metrics_are_deterministic_for_a_seed(tiny_backbone: str, hh_rlhf_sample: Path) -> None:
    records = hh_records(hh_rlhf_sample)[:60]
    config = RewardModelSettings(backbone=tiny_backbone, batch_size=4, epochs=2, max_length=64)
    first = train_reward_model(records, config)[2]
    again = train_reward_model(records, config)[2]
    assert again.evaluations == first.evaluations
    assert [s["loss"] for s in again.steps] == [s["loss"] for s in first.steps]
    assert first.evaluations[-1]["loss"] != first.evaluations[0]["loss"]  # it did train
    # Another seed draws other batches (and another split and head).
    other = train_reward_model(records, config.model_copy(update={"seed": 1}))[2]
    assert [s["loss"] for s in other.steps] != [s["loss"] for s in first.steps]
