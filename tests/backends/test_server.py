"""Checking an OpenAI-compatible server before work starts, against real HTTP servers."""

from __future__ import annotations

import pytest

from tasks.backends.server import check_server
from tasks.core.errors import CharterError
from tests.backends.scripted_server import SERVED, Reply, ScriptedServer, free_port, sequence


def test_check_server_lists_models_with_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    models = {"object": "list", "data": [{"id": SERVED, "object": "model", "created": 0, "owned_by": "me"}]}
    with ScriptedServer(sequence((200, models, {}, 0.0))) as server:
        assert check_server(server.url + "/v1") == [SERVED]
    [(path, _, headers)] = server.requests
    assert (path, headers["authorization"]) == ("/v1/models", "Bearer sk-env")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ((401, {"error": {"message": "bad key"}}, {}, 0.0), r"/v1/models answered HTTP 401: bad key$"),
        (
            (200, "<html>not an API</html>", {}, 0.0),
            r"/v1/ did not answer with a JSON dict: '<html>not an API",
        ),
        ((200, {"status": "ok"}, {}, 0.0), r"/v1/models answered without a model list: \{'status': 'ok'\}"),
    ],
    ids=["refused", "not-openai", "no-model-list"],
)
def test_check_server_explains_a_server_that_will_not_serve(reply: Reply, message: str) -> None:
    with ScriptedServer(sequence(reply)) as server, pytest.raises(CharterError, match=message):
        check_server(server.url)
    assert len(server.requests) == 1


def test_check_server_fails_at_once_on_an_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        CharterError, match=rf"cannot reach the OpenAI-compatible server at {url}/v1/models: .*1 attempt\)"
    ):
        check_server(url)
