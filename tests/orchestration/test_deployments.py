"""Deployments and schedules: prefect.yaml, ``charter schedule``'s checks, and a served
deployment run end to end on a real ``prefect server start``."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core.errors import CharterError
from tasks.orchestration.deployments import FLOWS, check_cron, check_timezone, next_run_times, parse_params
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT, run_charter
from tests.prefect_servers import (
    free_port,
    group_alive,
    registered_deployment,
    schedule_env,
    stop,
    tail,
)
from tests.prefect_servers import prefect_server as real_prefect_server

CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
PROMPTS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
LABELS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "human-labels.jsonl"
BIN = Path(sys.executable).parent


# --- the checks charter schedule makes before anything else -------------------------------


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("61 2 * * *", "the minute field (field 1) '61'"),
        ("0 24 * * *", "the hour field (field 2) '24'"),
        ("0 2 32 * *", "the day of month field (field 3) '32'"),
        ("0 2 * 13 *", "the month field (field 4) '13'"),
        ("0 2 * * 8", "the day of week field (field 5) '8'"),
        ("*/0 2 * * *", "the minute field (field 1) '*/0'"),
        ("0 2 * * H", "the day of week field (field 5) 'H'"),  # Prefect refuses hashed expressions
        ("0 2 * *", "has 4 fields"),
        ("0 0 2 * * *", "has 6 fields"),  # croniter would read a sixth field as seconds
    ],
)
def test_check_cron_names_the_field_that_is_wrong(expression: str, field: str) -> None:
    with pytest.raises(CharterError, match="cron") as raised:
        check_cron(expression)
    assert field in str(raised.value)


def test_check_cron_accepts_what_prefect_accepts_and_normalises_spacing() -> None:
    assert check_cron(" 0  2 * *   mon-fri ") == "0 2 * * mon-fri"
    assert check_cron("*/15 8-18 1,15 jan-jun 0") == "*/15 8-18 1,15 jan-jun 0"


def test_check_timezone() -> None:
    assert check_timezone("Europe/Amsterdam") == "Europe/Amsterdam"
    with pytest.raises(CharterError, match="unknown time zone 'Mars/Olympus'"):
        check_timezone("Mars/Olympus")


def test_next_run_times_are_read_in_the_schedule_time_zone() -> None:
    after = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    times = next_run_times("0 2 * * *", "Europe/Amsterdam", count=3, after=after)
    assert [t.isoformat() for t in times] == [
        "2026-01-11T02:00:00+01:00",
        "2026-01-12T02:00:00+01:00",
        "2026-01-13T02:00:00+01:00",
    ]


def test_parse_params_reads_json_but_keeps_text_parameters_as_text() -> None:
    params = parse_params(
        ["store=2024", "n=4", 'stages=["generate", "label"]', "prompts=a b.jsonl", "empty="],
        string_params={"store"},
    )
    assert params == {
        "store": "2024",
        "n": 4,
        "stages": ["generate", "label"],
        "prompts": "a b.jsonl",
        "empty": "",
    }
    with pytest.raises(CharterError, match="expected key=value"):
        parse_params(["store"])
    with pytest.raises(CharterError, match="given twice"):
        parse_params(["n=1", "n=2"])


def test_deployment_parameters_are_checked_against_the_flow() -> None:
    from flows.ingest import ingest
    from flows.schedule import deployment_parameters

    good = deployment_parameters(ingest, ["store=2024", 'label_files=[{"path": "x.jsonl"}]'])
    assert good == {"store": "2024", "label_files": [{"path": "x.jsonl"}]}  # JSON-able, as stored
    with pytest.raises(CharterError, match="no parameter stor; its parameters: store, constitutions"):
        deployment_parameters(ingest, ["stor=x"])
    with pytest.raises(CharterError, match="store: Field required"):
        deployment_parameters(ingest, [])  # a cron run could not start without it
    with pytest.raises(CharterError, match="constitutions: Input should be a valid list"):
        deployment_parameters(ingest, ["store=s", "constitutions=5"])


def test_schedule_rejects_a_bad_cron_before_contacting_anything() -> None:
    # A server URL where nothing listens: had the command contacted it before checking the
    # cron expression, it would have failed with "no Prefect server answers" instead.
    result = run_charter(
        "schedule", "--flow", "ingest", "--cron", "0 2 * 13 *", "--param", "store=s",
        env={"PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the month field (field 4) '13' is not valid" in result.stderr
    assert "server" not in result.stderr
    assert "Traceback" not in result.stderr


def test_schedule_refuses_without_a_reachable_server() -> None:
    assert "PREFECT_API_URL" not in os.environ  # conftest keeps tests off any real server
    arguments = ("schedule", "--flow", "ingest", "--cron", "0 2 * * *", "--param", "store=s")
    unset = run_charter(*arguments)
    assert unset.returncode == 1
    assert "needs a running Prefect server and PREFECT_API_URL" in unset.stderr
    assert "prefect server start" in unset.stderr
    dead = f"http://127.0.0.1:{free_port()}/api"
    unreachable = run_charter(*arguments, env={"PREFECT_API_URL": dead})
    assert unreachable.returncode == 1
    assert f"no Prefect server answers at {dead}" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


# --- prefect.yaml -------------------------------------------------------------------------


def test_prefect_yaml_deployments_load_their_flows_with_valid_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every entrypoint is a flow, every parameter fits its signature, every path exists.

    Prefect's own loader ignores unknown keys (a misspelt ``schedule:`` is silently dropped),
    so the keys are checked against its model too.
    """
    from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel, RawScheduleConfig
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(PROJECT_ROOT)  # entrypoints and paths are relative to the project root
    raw = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)
    names = [d.name for d in model.deployments]
    assert names == ["pipeline", "nightly-data", "train", "ingest", "generate"]
    for raw_deployment, deployment in zip(raw["deployments"], model.deployments, strict=True):
        assert set(raw_deployment) <= set(DeploymentConfig.model_fields), deployment.name
        assert deployment.work_pool and deployment.work_pool.name == "charter"
        flow = load_flow_from_entrypoint(deployment.entrypoint, use_placeholder_flow=False)
        signature = set(inspect.signature(flow.fn).parameters)
        assert set(deployment.parameters) <= signature, f"{deployment.name}: not in {sorted(signature)}"
        flow.validate_parameters(deployment.parameters)  # types, and every required one given
        for path in _paths_in(deployment.parameters):
            assert Path(path).exists(), f"{deployment.name}: {path} does not exist"
        for item in raw_deployment.get("schedules") or []:
            schedule = RawScheduleConfig.model_validate(item)
            assert schedule.cron and check_cron(schedule.cron) == schedule.cron
            assert schedule.timezone and check_timezone(schedule.timezone)
    by_name = {d.name: d for d in model.deployments}
    nightly = by_name["nightly-data"]
    assert [(s.cron, s.timezone) for s in nightly.schedules] == [("0 2 * * *", "UTC")]
    assert nightly.parameters["stages"] == ["ingest", "generate", "critique", "label", "merge"]
    assert by_name["train"].parameters["stages"] == ["train", "evaluate"]
    assert not by_name["pipeline"].schedules and not by_name["train"].schedules  # on demand


