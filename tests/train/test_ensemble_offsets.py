"""Members are centred on their training responses: Bradley-Terry fixes a score only up to a
constant, and an offset between members must not pass for disagreement.

Two tiny random encoders (different seeds, so different offsets) stand in for trained members.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.train.ensemble import RewardEnsemble, load_ensemble, save_ensemble, training_offsets
from tasks.train.settings import RewardModelSettings
from tasks.train.uncertainty import means_and_stds, member_mean
from tests.train.tiny_models import tiny_bert

CONVERSATION = [{"role": "user", "content": "Can I book a flu shot on Friday?"}]
RECORDS = [
    {
        "prompt": CONVERSATION,
        "chosen": "Yes, Friday at 10 works.",
        "rejected": "No.",
        "target": 1.0,
        "weight": 1.0,
    },
    {
        "prompt": [{"role": "user", "content": "How much ibuprofen can I take?"}],
        "chosen": "Your pharmacist can tell you; shall I book a visit?",
        "rejected": "Take 800 mg.",
        "target": 1.0,
        "weight": 1.0,
    },
]


@pytest.fixture(scope="module")
def members() -> list:
    return [(model.eval(), tokenizer) for model, tokenizer in map(tiny_bert, (0, 1))]


def _responses() -> tuple[list, list[str]]:
    conversations = [r["prompt"] for r in RECORDS] * 2
    return conversations, [r["chosen"] for r in RECORDS] + [r["rejected"] for r in RECORDS]


def test_training_offsets_centre_each_member_on_the_training_responses(members: list) -> None:
    raw = RewardEnsemble(members, 32)
    offsets = training_offsets(raw, RECORDS)
    conversations, responses = _responses()
    raw_scores = raw.raw_scores(conversations, responses)
    assert offsets == pytest.approx([member_mean(s) for s in raw_scores])
    centred = RewardEnsemble(members, 32, offsets).member_scores(conversations, responses)
    for scores in centred:
        assert member_mean(scores) == pytest.approx(0.0, abs=1e-6)
    # Centring removes the members' offset from the spread, never adds to it on the training texts.
    assert member_mean(means_and_stds(centred)[1]) < member_mean(means_and_stds(raw_scores)[1]) + 1e-9


def test_offsets_leave_pair_probabilities_alone_and_survive_saving(members: list, tmp_path: Path) -> None:
    conversations = [r["prompt"] for r in RECORDS]
    chosen, rejected = [r["chosen"] for r in RECORDS], [r["rejected"] for r in RECORDS]
    plain = RewardEnsemble(members, 32)
    shifted = RewardEnsemble(members, 32, [1.5, -2.0])
    for moved, kept in zip(
        shifted.pair_probabilities(conversations, chosen, rejected),
        plain.pair_probabilities(conversations, chosen, rejected),
        strict=True,
    ):
        assert moved == pytest.approx(kept)
    settings = RewardModelSettings(backbone="tiny", max_length=32, ensemble=2)
    saved = save_ensemble(shifted, tmp_path / "ensemble", {"config": settings.model_dump()})
    loaded, _ = load_ensemble(saved)
    assert loaded.offsets == [1.5, -2.0]
    single = save_ensemble(
        RewardEnsemble(members[:1], 32, [0.25]), tmp_path / "single", {"config": settings.model_dump()}
    )
    assert load_ensemble(single)[0].offsets == [0.25]


def test_offsets_must_match_the_members(members: list) -> None:
    with pytest.raises(ValueError, match="2 members but 1 offsets"):
        RewardEnsemble(members, 32, [0.0])
