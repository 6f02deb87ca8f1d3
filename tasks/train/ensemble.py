"""Reward-model ensembles: K Bradley-Terry members that know when they are guessing.

Member k trains with seed ``seed + k`` on its own bootstrap resample of the training pairs
(drawn with replacement, as many as there are pairs), so the members agree where the data
pins the answer down and drift apart where it does not. All members share one held-out split,
so the ensemble's held-out figures and each member's are measured on the same pairs. Each
member is centred on the training responses (:class:`RewardEnsemble`). An ensemble of one is
the plain reward model, trained on every pair, saved in the plain layout.

On disk an ensemble is one folder: ``charter-reward.json`` (the settings and the member
folders' names) and one saved reward model per member (``member-0``, ``member-1``, ...).
:func:`load_ensemble` reads both layouts, so every caller (PPO, the scoreboard,
``charter score``) takes a single model or an ensemble alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.conversation import Message
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id
from tasks.train.reward_metrics import PreferenceRecord, decisive, pair_metrics
from tasks.train.reward_model import (
    METADATA_FILE,
    TrainingHistory,
    load_reward_model,
    replace_reward_folder,
    save_reward_model,
    score_texts,
    split_records,
    train_reward_model,
    write_metadata,
)
from tasks.train.settings import RewardModelSettings
from tasks.train.uncertainty import (
    Aggregation,
    aggregate,
    bootstrap_sample,
    means_and_stds,
    member_mean,
    pair_probabilities,
    uncertainty_bins,
)


def member_settings(config: RewardModelSettings, member: int) -> RewardModelSettings:
    """Member ``member``'s own settings: the ensemble's, with its seed and as a single model."""
    return config.model_copy(update={"seed": config.seed + member, "ensemble": 1})


def member_sample(records: Sequence[Mapping[str, Any]], config: RewardModelSettings, member: int) -> list:
    """Member ``member``'s bootstrap resample of ``records`` (all of them for an ensemble of one)."""
    if config.ensemble == 1:
        return list(records)
    seed = int(content_id("bootstrap", {"seed": config.seed, "member": member})[:15], 16)
    return [records[i] for i in bootstrap_sample(len(records), seed)]


@dataclass
class RewardEnsemble:
    """Loaded members (model, tokenizer), scoring texts cut to ``max_length`` tokens.

    Bradley-Terry fixes a reward model's scores only up to a constant: two members that agree on
    every preference can still differ by an offset, which the spread, ``min`` and ``uwo`` would
    read as disagreement. Each member's score is therefore centred: ``offsets[k]`` is member k's
    mean score over the training pairs' responses, subtracted from everything it scores (0 for
    checkpoints saved without one). Differences, and so every P(chosen better), are unchanged.
    """

    members: list[tuple[Any, Any]]
    max_length: int
    offsets: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.offsets = list(self.offsets) or [0.0] * len(self.members)
        if len(self.offsets) != len(self.members):
            raise ValueError(f"{len(self.members)} members but {len(self.offsets)} offsets")

    def raw_scores(
        self, conversations: Sequence[Sequence[Message]], responses: Sequence[str], batch_size: int = 16
    ) -> list[list[float]]:
        """Each member's own, uncentred scores (``raw[k][i]``)."""
        return [
            score_texts(model, tokenizer, conversations, responses, self.max_length, batch_size)
            for model, tokenizer in self.members
        ]

    def member_scores(
        self, conversations: Sequence[Sequence[Message]], responses: Sequence[str], batch_size: int = 16
    ) -> list[list[float]]:
        """``scores[k][i]``: member k's centred reward for response i after conversation i."""
        raw = self.raw_scores(conversations, responses, batch_size)
        return [
            [score - offset for score in scores] for scores, offset in zip(raw, self.offsets, strict=True)
        ]

    def pair_probabilities(
        self,
        conversations: Sequence[Sequence[Message]],
        chosen: Sequence[str],
        rejected: Sequence[str],
        batch_size: int = 16,
    ) -> tuple[list[float], list[float]]:
        """Per pair: the members' mean P(chosen better) and its spread (0 for one member)."""
        scores = self.member_scores([*conversations, *conversations], [*chosen, *rejected], batch_size)
        count = len(chosen)
        return pair_probabilities([s[:count] for s in scores], [s[count:] for s in scores])

    def scorer(self, how: Aggregation = "mean", penalty: float = 1.0, batch_size: int = 16) -> EnsembleScorer:
        """A reward function over the aggregate of the members' scores (``tasks.train.uncertainty``)."""
        return EnsembleScorer(self, how, penalty, batch_size)


