"""The audit benchmark's pandas side: the same computations as the audit views it cross-checks
(``human_agreement``, ``coverage_ledger``, ``disagreements``), vectorised, on DataFrames read from
the store's Parquet files, and the check that both sides computed the same thing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from audit_data import UNLABELLED_FAMILIES, VOTES

from tasks.store.sql import QueryResult
from tasks.store.store import Store

SOURCES = ("human", "ai")


@dataclass(frozen=True)
class Frames:
    human_labels: pd.DataFrame
    prompts: pd.DataFrame


# The columns the three computations read: what DuckDB's scans read too.
LABEL_COLUMNS = ("pair_id", "prompt_id", "annotator", "vote", "confidence", "created_at", "source_row")
PROMPT_COLUMNS = ("prompt_id", "family", "text", "created_at")


def load_frames(store: Store) -> Frames:
    """The store's labels and prompts as DataFrames, only the columns the computations use."""
    if store.count("ai_labels"):
        raise AssertionError("the pandas side assumes no AI labels (the benchmark writes none)")

    def read(table: str, columns: tuple[str, ...]) -> pd.DataFrame:
        files = [str(f) for f in store.files(table)]
        return pd.read_parquet(files, columns=list(columns))

    return Frames(human_labels=read("human_labels", LABEL_COLUMNS), prompts=read("prompts", PROMPT_COLUMNS))


def pd_prompt_families(prompts: pd.DataFrame) -> pd.DataFrame:
    """``prompt_families``: each prompt's earliest non-null family (or '(none)') and earliest text."""
    ordered = prompts.sort_values("created_at", kind="stable")
    text = ordered.drop_duplicates("prompt_id")[["prompt_id", "text"]]
    family = ordered.dropna(subset=["family"]).drop_duplicates("prompt_id")[["prompt_id", "family"]]
    families = text.merge(family, on="prompt_id", how="left")
    families["family"] = families["family"].fillna("(none)")
    return families


def pd_label_votes(frames: Frames) -> pd.DataFrame:
    """``label_votes`` for human labels: the stored orientation-free vote, no texts, no family."""
    return frames.human_labels[list(LABEL_COLUMNS)]


def pd_human_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """``human_votes``: each annotator's latest vote per pair (later time, then later row, wins)."""
    ordered = votes.sort_values(["created_at", "source_row"], kind="stable")
    latest = ordered.drop_duplicates(["pair_id", "annotator"], keep="last")
    return latest[["pair_id", "annotator", "prompt_id", "vote", "confidence"]].reset_index(drop=True)


