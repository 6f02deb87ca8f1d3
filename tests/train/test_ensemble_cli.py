"""A reward-model ensemble through the real CLI: ``train reward --ensemble 3``, ``lineage``, ``score``,
and the verdicts the train flow stores on every labelled pair (``reward_scores``).

Twenty bundled human labels are imported and merged; three MiniLM members train on them (64
tokens, one epoch: seconds each). Every figure the commands print or store is recomputed from
the saved checkpoint.
"""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path

import pytest

from tasks.store.store import Store
from tasks.train.checkpoints import train_reward_checkpoint
from tasks.train.ensemble import load_ensemble
from tasks.train.pair_scores import labelled_pairs, new_score_rows, score_id
from tasks.train.settings import RewardModelSettings
from tasks.train.uncertainty import means_and_stds
from tests.conftest import PROJECT_ROOT, run_charter

pytestmark = pytest.mark.integration

LABELS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "human-labels.jsonl"
FAST = ["--max-length", "64", "--epochs", "1"]
PROMPT = "Can I book a physical for Friday morning?"
RESPONSES = ["Yes: Friday at 9:10am with Dr. Okafor. Shall I book it?", "I can't help with that.", "Friday."]


def _ok(*args: str) -> str:
    result = run_charter(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ensemble")
    labels = root / "labels.jsonl"
    labels.write_text("".join(LABELS.read_text(encoding="utf-8").splitlines(keepends=True)[:20]))
    store = root / "store"
    _ok("import-labels", str(labels), "--store", str(store))
    _ok("merge", "--store", str(store))
    checkpoint = root / "rm"
    args = ("train", "reward", "--ensemble", "3", *FAST, "--store", str(store), "-o", str(checkpoint))
    return {"store": Store(store), "checkpoint": checkpoint, "args": args, "stdout": _ok(*args)}


def test_lineage_lists_every_member(trained: dict) -> None:
    checkpoint = trained["checkpoint"]
    assert "3 members (held-out accuracy" in trained["stdout"]
    record = json.loads(_ok("lineage", str(checkpoint)))
    metrics = record["metrics"]
    members = metrics["members"]
    assert [m["name"] for m in members] == ["member-0", "member-1", "member-2"]
    assert [m["seed"] for m in members] == [0, 1, 2]
    for member in members:
        assert (checkpoint / member["name"] / "charter-reward.json").is_file()
        # A bootstrap resample of n pairs holds about 63% of them, never more than n.
        assert 0 < member["distinct_pairs"] <= metrics["train_pairs"]
        assert 0.0 <= member["accuracy"] <= 1.0
    assert len({m["distinct_pairs"] for m in members} | {metrics["train_pairs"]}) > 1
    assert metrics["after"]["mean_uncertainty"] > 0


def _tables(text: str) -> list[list[list[str]]]:
    """The body rows of each table Rich printed, as lists of cell texts."""
    return [
        [
            [cell.strip() for cell in line.strip("│").split("│")]
            for line in part.splitlines()
            if line.startswith("│")
        ]
        for part in text.split("┏")[1:]
    ]


def test_score_prints_each_response_mean_and_spread_and_each_pair(trained: dict) -> None:
    stdout = _ok("score", "--reward-model", str(trained["checkpoint"]), "--prompt", PROMPT, *RESPONSES)
    ensemble = load_ensemble(trained["checkpoint"])[0]
    conversation = [{"role": "user", "content": PROMPT}]
    members = ensemble.member_scores([conversation] * 3, RESPONSES)
    means, stds = means_and_stds(members)
    responses, pair_rows = _tables(stdout)
    printed = {int(row[0]): (float(row[1]), float(row[2])) for row in responses}
    assert printed == {i + 1: (round(means[i], 4), round(stds[i], 4)) for i in range(3)}
    assert [int(row[0]) for row in responses] == sorted(range(1, 4), key=lambda i: -means[i - 1])
    assert all(s > 0 for s in stds)
    pairs = {(int(r[0]), int(r[1])): (float(r[2]), float(r[3])) for r in pair_rows}
    for i, j in combinations(range(3), 2):
        p, spread = ensemble.pair_probabilities([conversation], [RESPONSES[i]], [RESPONSES[j]])
        assert pairs[(i + 1, j + 1)] == (round(p[0], 4), round(spread[0], 4))


def test_verdicts_on_every_labelled_pair_match_a_recomputation_and_a_rerun_adds_nothing(
    trained: dict,
) -> None:
    store, checkpoint = trained["store"], trained["checkpoint"]
    rows = store.read("reward_scores").to_pylist()
    pairs = {p.pair_id: p for p in labelled_pairs(store)}
    # 20 labels, two of them by two annotators on one pair: 19 pairs.
    assert len(pairs) == len(set(store.read("human_labels", ["pair_id"]).column("pair_id").to_pylist())) == 19
    assert f"{len(pairs)} new pair verdicts in reward_scores" in trained["stdout"]
    assert sorted(r["pair_id"] for r in rows) == sorted(pairs)
    run_id = json.loads((checkpoint / "charter-lineage.json").read_text())["run_id"]
    ensemble = load_ensemble(checkpoint)[0]
    ordered = [pairs[r["pair_id"]] for r in rows]
    conversations = [p.conversation for p in ordered]
    p_first, spread = ensemble.pair_probabilities(
        conversations, [p.first for p in ordered], [p.second for p in ordered]
    )
    first_means = means_and_stds(ensemble.member_scores(conversations, [p.first for p in ordered]))[0]
    for row, pair, p, s, score in zip(rows, ordered, p_first, spread, first_means, strict=True):
        assert row["score_id"] == score_id("rm", pair.pair_id)
        assert (row["checkpoint"], row["checkpoint_run_id"], row["members"]) == ("rm", run_id, 3)
        assert row["first_id"] < row["second_id"]
        assert (row["first_id"], row["second_id"]) == (pair.first_id, pair.second_id)
        assert row["p_first"] == pytest.approx(p, abs=1e-5)
        assert row["p_first_std"] == pytest.approx(s, abs=1e-5)
        assert row["score_first"] == pytest.approx(score, abs=1e-4)

    again = _ok(*trained["args"])
    assert "(already trained)" in again and "0 new pair verdicts in reward_scores" in again
    assert store.count("reward_scores") == len(rows)


def test_a_single_model_scores_with_no_spread(trained: dict, tmp_path: Path) -> None:
    store = trained["store"]
    config = RewardModelSettings(max_length=64, eval_fraction=0.25)
    single = train_reward_checkpoint(store, "run-single", None, config, str(tmp_path / "one"))
    assert [m["name"] for m in single["metrics"]["members"]] == ["."]
    rows = new_score_rows(store, single["path"])
    assert len(rows) == 19 and {(r["members"], r["p_first_std"]) for r in rows} == {(1, 0.0)}
    stdout = _ok("score", "--reward-model", single["path"], "--prompt", PROMPT, *RESPONSES[:2])
    assert stdout.count("single model") == 3  # two responses and their one pair
    assert re.search(r"│ 1\s+│ 2\s+│ 0\.\d{4}", stdout)
