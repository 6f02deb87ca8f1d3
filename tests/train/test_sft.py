"""SL-CAI: SFT on a critique run's revisions, and DPO starting from (and referenced to) the SFT model.

The unit tests choose the critique run, refuse what cannot be trained, and turn a checkpoint
given as ``model`` into what to load and what the lineage says, without loading a model. The
integration test makes a store the pipeline's way (ingest, generate, critique, label and merge
flows) with SmolLM2 cut to two layers, then runs SFT and DPO from the SFT checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError
from tasks.critique.settings import CritiqueSettings
from tasks.store.runs import recorded_run
from tasks.store.store import Store
from tasks.train.lineage import LINEAGE_FILE, lineage_record, policy_start, write_lineage
from tasks.train.settings import DPOSettings, SFTSettings
from tasks.train.sft import critique_run, sft_set, train_sft_checkpoint
from tests.conftest import PROJECT_ROOT, run_charter
from tests.rule_cases import store_with_rule_cases

CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
PROMPTS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"


def fake_model_folder(path: Path) -> Path:
    """A folder ``resolve_model`` accepts (a config.json), for code that only names a model."""
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    return path


def record_critique_run(store: Store, model: Path, status: str = "completed", **changes) -> str:
    """A critique run's events with the parameters the critique flow records (no chains written)."""
    parameters = {
        "constitution": str(CONSTITUTION),
        "backend": {"kind": "hf", "model": str(model), "base_url": None, "options": {}},
        "prompt_set": "rules",
        "families": None,
        "limit": None,
        "prompt_ids": None,
        **CritiqueSettings().model_dump(),
        **changes,
    }
    try:
        with recorded_run(store, "critique", parameters) as run:
            run.constitution_ids.add(load_constitution(CONSTITUTION).constitution_id)
            if status == "failed":
                raise RuntimeError("the critic crashed")
    except RuntimeError:
        pass
    return run.run_id


def test_the_latest_completed_critique_run_is_chosen_unless_one_is_named(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "store")
    with pytest.raises(CharterError, match="no completed critique run in the store"):
        critique_run(store)
    model = fake_model_folder(tmp_path / "model")
    first = record_critique_run(store, model, seed=1)
    second = record_critique_run(store, model, seed=2)
    failed = record_critique_run(store, model, status="failed", seed=3)
    with recorded_run(store, "generate", {}):  # another flow's run is never a critique run
        pass

    chosen, parameters = critique_run(store)
    assert chosen == second and parameters["seed"] == 2  # the failed run is later, but not completed
    assert parameters["constitution_ids"] == [load_constitution(CONSTITUTION).constitution_id]
    assert critique_run(store, failed[:8])[0] == failed  # named: whatever its status
    assert critique_run(store, first)[1]["seed"] == 1
    with pytest.raises(CharterError, match="no critique run with id starting 'zzz'"):
        critique_run(store, "zzz")
    with pytest.raises(CharterError, match="3 critique runs with id starting ''"):
        critique_run(store, "")


def test_a_critique_run_with_no_complete_chain_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    store = store_with_rule_cases(tmp_path / "store")
    model = fake_model_folder(tmp_path / "model")
    run_id = record_critique_run(store, model)
    with pytest.raises(
        CharterError, match=rf"critique run {run_id[:12]} has no SFT records: of its 8 chains, 0 are"
    ):
        sft_set(store)
    with pytest.raises(CharterError, match="has no SFT records"):
        train_sft_checkpoint(store, "run", None, "nobody/no-such-model", SFTSettings(), None)


def test_a_constitution_gone_or_edited_since_the_critique_run_is_refused(tmp_path: Path) -> None:
    store = store_with_rule_cases(tmp_path / "store")
    model = fake_model_folder(tmp_path / "model")
    gone = record_critique_run(store, model, constitution=str(tmp_path / "moved.yaml"))
    with pytest.raises(CharterError, match=r"read constitution .*moved.yaml, which is no longer there"):
        sft_set(store, gone)
    edited = tmp_path / "edited.yaml"
    text = CONSTITUTION.read_text(encoding="utf-8")
    edited.write_text(text.replace("critique: >\n", "critique: >\n      Be strict.\n", 1), encoding="utf-8")
    changed = record_critique_run(store, model, constitution=str(edited))  # records the original's id
    with pytest.raises(CharterError, match=rf"edited.yaml has changed since critique run {changed[:12]}"):
        sft_set(store, changed)


def fake_checkpoint(path: Path, kind: str, identity: dict, with_model: bool = True) -> Path:
    if with_model:
        fake_model_folder(path / "model")
    else:
        path.mkdir(parents=True)
    record = lineage_record(
        kind=kind,
        run_id=f"run-{kind}",
        base_model="base@1",
        set_id=None,
        rows=[],
        settings={},
        identity=identity,
    )
    write_lineage(path, record)
    return path