def _agreement_stats(both: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = {"agree": both["vote_1"] == both["vote_2"]}
    for vote in VOTES:
        columns[f"1_{vote}"] = both["vote_1"] == vote
        columns[f"2_{vote}"] = both["vote_2"] == vote
    flags = pd.DataFrame(columns).astype("float64")
    if keys:
        grouped = flags.groupby([both[k] for k in keys], sort=False)
        stats = grouped.mean().assign(pairs=grouped.size()).reset_index()
    else:
        stats = flags.mean().to_frame().T.assign(pairs=len(flags), annotator_1="(all)", annotator_2="(all)")
    expected = sum(stats[f"1_{vote}"] * stats[f"2_{vote}"] for vote in VOTES)
    denominator = (1 - expected).where(1 - expected != 0)
    return pd.DataFrame(
        {
            "annotator_1": stats["annotator_1"],
            "annotator_2": stats["annotator_2"],
            "pairs": stats["pairs"].astype("int64"),
            "agreement": stats["agree"].round(4),
            "expected_agreement": expected.round(4),
            "cohen_kappa": ((stats["agree"] - expected) / denominator).round(4),
        }
    )


def pd_human_agreement(frames: Frames) -> pd.DataFrame:
    votes = pd_human_votes(pd_label_votes(frames))[["pair_id", "annotator", "vote"]]
    both = votes.merge(votes, on="pair_id", suffixes=("_1", "_2"))
    both = both[both["annotator_1"] < both["annotator_2"]]
    pooled, per_pair = _agreement_stats(both, []), _agreement_stats(both, ["annotator_1", "annotator_2"])
    table = pd.concat([pooled, per_pair], ignore_index=True)
    table["_all"] = table["annotator_1"] == "(all)"
    keys = ["_all", "pairs", "annotator_1", "annotator_2"]
    ordered = table.sort_values(keys, ascending=[False, False, True, True])
    return ordered.drop(columns="_all").reset_index(drop=True)


def pd_coverage_ledger(frames: Frames) -> pd.DataFrame:
    prompt_families = pd_prompt_families(frames.prompts)[["prompt_id", "family"]]
    families = prompt_families.groupby("family").size().rename("prompts").reset_index()
    per_prompt = pd_label_votes(frames).groupby("prompt_id").size().rename("labels").reset_index()
    labelled = (
        per_prompt.merge(prompt_families, on="prompt_id")
        .assign(source="human")
        .groupby(["family", "source"])
        .agg(labelled_prompts=("prompt_id", "size"), labels=("labels", "sum"))
        .reset_index()
    )
    ledger = families.merge(pd.DataFrame({"source": SOURCES}), how="cross").merge(
        labelled, on=["family", "source"], how="left"
    )
    ledger[["labelled_prompts", "labels"]] = ledger[["labelled_prompts", "labels"]].fillna(0).astype("int64")
    ledger["coverage"] = (ledger["labelled_prompts"] / ledger["prompts"]).round(4)
    ordered = ledger.sort_values(["coverage", "family", "source"]).reset_index(drop=True)
    return ordered[["family", "source", "prompts", "labelled_prompts", "labels", "coverage"]]


def pd_disagreements(frames: Frames) -> pd.DataFrame:
    votes = pd_human_votes(pd_label_votes(frames))
    counts = pd.DataFrame({f"votes_{vote}": votes["vote"] == vote for vote in VOTES}).astype("int64")
    grouped = counts.groupby(votes["pair_id"])
    distinct = votes.groupby("pair_id")["vote"].nunique()
    prompt = votes.groupby("pair_id")["prompt_id"].first()
    per_pair = grouped.sum().assign(annotators=grouped.size(), distinct=distinct, prompt_id=prompt)
    split = per_pair[(per_pair["annotators"] >= 2) & (per_pair["distinct"] > 1)].drop(columns="distinct")
    table = split.reset_index()
    families = pd_prompt_families(frames.prompts)[["prompt_id", "family"]]
    table = table.merge(families, on="prompt_id", how="left")
    table["family"] = table["family"].fillna("(none)")
    majority = table[[f"votes_{vote}" for vote in VOTES]].max(axis=1)
    table["majority_share"] = (majority / table["annotators"]).round(4)
    table = table.sort_values(["majority_share", "annotators", "pair_id"], ascending=[True, False, True])
    counted = ["annotators", "votes_first", "votes_second", "votes_tie", "majority_share"]
    return table[["pair_id", "prompt_id", "family", *counted]].reset_index(drop=True)


PANDAS_QUERIES: dict[str, Callable[[Frames], pd.DataFrame]] = {
    "human_agreement": pd_human_agreement,
    "coverage_ledger": pd_coverage_ledger,
    "disagreements": pd_disagreements,
}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(f"DuckDB and pandas disagree: {message}")


def cross_check(duck: dict[str, QueryResult], pandas: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Assert that both sides computed the same thing; returns the figures compared."""
    agreement = duck["human_agreement"].records()
    duck_all = next(r for r in agreement if r["annotator_1"] == "(all)")
    pd_agreement = pandas["human_agreement"]
    pd_all = pd_agreement[pd_agreement["annotator_1"] == "(all)"].iloc[0]
    _require(abs(duck_all["cohen_kappa"] - pd_all["cohen_kappa"]) <= 1e-4, "kappa of the '(all)' row")
    _require(duck_all["pairs"] == pd_all["pairs"], "pairs of the '(all)' row")
    duck_pairs = {(r["annotator_1"], r["annotator_2"]): r["pairs"] for r in agreement}
    pd_rows = pd_agreement[["annotator_1", "annotator_2", "pairs"]].to_numpy()
    pd_pairs = {(a, b): int(n) for a, b, n in pd_rows}
    _require(len(duck_pairs) == len(pd_pairs) == len(agreement), "number of annotator-pair rows")
    _require(duck_pairs == pd_pairs, "pairs per annotator pair")

    coverage = duck["coverage_ledger"].records()
    duck_coverage = {(r["family"], r["source"]): (r["labelled_prompts"], r["coverage"]) for r in coverage}
    pd_ledger = pandas["coverage_ledger"][["family", "source", "labelled_prompts", "coverage"]].to_numpy()
    pd_coverage = {(f, s): (int(n), float(c)) for f, s, n, c in pd_ledger}
    _require(duck_coverage == pd_coverage, "coverage per family and source")
    zero = sorted({f for (f, s), (n, _) in duck_coverage.items() if s == "human" and n == 0})
    _require(len(zero) >= UNLABELLED_FAMILIES, f"families without human labels: {zero}")

    duck_split = [r[0] for r in duck["disagreements"].rows]
    pd_split = pandas["disagreements"]["pair_id"].tolist()
    _require(len(duck_split) == len(pd_split), "number of disagreement pairs")
    _require(set(duck_split) == set(pd_split), "the disagreement pairs")
    return {
        "kappa_all_duckdb": duck_all["cohen_kappa"],
        "kappa_all_pandas": float(pd_all["cohen_kappa"]),
        "agreement_all": duck_all["agreement"],
        "annotator_pairs": len(agreement) - 1,
        "coverage_rows": len(coverage),
        "families_without_human_labels": zero,
        "disagreement_pairs": len(duck_split),
        "disagreement_order_equal": duck_split == pd_split,
    }