def test_every_schedulable_flow_is_registered_under_its_prefect_name() -> None:
    from flows.schedule import load_flow

    for name in FLOWS:
        assert load_flow(name).name == name


def _paths_in(value: Any) -> Iterator[str]:
    """Strings in a parameter tree that name files (a suffix such as .yaml or .jsonl)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _paths_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _paths_in(item)
    elif isinstance(value, str) and Path(value).suffix in {".yaml", ".yml", ".jsonl", ".json"}:
        yield value


# --- a served deployment on a real Prefect server -----------------------------------------


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[str]:
    """A real ``prefect server start`` of this test's own (not the one charter subprocesses share)."""
    with real_prefect_server(tmp_path / "server-home") as url:
        yield url


@pytest.mark.integration
def test_served_deployment_registers_its_cron_runs_on_trigger_and_fills_the_store(
    prefect_server: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    store = tmp_path / "store"
    client_home = tmp_path / "client-home"
    client_home.mkdir()
    log_path = tmp_path / "charter.log"
    log = log_path.open("w")
    charter = subprocess.Popen(
        [
            str(BIN / "charter"), "schedule", "--flow", "ingest", "--name", "nightly-test",
            "--cron", "0 2 * * *", "--timezone", "Europe/Amsterdam",
            "--param", f"store={store}",
            "--param", f'constitutions=["{CONSTITUTION}"]',
            "--param", f'prompt_sets=["{PROMPTS}"]',
        ],
        cwd=PROJECT_ROOT,
        env=schedule_env(prefect_server, client_home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        # This process talks to the same server through a settings context, not os.environ,
        # so no other test sees the URL.
        with (
            temporary_settings(updates={PREFECT_API_URL: prefect_server}),
            get_client(sync_client=True) as client,
        ):
            deployment = registered_deployment(client, "ingest/nightly-test", charter, log_path)
            assert deployment.entrypoint == "flows.ingest.ingest"
            assert deployment.parameters == {
                "store": str(store),
                "constitutions": [str(CONSTITUTION)],
                "prompt_sets": [str(PROMPTS)],
            }
            [schedule] = deployment.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", "Europe/Amsterdam")
            assert schedule.active and not deployment.paused

            flow_run = run_deployment(
                "ingest/nightly-test",
                parameters={"label_files": [{"path": str(LABELS)}]},  # merged with the defaults
                timeout=120,
                poll_interval=1,
                as_subflow=False,
            )
            assert flow_run.state and flow_run.state.is_completed(), (flow_run.state, tail(log_path))

            target = Store(store)
            assert target.count("constitutions") == 1
            assert target.count("principles") == 12
            bundled = run_query(
                target, "select count(*) from prompts where prompt_set = 'healthcare-scheduling'"
            )
            assert bundled.rows == [(sum(1 for line in PROMPTS.open() if line.strip()),)]
            assert target.count("human_labels") == 60
            lineage = run_query(target, "select distinct run_id from human_labels").rows
            assert lineage == [(str(flow_run.id),)]  # written by the deployment's run

            # Stopping the served process pauses its schedule: no Late runs pile up unserved.
            stop(charter)
            assert charter.returncode == 0, tail(log_path)  # a graceful exit, not the SIGKILL fallback
            assert client.read_deployment_by_name("ingest/nightly-test").paused, tail(log_path)
    finally:
        stop(charter)
        log.close()
    assert charter.poll() is not None and not group_alive(charter.pid)
    printed = log_path.read_text()
    assert "serving deployment ingest/nightly-test" in printed
    next_runs = re.search(r"schedule '0 2 \* \* \*' \(Europe/Amsterdam\); next runs: (.*)", printed)
    assert next_runs, printed
    times = [datetime.fromisoformat(t) for t in next_runs.group(1).split(", ")]
    assert len(times) == 3 and all((t.hour, t.minute) == (2, 0) for t in times)
    assert "prefect deployment run 'ingest/nightly-test'" in printed
