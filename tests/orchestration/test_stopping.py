"""Stopping when told: SIGINT and SIGTERM cancel a run cleanly and the rerun resumes it; a SIGKILL
leaves no process behind; a flow run cancelled through Prefect's API stops the same way.

The unit tests check the pieces: the stop exception and exit codes, how ``recorded_run`` records
each ending, and how the ``runs`` events' process (host, pid, kernel start time) tells a killed
run from a running one. The integration tests run the real ``charter`` console script.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tasks.core.errors import CharterError
from tasks.orchestration.stopping import Stopped
from tasks.store.runs import RunContext, live_run_ids, process_start, recorded_run, run_liveness
from tasks.store.schema import table_spec
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT, shared_prefect_api
from tests.prefect_servers import prefect_server, registered_deployment, schedule_env, stop, tail, wait_for

BIN = Path(sys.executable).parent
BUNDLED = PROJECT_ROOT / "datasets" / "healthcare-scheduling"
PROMPTS = BUNDLED / "prompts.jsonl"
CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"


# --- the stop exception -------------------------------------------------------------------------


def test_the_first_stop_signal_raises_stopped_and_a_second_exits_at_once() -> None:
    script = (
        "import os, signal\n"
        "from tasks.orchestration.stopping import Stopped, stop_on_signals\n"
        "stop_on_signals()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    print('not stopped')\n"
        "except Stopped as stop:\n"
        "    print(stop, stop.exit_code, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "print('not exited')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.stdout == "stopped by SIGTERM 143\n", done.stderr
    assert done.returncode == 130  # the second signal: 128 + SIGINT, without unwinding


# --- how a run's ending is recorded -------------------------------------------------------------


def _ending(store: Store, run_id: str) -> dict[str, Any]:
    [event] = [
        e for e in store.read("runs").to_pylist() if e["run_id"] == run_id and e["status"] != "started"
    ]
    return event


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (None, "completed", None),
        (ValueError("bad row"), "failed", "ValueError: bad row"),
        (Stopped(signal.SIGTERM), "cancelled", "Stopped: stopped by SIGTERM"),
        (KeyboardInterrupt(), "cancelled", "KeyboardInterrupt"),
    ],
)
def test_a_run_records_whether_it_completed_failed_or_was_cancelled(
    store: Store, raised: BaseException | None, status: str, error: str | None
) -> None:
    expected = pytest.raises(type(raised)) if raised else contextlib.nullcontext()
    with expected, recorded_run(store, "test", {}, run_id="r1"):
        if raised:
            raise raised
    ending = _ending(store, "r1")
    assert (ending["status"], ending["error"]) == (status, error)
    for event in store.read("runs").to_pylist():  # both events name the process that wrote them
        assert (event["host"], event["pid"]) == (socket.gethostname(), os.getpid())
        assert event["process_start"] == process_start(os.getpid()) is not None


# --- telling a dead run from a running one --------------------------------------------------------


def test_process_start_tells_a_running_process_from_a_gone_one() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    mine, its = process_start(os.getpid()), process_start(sleeper.pid)
    assert mine and its and mine != its
    assert mine.split(":")[0] == its.split(":")[0]  # same boot, different start times
    sleeper.kill()
    time.sleep(0.2)
    assert process_start(sleeper.pid) is None  # killed, not reaped yet: a zombie does not run
    sleeper.wait()
    assert process_start(sleeper.pid) is None


def _open_runs(store: Store) -> None:
    """One run of each kind the liveness check tells apart (see the test below for which is which)."""
    gone = subprocess.Popen(["true"])
    gone_start = process_start(gone.pid) or f"{process_start(os.getpid()).split(':')[0]}:1"
    gone.wait()
    here = {"host": socket.gethostname(), "pid": os.getpid(), "process_start": process_start(os.getpid())}
    runs = {
        "alive": [("started", here)],
        "killed": [("started", {**here, "pid": gone.pid, "process_start": gone_start})],
        # Our pid, but another process's start: the run's process is gone and its pid reused.
        "reused": [("started", {**here, "process_start": f"{here['process_start'].split(':')[0]}:1"})],
        "elsewhere": [("started", {**here, "host": "another-machine"})],
        "before-pids": [("started", {"host": None, "pid": None, "process_start": None})],
        "closed": [("started", here), ("completed", here)],
        "stopped": [("started", here), ("cancelled", here)],
    }
    for run_id, events in runs.items():
        context = RunContext(run_id=run_id, flow="test", store=store, parameters={})
        for status, process in events:  # one append per event, as a run makes them
            store.append("runs", [{**context._event(status), **process}], run_id)


def test_only_open_runs_of_this_machine_are_checked_and_a_gone_process_is_dead(store: Store) -> None:
    _open_runs(store)
    liveness = run_liveness(store)
    assert liveness == {"alive": True, "killed": False, "reused": False}
    assert live_run_ids(store) == {"alive"}


def test_run_summary_says_running_died_or_started_for_runs_that_never_closed(store: Store) -> None:
    _open_runs(store)
    statuses = dict(run_query(store, "select run_id, status from run_summary").rows)
    assert statuses == {
        "alive": "running",
        "killed": "died",
        "reused": "died",
        "elsewhere": "started",  # another machine: this one cannot tell
        "before-pids": "started",
        "closed": "completed",
        "stopped": "cancelled",
    }
    [alive] = run_query(store, "select host, pid from run_summary where run_id = 'alive'").rows
    assert alive == (socket.gethostname(), os.getpid())


# --- the real command line ------------------------------------------------------------------------


def _processes() -> list[dict[str, Any]]:
    """Every process that still runs (zombies excluded), with its group and command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended while we looked
        if fields[0] not in ("Z", "X"):
            found.append(
                {"pid": int(entry.name), "ppid": int(fields[1]), "pgid": int(fields[2]), "cmdline": cmdline}
            )
    return found


