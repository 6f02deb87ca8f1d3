"""Preference sets in the store: merging the stored labels into one, and reading one back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow.compute as pc

from tasks.core.errors import CharterError
from tasks.generate.generation import select_prompts, stored_prompts
from tasks.merge.evidence import latest_rm_spreads
from tasks.merge.policy import MergeResult, MergeSettings, merge_preferences
from tasks.store.store import Store


def merge_store(
    store: Store,
    policy: MergeSettings,
    prompt_set: str | None = None,
    families: Sequence[str] | None = None,
) -> MergeResult:
    """Merge every stored human and AI label (of one prompt set's conversations, if given), with
    the reward model's spreads from ``reward_scores`` where the policy bounds them."""
    human = store.read("human_labels").to_pylist()
    ai = store.read("ai_labels").to_pylist()
    if prompt_set is not None or families:
        if prompt_set is None:
            raise CharterError("--family needs --prompts (the prompt set whose families to keep)")
        wanted = {item.prompt_id for item in select_prompts(store, prompt_set, families=families)}
        human = [row for row in human if row["prompt_id"] in wanted]
        ai = [row for row in ai if row["prompt_id"] in wanted]
    if not human and not ai:
        raise CharterError("no labels to merge: run `charter label` or import human labels first")
    return merge_preferences(human, ai, stored_prompts(store), policy, _rm_spreads(store, policy))


def _rm_spreads(store: Store, policy: MergeSettings) -> dict[str, float] | None:
    """The pairs' reward-model spreads, read only under ``max_rm_uncertainty``; a bound with no
    score to apply it to is a mistake worth stopping for, not a set with nothing filtered."""
    if policy.max_rm_uncertainty is None:
        return None
    columns = ["score_id", "pair_id", "p_first_std", "created_at"]
    spreads = latest_rm_spreads(store.read("reward_scores", columns).to_pylist())
    if not spreads:
        raise CharterError(
            "the merge policy sets max_rm_uncertainty, but reward_scores is empty: `charter train reward` "
            "scores the labelled pairs after training; train one first, or drop the key"
        )
    return spreads


def read_set(store: Store, set_id: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """A stored preference set's rows (in pair order); the latest set when ``set_id`` is None.

    A unique prefix of a set id is enough, as with git commits.
    """
    sets = store.read("preference_sets", ["set_id", "created_at"]).to_pylist()
    if not sets:
        raise CharterError("no preference sets in the store: run `charter merge` first")
    if set_id is None:
        chosen = max(sets, key=lambda s: s["created_at"])["set_id"]
    else:
        matches = sorted({s["set_id"] for s in sets if s["set_id"].startswith(set_id)})
        if len(matches) != 1:
            found = "no set" if not matches else f"{len(matches)} sets"
            raise CharterError(f"{found} with id starting {set_id!r}; `charter sql` lists preference_sets")
        chosen = matches[0]
    table = store.read("preferences")
    rows = table.filter(pc.equal(table["set_id"], chosen)).to_pylist()
    rows.sort(key=lambda r: r["pair_id"])
    return chosen, rows