def test_a_checkpoint_given_as_model_starts_from_its_merged_model_and_is_named(tmp_path: Path) -> None:
    sft = fake_checkpoint(tmp_path / "sft-a", "sft", {"critique_run": "a"})
    loaded, start = policy_start(str(sft))
    assert loaded.path == str((sft / "model").resolve())
    assert start == {
        "start_checkpoint": str(sft.resolve()),
        "start_checkpoint_kind": "sft",
        "start_checkpoint_run_id": "run-sft",
        "start_checkpoint_base_model": "base@1",
    }
    assert policy_start(str(sft / "model")) == (loaded, start)  # its model/ folder means the same
    other = fake_checkpoint(tmp_path / "sft-b", "sft", {"critique_run": "b"})
    # Equal configs and weight sizes, different training: the ids (in DPO's identity) differ.
    assert policy_start(str(other))[0].model_id != loaded.model_id
    assert loaded.model_id.startswith("sft-checkpoint@")

    plain = fake_model_folder(tmp_path / "plain")
    assert policy_start(str(plain)) == (policy_start(str(plain))[0], {})
    assert policy_start(str(plain))[0].model_id.startswith("plain@")
    reward = fake_checkpoint(tmp_path / "reward", "reward", {}, with_model=False)
    with pytest.raises(CharterError, match="is a reward checkpoint with no model/ folder"):
        policy_start(str(reward))
    assert (reward / LINEAGE_FILE).is_file()


# -- integration: a pipeline-made store, SFT, then DPO from the SFT checkpoint -------------------


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: tiny matrices on a shared 2-core machine (see test_ppo.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def two_layer_model(embedded_model, folder: Path) -> str:
    """SmolLM2 cut to its first 2 decoder layers, saved as a model folder every backend and trainer
    loads by path (the trick of test_ppo.py, which loads with ``num_hidden_layers=2``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        embedded_model.path, num_hidden_layers=2, dtype=torch.float32
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(embedded_model.path).save_pretrained(folder)
    return str(folder)


def pipeline_store(root: Path, model: str) -> str:
    """What the pipeline's ingest, generate, critique, label and merge stages make of 3 prompts."""
    from flows.critique import critique
    from flows.generate import generate
    from flows.ingest import ingest
    from flows.label import label
    from flows.merge import merge
    from tasks.backends.settings import BackendSettings
    from tasks.generate.settings import GenerateSettings
    from tasks.label.pairs import PairSettings
    from tasks.merge.policy import MergeSettings

    store, backend = str(root), BackendSettings(kind="hf", model=model)
    selection = {"prompts": "healthcare-scheduling", "limit": 3}
    ingest(store=store, constitutions=[str(CONSTITUTION)], prompt_sets=[str(PROMPTS)])
    generate(store=store, backend=backend, settings=GenerateSettings(n=2, max_tokens=12), **selection)
    critique_settings = CritiqueSettings(critique_tokens=12, revision_tokens=16)
    critique(
        store=store, constitution=str(CONSTITUTION), backend=backend, settings=critique_settings, **selection
    )
    label(
        store=store,
        constitution=str(CONSTITUTION),
        backend=backend,
        pairs=PairSettings(mode="all"),
        **selection,
    )
    merge(store=store, policy=MergeSettings(ai_min_margin=0.0, ai_require_consistent=False))
    return critique_run(Store.existing(store))[0]


@pytest.mark.integration
def test_sft_then_dpo_from_the_sft_checkpoint(embedded_model, one_thread, tmp_path: Path) -> None:
    from flows.train import train_dpo, train_sft

    base = two_layer_model(embedded_model, tmp_path / "two-layers")
    critiqued = pipeline_store(tmp_path / "store", base)
    store = str(tmp_path / "store")
    settings = SFTSettings(steps=4, batch_size=2, learning_rate=1e-3, max_length=256)

    sft = train_sft(store=store, model=base, settings=settings)
    lineage = sft.lineage
    assert sft.reused is False and lineage["kind"] == "sft" and lineage["critique_run"] == critiqued
    data = sft_set(Store.existing(store))
    assert lineage["records"] == len(data.records) > 0
    assert lineage["constitution_ids"] == [load_constitution(CONSTITUTION).constitution_id]
    assert lineage["principle_ids"] and set(lineage["principle_ids"]) <= {
        p.id for p in load_constitution(CONSTITUTION).principles
    }
    metrics = sft.metrics
    assert len(metrics["loss"]) == 4
    assert metrics["revision_loss_after"] < metrics["revision_loss_before"]  # it learned its revisions
    assert Path(lineage["model_path"], "config.json").is_file()

    again = train_sft(store=store, model=base, settings=settings)
    assert again.reused is True and again.path == sft.path and again.run_id == sft.run_id
    options = ["--steps", "4", "--batch-size", "2", "--learning-rate", "1e-3", "--max-length", "256"]
    printed = run_charter("train", "sft", "--store", store, "--model", base, *options)
    assert printed.returncode == 0, printed.stderr
    said = " ".join(printed.stdout.split())  # rich wraps long lines
    records = f"{lineage['records']} records of critique run {critiqued[:12]}"
    assert f"SFT policy {sft.path} (already trained): {records}" in said
    before, after = metrics["revision_loss_before"], metrics["revision_loss_after"]
    assert f"revision loss {before:.3f} -> {after:.3f} nats/token" in said
    refused = run_charter("train", "sft", "--store", store, "--critique-run", "nope")
    assert refused.returncode == 1 and "no critique run with id starting 'nope'" in refused.stderr

    dpo_settings = DPOSettings(steps=2, batch_size=2, max_length=256, margin_pairs=2)
    dpo = train_dpo(store=store, model=sft.path, settings=dpo_settings)
    recorded = json.loads((Path(dpo.path) / LINEAGE_FILE).read_text(encoding="utf-8"))
    assert recorded["start_checkpoint"] == str(Path(sft.path).resolve())
    assert recorded["start_checkpoint_kind"] == "sft" and recorded["start_checkpoint_run_id"] == sft.run_id
    sft_model = str(Path(sft.path, "model").resolve())
    assert recorded["reference_model"] == recorded["base_model_path"] == sft_model
    assert recorded["start_checkpoint_base_model"] == lineage["base_model"]
