"""A reward checkpoint's verdict on every labelled pair in the store: the ``reward_scores`` rows.

After a reward model (or ensemble) is trained, every stored pair that has a label, human or
AI, is scored: P(first response better), averaged over the members, with its spread, and each
response's mean reward. The merge can then drop or down-weight pairs the reward model is
unsure of, and the review bench can queue them (``rm-uncertain``). A pair's responses are in
id order (``first_id`` sorts before ``second_id``), as votes name them, so a verdict does not
depend on the order a label showed them in.

A row's id hashes (checkpoint, pair), so scoring again after more labels arrive scores only
the new pairs, and a rerun adds nothing. Pure logic: no Prefect.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.conversation import Message
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id
from tasks.generate.generation import stored_prompts
from tasks.store.store import Store
from tasks.train.ensemble import RewardEnsemble, load_ensemble
from tasks.train.lineage import read_lineage
from tasks.train.uncertainty import means_and_stds, pair_probabilities

LABEL_TABLES = ("human_labels", "ai_labels")
_LABEL_COLUMNS = ["pair_id", "prompt_id", "response_a_id", "response_b_id", "response_a", "response_b"]


@dataclass(frozen=True)
class LabelledPair:
    """A labelled pair with its responses in id order, and the conversation they answer."""

    pair_id: str
    prompt_id: str
    first_id: str
    second_id: str
    first: str
    second: str
    conversation: tuple[Message, ...]


def labelled_pairs(store: Store) -> list[LabelledPair]:
    """Every pair some human or AI label names, once, in pair-id order."""
    labels: dict[str, dict[str, Any]] = {}
    for table in LABEL_TABLES:
        for label in store.read(table, _LABEL_COLUMNS).to_pylist():
            labels.setdefault(label["pair_id"], label)
    if not labels:
        return []
    prompts = stored_prompts(store)
    pairs = []
    for pair_id in sorted(labels):
        label = labels[pair_id]
        prompt = prompts.get(label["prompt_id"])
        if prompt is None:
            raise CharterError(f"label pair {pair_id} names prompt {label['prompt_id']}, which is not stored")
        a, b = (label["response_a_id"], label["response_a"]), (label["response_b_id"], label["response_b"])
        (first_id, first), (second_id, second) = sorted([a, b])
        conversation = tuple(json.loads(prompt["messages"]))
        pairs.append(
            LabelledPair(pair_id, label["prompt_id"], first_id, second_id, first, second, conversation)
        )
    return pairs


def score_id(checkpoint: str, pair_id: str) -> str:
    return content_id("reward_score", {"checkpoint": checkpoint, "pair_id": pair_id})


def score_rows(
    ensemble: RewardEnsemble,
    pairs: Sequence[LabelledPair],
    checkpoint: str,
    checkpoint_run_id: str,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """``reward_scores`` rows of ``pairs`` (without ``run_id`` and ``created_at``): one scoring pass
    of every member over both responses of every pair."""
    if not pairs:
        return []
    conversations = [p.conversation for p in pairs]
    members = ensemble.member_scores(
        [*conversations, *conversations], [p.first for p in pairs] + [p.second for p in pairs], batch_size
    )
    count = len(pairs)
    firsts, seconds = [m[:count] for m in members], [m[count:] for m in members]
    p_first, spread = pair_probabilities(firsts, seconds)
    score_first, score_second = means_and_stds(firsts)[0], means_and_stds(seconds)[0]
    return [
        {
            "score_id": score_id(checkpoint, pair.pair_id),
            "pair_id": pair.pair_id,
            "prompt_id": pair.prompt_id,
            "first_id": pair.first_id,
            "second_id": pair.second_id,
            "checkpoint": checkpoint,
            "checkpoint_run_id": checkpoint_run_id,
            "members": len(members),
            "p_first": p_first[i],
            "p_first_std": spread[i],
            "score_first": score_first[i],
            "score_second": score_second[i],
        }
        for i, pair in enumerate(pairs)
    ]


def new_score_rows(store: Store, checkpoint: str | Path, batch_size: int = 16) -> list[dict[str, Any]]:
    """The rows the reward checkpoint at ``checkpoint`` has not yet stored: its verdicts on the
    labelled pairs it has not scored (the checkpoint is named by its folder's name)."""
    path = Path(checkpoint)
    lineage = read_lineage(path)
    if lineage["kind"] != "reward":
        raise CharterError(f"{path} holds a {lineage['kind']} checkpoint, not a reward model")
    stored = set(store.read("reward_scores", ["score_id"]).column("score_id").to_pylist())
    pairs = [p for p in labelled_pairs(store) if score_id(path.name, p.pair_id) not in stored]
    if not pairs:
        return []
    ensemble, _ = load_ensemble(path)
    return score_rows(ensemble, pairs, path.name, lineage["run_id"], batch_size)
