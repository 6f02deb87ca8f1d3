"""The race between candidates (``charter compare``): the win-rate matrix, the standings and the
held-out prompts with worked numbers; then the real command on two tiny checkpoints.

The tiny checkpoints are hand-written lineages over real model folders (the embedded SmolLM2
as the base, its first two and first three decoder layers as the candidates), as the
evaluation tests do, so no training runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.backends.settings import BackendSettings
from tasks.core.errors import CharterError
from tasks.evaluate.compare import ComparisonSettings, compare_checkpoints
from tasks.evaluate.race import (
    Entrant,
    matrix_cell,
    race_entrants,
    race_prompts,
    reward_contests,
    standings,
    win_matrix,
)
from tasks.generate.generation import PromptItem
from tasks.ingest.prompt_sets import prompt_record
from tasks.store.store import Store
from tests.conftest import run_charter
from tests.train.preference_store import CONSTITUTION


def contest(judge: str, family: str, first: str, second: str, p_first: float) -> dict:
    return {"judge": judge, "family": family, "first": first, "second": second, "p_first": p_first}


RM = "reward model"
CONTESTS = [
    # A against B on three prompts: a win, a tie and a loss.
    contest(RM, "booking", "A", "B", 0.9),
    contest(RM, "booking", "A", "B", 0.5),
    contest(RM, "medication", "A", "B", 0.2),
    # A against C: two wins and a loss; the AI judge's p is soft.
    contest(RM, "booking", "A", "C", 1.0),
    contest(RM, "booking", "A", "C", 1.0),
    contest(RM, "medication", "A", "C", 0.0),
    contest("ai judge", "booking", "A", "B", 0.7),
    contest("ai judge", "booking", "A", "B", 0.6),
    contest("ai judge", "medication", "A", "B", 0.45),
]


def test_win_matrix_counts_each_verdict_for_both_orders_and_a_tie_as_half() -> None:
    matrix = win_matrix(CONTESTS)
    assert matrix_cell(matrix, RM, "A", "B") == pytest.approx((1 + 0.5 + 0) / 3)
    assert matrix_cell(matrix, RM, "B", "A") == pytest.approx(0.5)
    assert matrix_cell(matrix, RM, "A", "C") == pytest.approx(2 / 3)
    assert matrix_cell(matrix, RM, "C", "A") == pytest.approx(1 / 3)
    assert matrix_cell(matrix, "ai judge", "A", "B") == pytest.approx(2 / 3)
    assert matrix_cell(matrix, RM, "B", "C") is None  # never compared
    booking = {
        (r["model"], r["opponent"]): (r["prompts"], r["win_rate"])
        for r in matrix
        if r["judge"] == RM and r["family"] == "booking"
    }
    assert booking == {
        ("A", "B"): (2, 0.75),
        ("B", "A"): (2, 0.25),
        ("A", "C"): (2, 1.0),
        ("C", "A"): (2, 0.0),
    }
    # Every pair's two orders add up to one, per judge and family.
    cells = {(r["judge"], r["family"], r["model"], r["opponent"]): r["win_rate"] for r in matrix}
    assert all(rate + cells[(j, f, b, a)] == pytest.approx(1.0) for (j, f, a, b), rate in cells.items())


def test_reward_contests_let_the_higher_score_win() -> None:
    prompts = [PromptItem(f"p{i}", "booking", ()) for i in range(3)]
    found = reward_contests(prompts, "A", "B", {"A": [0.3, 0.1, -1.0], "B": [0.2, 0.1, 2.0]})
    assert [c["p_first"] for c in found] == [1.0, 0.5, 0.0]
    assert {(c["judge"], c["first"], c["second"]) for c in found} == {(RM, "A", "B")}


def policy(kind: str, base: str = "/models/base", **extra) -> dict:
    return {
        "kind": kind,
        "run_id": f"run-{kind}",
        "base_model": "smol",
        "base_model_path": base,
        "model_path": f"/models/{kind}",
    } | extra


def test_race_entrants_name_candidates_by_folder_and_share_a_base(tmp_path: Path) -> None:
    field = race_entrants(
        [
            (str(tmp_path / "a" / "policy"), policy("dpo")),
            (str(tmp_path / "b" / "policy"), policy("ppo")),
            (str(tmp_path / "grpo-1"), policy("grpo", base="/models/sft")),
        ]
    )
    assert [(e.name, e.role, e.base) for e in field] == [
        ("policy", "candidate", "base smol"),
        ("policy#2", "candidate", "base smol"),
        ("grpo-1", "candidate", "base smol#2"),
        ("base smol", "base", None),
        ("base smol#2", "base", None),
    ]
    assert [e.model_path for e in field[3:]] == ["/models/base", "/models/sft"]
    with pytest.raises(CharterError, match="is a 'reward' checkpoint, not a policy"):
        race_entrants([("rm", {"kind": "reward"})])
    with pytest.raises(CharterError, match="is given twice"):
        race_entrants([(str(tmp_path / "x"), policy("dpo")), (str(tmp_path / "x"), policy("dpo"))])


def test_standings_average_the_field_and_read_the_base_cell() -> None:
    field = [
        Entrant("A", "candidate", "/a", "dpo:A", "a", base="C", lineage=policy("dpo")),
        Entrant("B", "candidate", "/b", "ppo:B", "b", base="C", lineage=policy("ppo")),
        Entrant("C", "base", "/c", "smol"),
    ]
    families = [
        {"model": "A", "family": "(all)", "responses": 3, "reward": 0.4, "kl_to_reference": 0.25}
        | {"rule_pass_rate": 0.5, "escalation_rate": None, "refusal_rate": 0.0, "words": 12.0},
        {"model": "A", "family": "booking", "responses": 2, "reward": 9.0, "kl_to_reference": 9.0},
        {"model": "C", "family": "(all)", "responses": 3, "reward": 0.1, "kl_to_reference": 0.0},
    ]
    accuracy = {"A": {"implicit_reward_accuracy": 0.75, "logprob_margin_accuracy": 0.5}}
    rows = {row["model"]: row for row in standings(field, families, win_matrix(CONTESTS), accuracy)}
    a = rows["A"]
    assert (a["reward"], a["kl_to_base"], a["prompts"], a["kind"]) == (0.4, 0.25, 3, "dpo")
    assert a["field_win_rate_rm"] == pytest.approx((0.5 + 2 / 3) / 2)  # over B and over C
    assert a["base_win_rate_rm"] == pytest.approx(2 / 3)
    assert a["field_win_rate_judge"] == pytest.approx(2 / 3) and a["base_win_rate_judge"] is None
    assert (a["implicit_reward_accuracy"], a["logprob_margin_accuracy"]) == (0.75, 0.5)
    assert rows["C"]["kl_to_base"] is None and rows["C"]["base_win_rate_rm"] is None  # a base has no base
    assert rows["C"]["field_win_rate_rm"] == pytest.approx(1 / 3)
    assert rows["B"]["field_win_rate_rm"] == pytest.approx(0.5) and rows["B"]["reward"] is None


def test_race_prompts_leave_out_every_candidates_training_prompts(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "store")
    families = ["booking", "booking", "booking", "medication", "billing"]
    records = [
        prompt_record([{"role": "user", "content": f"question {i}"}], "held", family, source_id=f"q{i}")
        for i, family in enumerate(families)
    ]
    store.append("prompts", [r.row() for r in records], "setup")
    ids = [r.prompt_id for r in records]
    # A trained on the first booking prompt, B on the medication one: neither is held out.
    trained = {"A": {ids[0]}, "B": {ids[3], "elsewhere"}}
    chosen = race_prompts(store, "held", trained, per_family=1)
    assert [p.prompt_id for p in chosen] == [ids[1], ids[4]]
    assert [p.prompt_id for p in race_prompts(store, "held", trained, per_family=5)] == [
        ids[1],
        ids[2],
        ids[4],
    ]
    with pytest.raises(CharterError, match="none of the 2 candidates trained on"):
        race_prompts(store, "held", {"A": set(ids[:3]), "B": set(ids[3:])}, per_family=1)


# --- The command on two tiny checkpoints --------------------------------------------------------


@pytest.fixture(scope="module")
def three_layer_model(embedded_model, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A second candidate unlike the first (SmolLM2's first 3 of 30 layers)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("three-layers") / "model"
    model = AutoModelForCausalLM.from_pretrained(
        embedded_model.path, num_hidden_layers=3, dtype=torch.float32
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(embedded_model.path).save_pretrained(folder)
    return str(folder)


@pytest.mark.integration
def test_compare_races_two_tiny_checkpoints_and_prints_the_table(
    rules_only_ppo, three_layer_model: str, embedded_model, tmp_path: Path
) -> None:
    from tasks.generate.generation import select_prompts
    from tasks.train.lineage import write_lineage

    store, ppo, _, families = rules_only_ppo
    medication = sorted(p.prompt_id for p in select_prompts(store, "rules") if p.family == "medication")
    grpo = tmp_path / "grpo"
    write_lineage(
        grpo,
        {
            "kind": "grpo",
            "run_id": "run-grpo",
            "preference_set": None,
            "prompt_set": "rules",
            "rollout_prompt_ids": medication,
            "base_model": embedded_model.model_id,
            "base_model_path": embedded_model.path,
            "model_path": three_layer_model,
        },
    )
    args = [
        "compare", str(ppo), str(grpo), "--constitution", str(CONSTITUTION), "--prompts", "rules",
        "--per-family", "1", "--max-tokens", "6", "--judge-backend", "hf", "--store", str(store.root),
    ]  # fmt: skip
    done = run_charter(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Race on 1 held-out prompts" in done.stdout and "#3 base" in done.stdout
    [saved] = list((store.root / "compare").glob("*/compare.json"))
    race = json.loads(saved.read_text(encoding="utf-8"))
    # Held out from both: neither the PPO's urgent rollouts nor the GRPO's medication ones.
    assert [families[p] for p in race["prompt_ids"]] == ["insurance-billing"]
    names = [e["name"] for e in race["entrants"]]
    assert names == ["ppo", "grpo", f"base {embedded_model.model_id}"]
    # The judge (the base, loaded once) compared every pair of entrants on every prompt, both ways.
    judged = [r for r in race["win_matrix"] if r["judge"] == "ai judge" and r["family"] == "(all)"]
    assert len(judged) == 6 and all(r["prompts"] == race["prompts"] for r in judged)
    assert race["judge"]["backend"] == "hf" and race["reward_model"] is None
    rows = {row["model"]: row for row in race["standings"]}
    assert rows["ppo"]["kl_to_base"] != 0.0 and rows["grpo"]["kl_to_base"] != 0.0  # 2 and 3 layers vs 30
    assert rows["ppo"]["kl_to_base"] != rows["grpo"]["kl_to_base"]
    assert [lineage["kind"] for lineage in race["lineage"]] == ["ppo", "grpo"]
    # Asked again (as the command asked: the judge's backend resolved), it is read back, not run.
    settings = ComparisonSettings(
        checkpoints=(str(ppo), str(grpo)), constitution_path=str(CONSTITUTION), prompt_set="rules",
        per_family=1, max_tokens=6, judge_model=BackendSettings(kind="hf"),
    )  # fmt: skip
    again = compare_checkpoints(store, settings)
    assert again["reused"] is True and again["path"] == str(saved) and again["standings"] == race["standings"]