def _survivors(group: int, marker: str, within: float = 20) -> list[str]:
    """Command lines still running in process group ``group``, or naming ``marker``, after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        left = [p["cmdline"] for p in _processes() if p["pgid"] == group or marker in p["cmdline"]]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@dataclass
class _Command:
    """A ``charter`` command in its own process group (whose id is the command's pid).

    Its output goes to a file, not a pipe: a process it orphaned would hold a pipe open, and
    reading the pipe would wait for that process instead of showing that it survived.
    """

    process: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, log: Path, *args: str, env: dict[str, str] | None = None) -> _Command:
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(BIN / "charter"), *args],
                cwd=PROJECT_ROOT,
                env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(process, log)

    @property
    def output(self) -> str:
        return self.log.read_text()

    def finish(self) -> str:
        """Wait for it to succeed; its output."""
        try:
            code = self.process.wait(600)
        finally:
            self.kill_group()
        assert code == 0, self.output[-4000:]
        return self.output

    def signal_when(self, condition: Callable[[], bool], signum: int, what: str) -> float:
        """Send ``signum`` to the command (not its group) once ``condition`` holds; seconds until it exits."""
        deadline = time.monotonic() + 600
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"the command ended before {what}:\n{self.output[-4000:]}")
            if time.monotonic() > deadline:
                self.kill_group()
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.05)
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.kill_group()
            pytest.fail(f"still running 120 s after {signal.Signals(signum).name}:\n{self.output[-4000:]}")
        return time.monotonic() - sent

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def _stored(store: Path, table: str) -> int:
    """Rows the store holds in ``table`` now (0 before the command has created it)."""
    try:
        return Store(store).count(table)
    except (OSError, CharterError):
        return 0


def _statuses(store: Path) -> dict[str, list[str]]:
    """Each flow's runs' statuses in ``run_summary``, oldest first."""
    rows = run_query(Store(store), "select flow, status from run_summary order by started_at").rows
    by_flow: dict[str, list[str]] = {}
    for flow, status in rows:
        by_flow.setdefault(flow, []).append(status)
    return by_flow


@pytest.mark.integration
def test_sigkill_of_a_flow_command_leaves_no_process_behind_and_its_run_reads_as_died(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"  # big enough that the flow is still importing when it is killed
    labels.write_text(
        "".join(
            f'{{"prompt": "Can I book visit {i}?", "response_a": "Yes, slot {i}.", '
            f'"response_b": "No, slot {i} is gone.", "choice": "a", "annotator": "ann{i % 5}"}}\n'
            for i in range(20_000)
        )
    )
    store = tmp_path / "store"
    # No PREFECT_API_URL: Prefect starts its temporary server, the process that used to be orphaned.
    charter = _Command.start(
        tmp_path / "ingest.log", "ingest", "--labels", str(labels), "--store", str(store)
    )
    charter.signal_when(lambda: _stored(store, "runs") >= 1, signal.SIGKILL, "the ingest run's start")
    port = re.search(r"Starting temporary server on http://127\.0\.0\.1:(\d+)", charter.output)
    assert port, charter.output[-4000:]
    # Only the charter process was killed, not its group: the kernel has to take the server along.
    assert _survivors(charter.process.pid, f"--port {port.group(1)}") == []
    assert _statuses(store) == {"ingest": ["died"]}


# The pipeline's cheapest real run: 3 prompts x 3 samples (3 generate batches), their 9 pairs
# judged one pair a batch (so batches remain when the SIGTERM lands), merged; no critique,
# training or evaluation.
PIPELINE = f"""
constitution: {CONSTITUTION}
prompts: {{file: {PROMPTS}, limit: 3}}
policy_model: {{backend: hf}}
generate: {{n: 3, max_tokens: 8, batch_size: 1}}
critique: {{enabled: false}}
label: {{pairs: [all], batch_size: 1}}
merge: {{policy: {{ai_min_margin: 0.0}}}}
train: {{algorithm: none}}
evaluate: {{enabled: false}}
"""


def _pipeline(tmp_path: Path, store: Path) -> str:
    path = tmp_path / f"{store.name}.yaml"
    path.write_text(f"store: {store}\n{PIPELINE}", encoding="utf-8")
    return str(path)


def _rows(store: Path) -> dict[str, dict[str, Any]]:
    """What a run leaves in the store, by id: generated texts, judge probabilities, preference rows."""
    columns = {"generations": "text", "ai_labels": "p_a", "preferences": "target"}
    found = {}
    for table, value in columns.items():
        key = table_spec(table).id_column
        rows = Store(store).read(table, [key, value]).to_pylist()
        assert len({r[key] for r in rows}) == len(rows), f"duplicated rows in {table}"
        found[table] = {r[key]: r[value] for r in rows}
    return found


def _judged(store: Path) -> int:
    """Judge labels stored so far (the rule labels land before the first judge batch)."""
    if not _stored(store, "ai_labels"):
        return 0
    return sum(row["method"] == "logprob" for row in Store(store).read("ai_labels", ["method"]).to_pylist())


@pytest.mark.integration
def test_sigterm_mid_generate_and_mid_label_cancels_and_the_reruns_end_as_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    server = shared_prefect_api()
    straight = tmp_path / "straight"
    _Command.start(tmp_path / "straight.log", "run", _pipeline(tmp_path, straight), env=server).finish()
    store = tmp_path / "store"
    config = _pipeline(tmp_path, store)

    # Mid-generate, on Prefect's temporary server: one batch (3 samples) of three stored.
    first = _Command.start(tmp_path / "first.log", "run", config)
    generate_exit = first.signal_when(lambda: _stored(store, "generations") >= 3, signal.SIGTERM, "a batch")
    assert first.process.returncode == 143, first.output[-4000:]
    assert "stopped by SIGTERM; run the same command again to resume" in first.output
    # This command's own temporary server, by its port: the pytest process may run one of its own.
    # (Started early on a thread, its start is not logged; its stop is.)
    port = re.search(r"(?:Starting|Stopping) temporary server on http://127\.0\.0\.1:(\d+)", first.output)
    assert port, first.output[-4000:]
    assert _survivors(first.process.pid, f"--port {port.group(1)} ") == []
    generated = _stored(store, "generations")
    assert generated in (3, 6)  # whole batches: the one in flight was abandoned, not half-written
    assert _statuses(store) == {"pipeline": ["cancelled"], "ingest": ["completed"], "generate": ["cancelled"]}

    # Resume, then mid-label: three judge batches (one pair each) of nine stored.
    second = _Command.start(tmp_path / "second.log", "run", config, env=server)
    label_exit = second.signal_when(lambda: _judged(store) >= 3, signal.SIGTERM, "three judge batches")
    assert second.process.returncode == 143, second.output[-4000:]
    done = generated // 3
    assert f"3 prompts in 3 batches; {done} already generated, {3 - done} to go" in second.output
    assert 3 <= _judged(store) < 9
    assert _statuses(store)["label"] == ["cancelled"]

    output = _Command.start(tmp_path / "final.log", "run", config, env=server).finish()
    assert "3 prompts in 3 batches; 3 already generated, 0 to go" in output
    assert _rows(store) == _rows(straight)
    assert _statuses(store)["pipeline"] == ["cancelled", "cancelled", "completed"]
    print(f"SIGTERM to exit: mid-generate {generate_exit:.2f} s, mid-label {label_exit:.2f} s")


@pytest.mark.integration
def test_sigint_stops_a_stage_command_with_130_and_its_rerun_does_only_the_rest(tmp_path: Path) -> None:
    store = tmp_path / "store"
    generate = ("generate", "--prompts", str(PROMPTS), "--backend", "hf", "--limit", "4", "-n", "2")
    generate += ("--max-tokens", "8", "--batch-size", "1", "--store", str(store))
    server = shared_prefect_api()
    stopped = _Command.start(tmp_path / "stopped.log", *generate, env=server)
    seconds = stopped.signal_when(lambda: _stored(store, "generations") >= 2, signal.SIGINT, "a batch")
    assert stopped.process.returncode == 130, stopped.output[-4000:]
    assert "stopped by SIGINT; run the same command again to resume" in stopped.output
    cancelled = run_query(Store(store), "select status, error from run_summary").records()
    assert cancelled == [{"status": "cancelled", "error": "Stopped: stopped by SIGINT"}]
    done = _stored(store, "generations") // 2
    assert 1 <= done < 4

    output = _Command.start(tmp_path / "rerun.log", *generate, env=server).finish()
    assert f"4 batches ({done} already done), generations +{2 * (4 - done)}" in output
    print(f"SIGINT to exit: {seconds:.2f} s")


@pytest.mark.integration
def test_a_served_run_cancelled_through_prefects_api_is_recorded_cancelled_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelling

    store = tmp_path / "store"
    settings = '{"n": 2, "max_tokens": 8, "batch_size": 1}'
    with prefect_server(tmp_path / "server-home") as url:
        (tmp_path / "client-home").mkdir()
        served = _Command.start(
            tmp_path / "schedule.log",
            "schedule", "--flow", "generate", "--name", "cancel-test",
            "--param", f"store={store}", "--param", f"prompts={PROMPTS}", "--param", "limit=6",
            "--param", 'backend={"kind": "hf"}', "--param", f"settings={settings}",
            env=schedule_env(url, tmp_path / "client-home"),
        )  # fmt: skip
        try:
            with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
                registered_deployment(client, "generate/cancel-test", served.process, served.log)
                flow_run = run_deployment("generate/cancel-test", timeout=0, as_subflow=False)
                wait_for(
                    lambda: _stored(store, "generations") >= 2, 300, "a batch", served.process, served.log
                )
                client.set_flow_run_state(flow_run.id, Cancelling(message="cancelled by the test"))
                asked = time.monotonic()

                def state() -> StateType:
                    return client.read_flow_run(flow_run.id).state.type

                wait_for(lambda: state() == StateType.CANCELLED, 90, "Cancelled", served.process, served.log)
                print(f"cancellation to Cancelled: {time.monotonic() - asked:.2f} s")
            # The flow run's process (``python -m prefect.engine``, a child of charter) has gone.
            engines = [
                p
                for p in _processes()
                if p["pgid"] == served.process.pid and "prefect.engine" in p["cmdline"]
            ]
            assert engines == [], tail(served.log)
            runs = run_query(Store(store), "select run_id, status, error from run_summary").records()
            assert runs == [{"run_id": str(flow_run.id), "status": "cancelled", "error": "TerminationSignal"}]
            assert _stored(store, "generations") < 12
        finally:
            stop(served.process)
