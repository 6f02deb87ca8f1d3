"""Shared fixtures. Prefect runs in ephemeral mode against a throwaway PREFECT_HOME."""

from __future__ import annotations

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


def run_charter(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real ``charter`` console script (the one the README tells users to run)."""
    charter = Path(sys.executable).parent / "charter"
    return subprocess.run(
        [str(charter), *args],
        cwd=cwd or PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
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
