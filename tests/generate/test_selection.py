"""Prompt selection (``select: all | unseen | sample | hardest``) on a hand-built store, with the
orders worked out by hand, and the resume of a run that did not complete."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from flows.cli import app
from tasks.backends.base import SamplingSettings
from tasks.core.errors import CharterError, InputError
from tasks.generate.generation import PromptItem, generation_id, select_prompts
from tasks.generate.selection import (
    Difficulty,
    GenerationIdentity,
    SelectionSettings,
    candidate_prompts,
    difficulties,
    hardest_first,
    resolve_selection,
    seeded_sample,
)
from tasks.ingest.prompt_sets import load_prompt_set
from tasks.orchestration.pipeline_config import load_pipeline_config
from tasks.store.runs import recorded_run
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT

IDENTITY = GenerationIdentity("m", "hf", SamplingSettings(n=2, max_tokens=8))
NIGHT = date(2026, 12, 1)
# Two families; the set order is round-robin across them, each in source-id order.
SOURCES = {"b1": "booking", "b2": "booking", "b3": "booking", "u1": "urgent", "u2": "urgent", "u3": "urgent"}
SET_ORDER = ["b1", "u1", "b2", "u2", "b3", "u3"]


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.jsonl"
    lines = [
        json.dumps({"id": s, "family": f, "text": f"Question {s}?"}) for s, f in reversed(SOURCES.items())
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny(store: Store, prompt_file: Path) -> Store:
    store.append("prompts", [record.row() for record in load_prompt_set(prompt_file)], "setup")
    return store


@pytest.fixture
def ids(prompt_file: Path) -> dict[str, str]:
    """source id -> prompt id."""
    return {record.source_id: record.prompt_id for record in load_prompt_set(prompt_file)}


def generated(store: Store, prompt: str, identity: GenerationIdentity = IDENTITY, samples: int = 2) -> None:
    store.append(
        "generations",
        [
            {
                "generation_id": generation_id(
                    prompt, identity.model_id, identity.backend, identity.sampling, i
                ),
                "prompt_id": prompt,
                "model": identity.model_id,
                "backend": identity.backend,
                "params": json.dumps(identity.sampling.as_dict()),
                "sample_index": i,
                "text": f"answer {i}",
                "finish_reason": "length",
                "num_tokens": 8,
            }
            for i in range(samples)
        ],
        "setup",
    )


def resolve(store: Store, select: str = "unseen", limit: int | None = None, **kwargs) -> list[str]:
    return list(_resolve(store, SelectionSettings(select=select, **kwargs), limit).prompt_ids)


def _resolve(store: Store, settings: SelectionSettings, limit: int | None, flow: str = "generate"):
    return resolve_selection(
        store, "tiny", settings, IDENTITY, families=None, limit=limit, flow=flow, scope={}, today=NIGHT
    )


def names(ids: dict[str, str], prompt_ids: list[str]) -> list[str]:
    by_id = {prompt: source for source, prompt in ids.items()}
    return [by_id[prompt] for prompt in prompt_ids]


# --- all and unseen ---------------------------------------------------------------------------


def test_all_is_the_set_order_as_before(tiny: Store, ids: dict[str, str]) -> None:
    assert names(ids, resolve(tiny, "all", limit=4)) == ["b1", "u1", "b2", "u2"]
    assert [i.prompt_id for i in select_prompts(tiny, "tiny", limit=4)] == resolve(tiny, "all", limit=4)


def test_unseen_skips_prompts_whose_every_sample_is_stored_for_this_model_and_sampling(
    tiny: Store, ids: dict[str, str]
) -> None:
    generated(tiny, ids["b1"])  # both samples: seen
    generated(tiny, ids["u1"], samples=1)  # one of two: not done, a rerun would generate it
    generated(tiny, ids["b2"], GenerationIdentity("m2", "hf", IDENTITY.sampling))  # another model
    other_sampling = GenerationIdentity("m", "hf", SamplingSettings(n=2, max_tokens=9))
    generated(tiny, ids["u2"], other_sampling)  # other sampling settings: other ids
    assert names(ids, resolve(tiny, limit=3)) == ["u1", "b2", "u2"]
    assert names(ids, resolve(tiny)) == ["u1", "b2", "u2", "b3", "u3"]
    summary = _resolve(tiny, SelectionSettings(select="unseen"), 3).summary
    assert summary == (
        "select unseen: 3 of 6 prompts, the first of 5 not yet generated for model m (hf) "
        "with these sampling settings"
    )


def test_an_exhausted_set_selects_nothing_and_says_so(tiny: Store, ids: dict[str, str]) -> None:
    for prompt in ids.values():
        generated(tiny, prompt)
    selection = _resolve(tiny, SelectionSettings(select="unseen"), 2)
    assert selection.exhausted and selection.prompt_ids == ()
    assert selection.summary == (
        "prompt set tiny is exhausted: all 6 prompts are generated for model m (hf) "
        "with these sampling settings; nothing to do"
    )


def test_the_file_and_the_stored_set_give_the_same_candidates(
    tiny: Store, prompt_file: Path, store: Store
) -> None:
    from_store = candidate_prompts(tiny, "tiny", ["urgent"])
    from_file = candidate_prompts(Store.create(store.root.parent / "empty"), str(prompt_file), ["urgent"])
    assert from_store == from_file
    assert [item.family for item in from_file[1]] == ["urgent"] * 3


def test_select_prompts_keeps_the_order_of_a_resolved_selection(tiny: Store, ids: dict[str, str]) -> None:
    picked = select_prompts(tiny, "tiny", prompt_ids=[ids["u3"], ids["b1"], "not-in-the-set", ids["u1"]])
    assert names(ids, [i.prompt_id for i in picked]) == ["u3", "b1", "u1"]
    booking = select_prompts(tiny, "tiny", families=["booking"], prompt_ids=[ids["u3"], ids["b1"]])
    assert names(ids, [i.prompt_id for i in booking]) == ["b1"]


# --- sample -----------------------------------------------------------------------------------


def test_sample_depends_on_its_seed_only(tiny: Store, ids: dict[str, str]) -> None:
    first = resolve(tiny, "sample", limit=3, seed=7)
    assert names(ids, first) == ["u3", "b1", "u2"]  # pinned: a change would reshuffle running nights
    for prompt in first:
        generated(tiny, prompt)  # what the store holds does not change the sample
    assert resolve(tiny, "sample", limit=3, seed=7) == first
    draws = {tuple(resolve(tiny, "sample", limit=3, seed=seed)) for seed in range(12)}
    assert len(draws) > 6  # 20 possible sets of 3 of 6: the seeds draw different ones


def test_sample_order_is_stable_when_the_set_grows() -> None:
    items = [PromptItem(f"p{i}", None, ()) for i in range(20)]
    grown = [*items, *(PromptItem(f"new{i}", None, ()) for i in range(5))]
    old_order = [i.prompt_id for i in seeded_sample(items, 3)]
    assert [i.prompt_id for i in seeded_sample(grown, 3) if i.prompt_id.startswith("p")] == old_order


def test_date_seed_is_the_run_date_in_utc_and_is_recorded(tiny: Store) -> None:
    selection = _resolve(tiny, SelectionSettings(select="sample"), 2)
    assert selection.seed == 20261201
    assert selection.record()["seed"] == 20261201
    assert list(selection.prompt_ids) == resolve(tiny, "sample", limit=2, seed=20261201)
    assert selection.summary == "select sample: 2 of 6 prompts, a sample drawn with seed 20261201"
    assert _resolve(tiny, SelectionSettings(select="unseen"), 2).seed is None


# --- hardest ----------------------------------------------------------------------------------


def label(prompt: str, method: str, p_a: float, loser: str = "r1", rule: str | None = None, n: int = 0):
    """An ai_labels row on responses r1 and r2; a rule label prefers the one that is not ``loser``."""
    winner = "r2" if loser == "r1" else "r1"
    preferred = winner if method == "rule" else ("r1" if p_a > 0.5 else "r2")
    return {
        "label_id": f"{prompt}-{method}-{rule}-{loser}-{p_a}-{n}",
        "pair_id": f"pair-{prompt}",
        "prompt_id": prompt,
        "response_a_id": "r1",
        "response_b_id": "r2",
        "response_a": "one",
        "response_b": "two",
        "choice": "a" if preferred == "r1" else "b",
        "preferred_id": preferred,
        "vote": "first" if preferred == "r1" else "second",
        "judge_model": "rules" if method == "rule" else "m",
        "method": method,
        "p_a": p_a,
        "rule_id": rule,
    }


@pytest.fixture
def labelled(tiny: Store, ids: dict[str, str]) -> Store:
    rows = [
        label(ids["b2"], "rule", 0.0, loser="r1", rule="no-dose"),
        label(ids["b2"], "rule", 1.0, loser="r2", rule="no-diagnosis"),
        label(ids["b2"], "rule", 0.0, loser="r1", rule="no-dose", n=1),  # another constitution: same break
        label(ids["u2"], "rule", 0.0, loser="r1", rule="no-dose"),
        label(ids["u2"], "logprob", 0.52),
        label(ids["u3"], "rule", 1.0, loser="r2", rule="urgent-first"),
        label(ids["u3"], "logprob", 0.9),
        label(ids["b1"], "logprob", 0.45),
        label(ids["b1"], "logprob", 0.8),
        label(ids["u1"], "logprob", 0.3),
        label(ids["b3"], "cot", 0.5),  # clamped by design: no evidence of certainty
    ]
    tiny.append("ai_labels", rows, "setup")
    return tiny


def test_difficulty_counts_distinct_rule_breaks_and_the_smallest_logprob_margin(
    labelled: Store, ids: dict[str, str]
) -> None:
    found = difficulties(labelled.read("ai_labels").to_pylist())
    by_name = {source: found.get(prompt) for source, prompt in ids.items()}
    assert by_name["b2"] == Difficulty(rule_breaks=2, judge_margin=None)
    assert by_name["u2"].rule_breaks == 1 and by_name["u2"].judge_margin == pytest.approx(0.02)
    assert by_name["u3"].rule_breaks == 1 and by_name["u3"].judge_margin == pytest.approx(0.4)
    assert by_name["b1"].rule_breaks == 0 and by_name["b1"].judge_margin == pytest.approx(0.05)
    assert by_name["u1"].judge_margin == pytest.approx(0.2)
    assert by_name["b3"] is None


def test_hardest_takes_rule_breaks_then_the_least_sure_judge_then_the_rest(
    labelled: Store, ids: dict[str, str]
) -> None:
    assert names(ids, resolve(labelled, "hardest")) == ["b2", "u2", "u3", "b1", "u1", "b3"]
    assert names(ids, resolve(labelled, "hardest", limit=4)) == ["b2", "u2", "u3", "b1"]
    summary = _resolve(labelled, SelectionSettings(select="hardest"), 4).summary
    assert summary.endswith("hardest first (5 with rule or judge evidence, then the rest in set order)")


def test_hardest_without_evidence_is_the_set_order() -> None:
    items = [PromptItem(name, None, ()) for name in SET_ORDER]
    evidence = {"b3": Difficulty(judge_margin=0.3)}
    assert [i.prompt_id for i in hardest_first(items, evidence)] == ["b3", "b1", "u1", "b2", "u2", "u3"]


# --- a run that did not complete is resumed ---------------------------------------------------


def test_an_unfinished_run_is_resumed_with_its_prompts_then_the_next_run_moves_on(
    tiny: Store, ids: dict[str, str]
) -> None:
    night_1 = _resolve(tiny, SelectionSettings(select="unseen"), 2)
    assert names(ids, list(night_1.prompt_ids)) == ["b1", "u1"]
    with pytest.raises(RuntimeError), recorded_run(tiny, "generate", {"selection": night_1.record()}, "n1"):
        generated(tiny, ids["b1"])  # its first batch landed, then it died
        raise RuntimeError("killed")
    again = _resolve(tiny, SelectionSettings(select="unseen"), 2)
    assert again.prompt_ids == night_1.prompt_ids and again.resumed_from == "n1"
    assert again.summary == "select unseen: resuming the 2 prompts of run n1, which did not complete"
    # Another request (limit 3, or another flow) does not take over that run's prompts.
    assert names(ids, list(_resolve(tiny, SelectionSettings(select="unseen"), 3).prompt_ids)) == [
        "u1",
        "b2",
        "u2",
    ]
    assert _resolve(tiny, SelectionSettings(select="unseen"), 2, flow="pipeline").resumed_from is None
    with recorded_run(tiny, "generate", {"selection": again.record()}, "n2"):
        generated(tiny, ids["u1"])
    night_3 = _resolve(tiny, SelectionSettings(select="unseen"), 2)
    assert names(ids, list(night_3.prompt_ids)) == ["b2", "u2"] and night_3.resumed_from is None


# --- settings and their errors ----------------------------------------------------------------


def test_seed_is_a_number_or_date_with_one_plain_error() -> None:
    assert SelectionSettings(seed="7").seed == 7  # from the command line
    assert SelectionSettings(seed=-3).seed_for(NIGHT) == -3
    assert SelectionSettings().seed_for(date(2027, 1, 9)) == 20270109
    for wrong in ("lots", True, 1.5, ["a"]):
        with pytest.raises(ValidationError) as raised:
            SelectionSettings(seed=wrong)
        [error] = raised.value.errors()
        assert "must be a whole number or date (the run's date in UTC)" in error["msg"]


def test_pipeline_config_refuses_a_seed_that_no_selection_reads(tmp_path: Path, prompt_file: Path) -> None:
    config = tmp_path / "nightly.yaml"
    constitution = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
    config.write_text(
        f"constitution: {constitution}\nprompts:\n  file: {prompt_file}\n  select: unseen\n  seed: 3\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as raised:
        load_pipeline_config(config)
    assert str(raised.value) == (
        f"{config}:2 [prompts]: seed is read only by select: sample, not select: unseen"
    )
    config.write_text(
        f"constitution: {constitution}\nprompts:\n  file: {prompt_file}\n  select: sample\n  seed: 3\n",
        encoding="utf-8",
    )
    prompts = load_pipeline_config(config).prompts
    assert prompts.selection() == SelectionSettings(select="sample", seed=3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--select", "newest"], "unknown --select 'newest'; choose from all, unseen, sample or hardest"),
        (
            ["--select", "sample", "--sample-seed", "tomorrow"],
            "--sample-seed: must be a whole number or date",
        ),
    ],
)
def test_generate_refuses_a_bad_selection_before_any_work(
    options: list[str], message: str, prompt_file: Path, tmp_path: Path
) -> None:
    store = tmp_path / "never-made"
    result = CliRunner().invoke(
        app,
        ["generate", "--prompts", str(prompt_file), "--store", str(store), *options],
        env={"COLUMNS": "200"},
    )
    assert isinstance(result.exception, CharterError)  # what `charter` prints as one line, exit 1
    assert message in str(result.exception)
    assert not store.exists()