@dataclass
class EnsembleScorer:
    """The reward function PPO (and any other optimiser) gets from an ensemble: one aggregate per
    response. It keeps the last batch's figures, so a training log can record what the reward
    model said beside what was optimised: ``rm/mean`` and ``rm/std`` (the batch's average of the
    members' mean and spread per response) and ``rm/aggregate`` (the batch's average reward)."""

    ensemble: RewardEnsemble
    how: Aggregation = "mean"
    penalty: float = 1.0
    batch_size: int = 16
    last: dict[str, float] = field(default_factory=dict)

    def __call__(self, conversations: Sequence[Sequence[Message]], responses: Sequence[str]) -> list[float]:
        members = self.ensemble.member_scores(conversations, responses, self.batch_size)
        rewards = aggregate(members, self.how, self.penalty)
        means, stds = means_and_stds(members)
        self.last = {
            "rm/mean": member_mean(means),
            "rm/std": member_mean(stds),
            "rm/aggregate": member_mean(rewards),
        }
        return rewards

    def figures(self) -> dict[str, float]:
        """The last batch's figures (empty before the first call)."""
        return dict(self.last)


def reward_step_metrics(entry: Mapping[str, Any], members: int) -> dict[str, float]:
    """A training step's figures as the tracker logs them: TRL's ``RewardTrainer`` names (``loss``,
    ``accuracy``, ``margin``, ...); an ensemble's members, whose steps each count from 1, under
    their folder names (``member-1/loss``)."""
    figures = {key: value for key, value in entry.items() if key not in ("step", "member")}
    if members == 1:
        return figures
    return {f"{member_names(members)[entry['member']]}/{key}": value for key, value in figures.items()}


def member_names(count: int) -> list[str]:
    """Each member's folder inside an ensemble's: the folder itself (``.``) for a single model."""
    return ["."] if count == 1 else [f"member-{index}" for index in range(count)]


@dataclass
class TrainedEnsemble:
    """What :func:`train_ensemble` made: the members, their histories and the shared held-out pairs."""

    ensemble: RewardEnsemble
    histories: list[TrainingHistory]
    held_out: list[Mapping[str, Any]]
    train_pairs: int
    """Training pairs before resampling (the held-out ones left out)."""
    sample_sizes: list[int]
    """Distinct training pairs in each member's resample."""
    seeds: list[int]


