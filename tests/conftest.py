"""Shared fixtures and helpers.

Flows run in this process use Prefect's temporary (ephemeral) server against a throwaway
PREFECT_HOME. The ``charter`` subprocesses that run a flow share one real ``prefect server
start`` instead (started on first use, stopped with the session), as a scheduled deployment
would: each would otherwise start a temporary server of its own (~8 s a process here).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Before anything imports Prefect: never touch the developer's ~/.prefect, never phone home.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="charter-test-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("CHARTER_STORE", None)

from tasks.store.runs import RunContext
from tasks.store.schema import TABLES
from tasks.store.store import Store
from tests.prefect_servers import prefect_server

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
HH_RLHF_SAMPLE = SHARED_DATA / "hh-rlhf" / "harmless-base-test-sample.jsonl"
CAI_DIR = SHARED_DATA / "anthropic-cai"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.create(tmp_path / "store")


def stored_files(store: Store) -> dict[str, tuple[str, ...]]:
    """Each table's file names: equal before and after a step means the step wrote nothing."""
    return {name: tuple(f.name for f in store.files(name)) for name in TABLES}


@pytest.fixture
def run(store: Store) -> RunContext:
    return RunContext(run_id="test-run", flow="test", store=store, parameters={})


@pytest.fixture
def hh_rlhf_sample() -> Path:
    if not HH_RLHF_SAMPLE.exists():
        pytest.skip(f"shared data not present: {HH_RLHF_SAMPLE} (../shared must sit beside the project)")
    return HH_RLHF_SAMPLE


@pytest.fixture
def cai_dir() -> Path:
    if not CAI_DIR.exists():
        pytest.skip(f"shared data not present: {CAI_DIR} (../shared must sit beside the project)")
    return CAI_DIR


# Commands that run a Prefect flow (the others never contact Prefect).
FLOW_COMMANDS = frozenset(
    {"ingest", "import-labels", "generate", "critique", "label", "merge", "train", "eval", "compare"}
)
_SHARED_SERVER = contextlib.ExitStack()
_shared_url: list[str] = []


def shared_prefect_api() -> dict[str, str]:
    """``PREFECT_API_URL`` of the session's shared server, started on first use."""
    if not _shared_url:
        home = Path(tempfile.mkdtemp(prefix="charter-test-prefect-server-"))
        _shared_url.append(_SHARED_SERVER.enter_context(prefect_server(home)))
    return {"PREFECT_API_URL": _shared_url[0]}


def run_charter(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real ``charter`` console script (the one the README tells users to run).

    A command that runs a flow talks to the shared server unless ``env`` names an API URL.
    """
    charter = Path(sys.executable).parent / "charter"
    env = env or {}
    server = shared_prefect_api() if args[0] in FLOW_COMMANDS and "PREFECT_API_URL" not in env else {}
    return subprocess.run(
        [str(charter), *args],
        cwd=cwd or PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "200", **server, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SHARED_SERVER.close()  # the shared server and its process group, if one was started
    # Prefect stops its ephemeral API server from an atexit hook and logs that at INFO to a
    # console handler bound to pytest's captured stream, closed by then: quiet that one line.
    logging.getLogger("prefect").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def embedded_model():
    """The embedded default model, prepared (converted from its GGUF) once per cache."""
    from tasks.backends.models import resolve_model

    return resolve_model(None)


@pytest.fixture(scope="session")
def hf_backend(embedded_model):
    """One transformers backend on the embedded model for the whole session (loads in ~5 s)."""
    from tasks.backends.hf import HFBackend

    backend = HFBackend(embedded_model)
    yield backend
    backend.close()
