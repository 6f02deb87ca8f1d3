"""The early start of Prefect's temporary API server (what `charter run` overlaps with its imports)."""

from __future__ import annotations

import threading

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from tasks.orchestration.prefect_server import (
    api_server_starting,
    ephemeral_api,
    without_heartbeats_when_ephemeral,
)


def starting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefect-api-start"]


def test_nothing_starts_when_a_server_is_configured() -> None:
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert not ephemeral_api()
        with api_server_starting():
            assert starting_threads() == []


@pytest.mark.integration
def test_the_temporary_server_answers_once_the_block_ends() -> None:
    from prefect.server.api.server import SubprocessASGIServer

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert ephemeral_api()
        with api_server_starting():
            pass
        assert starting_threads() == []
        server = SubprocessASGIServer()  # the instance Prefect's client uses for flow runs
        assert server.running
        assert httpx.get(f"{server.api_url}/health", timeout=5).status_code == 200


def test_heartbeats_stop_only_for_the_temporary_server() -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with without_heartbeats_when_ephemeral():
            assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == 180
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}), without_heartbeats_when_ephemeral():
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == 180