def train_ensemble(
    records: Sequence[Mapping[str, Any]],
    config: RewardModelSettings,
    eval_records: Sequence[Mapping[str, Any]] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> TrainedEnsemble:
    """Train ``config.ensemble`` members (see the module docstring); ``on_step`` entries carry a
    ``member`` key."""
    if eval_records is None:
        records, eval_records = split_records(records, config.eval_fraction, config.seed)
    members, histories, sizes = [], [], []
    for member in range(config.ensemble):
        sample = member_sample(records, config, member)
        report = None if on_step is None else (lambda entry, k=member: on_step({**entry, "member": k}))
        settings = member_settings(config, member)
        model, tokenizer, history = train_reward_model(sample, settings, eval_records, report)
        members.append((model, tokenizer))
        histories.append(history)
        sizes.append(len({id(record) for record in sample}))
    uncentred = RewardEnsemble(members, config.max_length)
    return TrainedEnsemble(
        RewardEnsemble(members, config.max_length, training_offsets(uncentred, records)),
        histories,
        list(eval_records),
        train_pairs=len(records),
        sample_sizes=sizes,
        seeds=[member_settings(config, k).seed for k in range(config.ensemble)],
    )


def training_offsets(ensemble: RewardEnsemble, records: Sequence[Mapping[str, Any]]) -> list[float]:
    """Each member's mean raw score over every training pair's two responses (the same texts for
    every member, whatever its resample), the offset that centres it."""
    pairs = [PreferenceRecord.model_validate(record) for record in records]
    conversations = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    return [member_mean(scores) for scores in ensemble.raw_scores(conversations, responses, batch_size=32)]


def ensemble_metrics(
    ensemble: RewardEnsemble, records: Sequence[Mapping[str, Any]], batch_size: int = 32
) -> dict[str, Any]:
    """Held-out figures of the ensemble's mean P(chosen better) (:func:`pair_metrics`; the loss is
    the weighted cross-entropy of that mean against the targets), plus ``mean_uncertainty`` and
    ``uncertainty_bins``: decisive pairs in quintiles of the members' spread, with accuracy per bin."""
    pairs = [PreferenceRecord.model_validate(record) for record in records]
    if not pairs:
        raise CharterError("no preference records to evaluate")
    p, spread = ensemble.pair_probabilities(
        [r.prompt for r in pairs], [r.chosen for r in pairs], [r.rejected for r in pairs], batch_size
    )
    total = sum(r.weight for r in pairs)
    losses = []
    for record, value in zip(pairs, p, strict=True):
        q = min(max(value, 1e-12), 1 - 1e-12)
        losses.append(-record.weight * (record.target * math.log(q) + (1 - record.target) * math.log(1 - q)))
    loss = sum(losses) / total if total > 0 else float("nan")
    kept = decisive(pairs)
    return {
        **pair_metrics(pairs, p, loss),
        "mean_uncertainty": sum(spread) / len(spread),
        "uncertainty_bins": uncertainty_bins(
            [spread[i] for i in kept], [(p[i] > 0.5) == (pairs[i].target > 0.5) for i in kept]
        ),
    }


def save_ensemble(ensemble: RewardEnsemble, path: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Save one member in the plain reward-model layout, several as member folders beside one
    ``charter-reward.json`` (``metadata`` plus ``members``); written aside and renamed into place."""
    if len(ensemble.members) == 1:
        model, tokenizer = ensemble.members[0]
        return save_reward_model(model, tokenizer, path, {**metadata, "offsets": ensemble.offsets})
    names = member_names(len(ensemble.members))

    def write(folder: Path) -> None:
        for index, (name, (model, tokenizer)) in enumerate(zip(names, ensemble.members, strict=True)):
            (folder / name).mkdir()
            model.save_pretrained(folder / name)
            tokenizer.save_pretrained(folder / name)
            write_metadata(folder / name, {**metadata, "member": index})
        write_metadata(folder, {**metadata, "members": names, "offsets": ensemble.offsets})

    return replace_reward_folder(path, write)


def load_ensemble(path: str | Path) -> tuple[RewardEnsemble, dict[str, Any]]:
    """(the members in eval mode, the folder's metadata) of a single reward model or an ensemble."""
    path = Path(path)
    if not (path / METADATA_FILE).is_file():
        raise CharterError(f"{path} holds no charter reward model (no {METADATA_FILE})")
    metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    names = metadata.get("members")
    if names is None:
        model, tokenizer, _ = load_reward_model(path)
        members = [(model, tokenizer)]
    else:
        members = [load_reward_model(path / name)[:2] for name in names]
    offsets = metadata.get("offsets") or []
    return RewardEnsemble(members, metadata["config"]["max_length"], offsets), metadata


def load_scorer(
    path: str | Path, how: Aggregation = "mean", penalty: float = 1.0, batch_size: int = 16
) -> EnsembleScorer:
    """The reward model or ensemble saved at ``path`` as one reward function (``how`` aggregates
    an ensemble's members; a single model's score is its own mean, min and uwo)."""
    return load_ensemble(path)[0].scorer(how, penalty, batch_size)
