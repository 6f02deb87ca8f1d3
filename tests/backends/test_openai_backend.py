"""The OpenAI-compatible backend over real HTTP: a scripted server for failures, a vLLM server for values."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.backends.base import Completion, SamplingSettings
from tasks.backends.models import cache_root, resolve_model
from tasks.backends.openai_backend import OpenAIBackend
from tasks.core.errors import CharterError
from tests.backends.scripted_server import (
    MODEL,
    SERVED,
    Reply,
    ScriptedServer,
    chat_reply,
    free_port,
    sequence,
)

HELLO = [{"role": "user", "content": "hello"}]
ONE = SamplingSettings(n=1, max_tokens=8)


def generate_once(server_url: str, seed: int = 0, **options: Any) -> Completion:
    """One completion of HELLO through a fresh backend on ``server_url``."""
    with contextlib.closing(OpenAIBackend(server_url, MODEL, **options)) as backend:
        [[completion]] = backend.generate([HELLO], ONE, [seed])
    return completion


def generation_failure(server_url: str, **options: Any) -> str:
    """The CharterError that generating HELLO through a fresh backend on ``server_url`` raises."""
    with pytest.raises(CharterError) as raised:
        generate_once(server_url, **options)
    return str(raised.value)


def test_retries_rate_limit_and_server_error_then_succeeds() -> None:
    replies = sequence(
        (429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}, 0.0),
        (503, {"error": {"message": "busy"}}, {}, 0.0),
        (200, chat_reply("hi there", completion_tokens=2), {}, 0.0),
    )
    with ScriptedServer(replies) as server:
        completion = generate_once(server.url + "/v1/", seed=7, api_key="sk-test")
    assert (completion.text, completion.finish_reason, completion.num_tokens) == ("hi there", "stop", 2)
    assert len(server.requests) == 3
    path, body, headers = server.requests[-1]
    assert path == "/v1/chat/completions"
    assert body == {
        "model": SERVED,
        "messages": HELLO,
        "n": 1,
        "temperature": ONE.temperature,
        "top_p": ONE.top_p,
        "max_tokens": 8,
        "seed": 7,
    }
    assert headers["authorization"] == "Bearer sk-test"


def test_client_error_fails_at_once_with_the_servers_message() -> None:
    with ScriptedServer(sequence((400, {"error": {"message": "bad field"}}, {}, 0.0))) as server:
        message = generation_failure(server.url)
    assert (
        message
        == f"the OpenAI-compatible server at {server.url}/v1/chat/completions answered HTTP 400: bad field"
    )
    assert len(server.requests) == 1


def test_unreachable_server_fails_after_the_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    message = generation_failure(url, max_retries=2)
    assert time.monotonic() - started < 5
    assert message.startswith(f"cannot reach the OpenAI-compatible server at {url}/v1/chat/completions: ")
    assert message.endswith("(after 3 attempts)") and "ConnectError" in message


def test_retry_after_is_honoured() -> None:
    replies = sequence(
        (429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}, 0.0),
        (200, chat_reply("done"), {}, 0.0),
    )
    with ScriptedServer(replies) as server:
        started = time.monotonic()
        assert generate_once(server.url).text == "done"
        elapsed = time.monotonic() - started
    # The server's second, not the first backoff step (at most 0.5 s).
    assert 1.0 <= elapsed < 3.0
    assert len(server.requests) == 2


def test_exhausted_retries_name_the_url_status_and_attempts() -> None:
    overloaded = (503, {"error": {"message": "overloaded"}}, {"retry-after-ms": "10"}, 0.0)
    with ScriptedServer(sequence(overloaded)) as server:
        message = generation_failure(server.url, max_retries=2)
    assert message == (
        f"the OpenAI-compatible server at {server.url}/v1/chat/completions answered HTTP 503 "
        "after 3 attempts: overloaded"
    )
    assert len(server.requests) == 3


def test_a_retry_after_beyond_two_minutes_fails_at_once_and_says_so() -> None:
    with ScriptedServer(sequence((429, {"detail": "quota"}, {"Retry-After": "3600"}, 0.0))) as server:
        started = time.monotonic()
        message = generation_failure(server.url)
        assert time.monotonic() - started < 2
    assert message.endswith(
        "answered HTTP 429: quota (it asked to retry after 3600 s; the client waits two minutes at most)"
    )
    assert len(server.requests) == 1


def test_a_timeout_is_retried_and_exhausted_timeouts_say_so() -> None:
    replies = sequence((200, chat_reply("late"), {}, 1.0), (200, chat_reply("in time"), {}, 0.0))
    with ScriptedServer(replies) as server:
        assert generate_once(server.url, timeout=0.3).text == "in time"
    assert len(server.requests) == 2

    with ScriptedServer(sequence((200, chat_reply("late"), {}, 1.0))) as server:
        message = generation_failure(server.url, timeout=0.2, max_retries=1)
    assert message == (
        f"no answer in time from the OpenAI-compatible server at {server.url}/v1/chat/completions: "
        "ReadTimeout: timed out (after 2 attempts)"
    )


def test_an_answer_that_is_not_json_is_a_clear_error() -> None:
    with ScriptedServer(sequence((200, "<html>a proxy login page</html>", {}, 0.0))) as server:
        message = generation_failure(server.url)
    assert message == (
        f"the server at {server.url}/v1/ did not answer with a JSON ChatCompletion: "
        "'<html>a proxy login page</html>'"
    )


def test_results_keep_input_order_when_answers_arrive_reversed() -> None:
    count = 6

    def respond(path: str, body: dict[str, Any]) -> Reply:
        index = int(body["messages"][-1]["content"])
        # The first conversation answers last; n > 1 and per-choice logprobs give exact counts.
        choices = chat_reply(f"{index}-a", f"{index}-b")
        for choice, tokens in zip(choices["choices"], (index + 1, index + 2), strict=True):
            choice["logprobs"] = {"content": [{"token": "x", "logprob": 0.0}] * tokens}
        return 200, choices, {}, 0.05 * (count - index)

    conversations = [[{"role": "user", "content": str(i)}] for i in range(count)]
    with ScriptedServer(respond) as server:
        backend = OpenAIBackend(server.url, MODEL, concurrency=count)
        started = time.monotonic()
        try:
            results = backend.generate(conversations, SamplingSettings(n=2, max_tokens=4), list(range(count)))
        finally:
            backend.close()
        elapsed = time.monotonic() - started
    assert [[c.text for c in r] for r in results] == [[f"{i}-a", f"{i}-b"] for i in range(count)]
    assert [[c.num_tokens for c in r] for r in results] == [[i + 1, i + 2] for i in range(count)]
    assert all(body["seed"] == int(body["messages"][0]["content"]) for _, body, _ in server.requests)
    assert all(body["logprobs"] is True for _, body, _ in server.requests)
    # Concurrent: about the slowest answer (0.3 s), not the sum of all of them (1.05 s).
    assert elapsed < 0.9


def test_next_token_logprobs_maps_token_ids_back_to_candidates() -> None:
    vocabulary = {"A": 32, "B": 33, "AB": None}

    def respond(path: str, body: dict[str, Any]) -> Reply:
        if path == "/tokenize":
            token = vocabulary[body["prompt"]]
            return 200, {"tokens": [token] if token is not None else [32, 33]}, {}, 0.0
        position = {
            "token": "token_id:33",
            "logprob": -0.5,
            "top_logprobs": [{"token": f"token_id:{i}", "logprob": -i / 4} for i in (33, 32)],
        }
        return 200, {"choices": [{"index": 0, "logprobs": {"content": [position]}}]}, {}, 0.0

    with ScriptedServer(respond) as server:
        backend = OpenAIBackend(server.url, MODEL)
        try:
            scores = backend.next_token_logprobs([HELLO], ["A", "B"], assistant_prefix="Answer: (")
            with pytest.raises(CharterError, match="'AB' is 2 tokens"):
                backend.next_token_logprobs([HELLO], ["A", "AB"])
        finally:
            backend.close()
    assert scores == [{"A": -8.0, "B": -8.25}]
    tokenize = [body for path, body, _ in server.requests if path == "/tokenize"]
    assert tokenize[0] == {"model": SERVED, "prompt": "A", "add_special_tokens": False}
    assert [body["prompt"] for body in tokenize] == ["A", "B", "AB"]  # cached after the first call
    [chat] = [body for path, body, _ in server.requests if path == "/v1/chat/completions"]
    assert chat["messages"] == [*HELLO, {"role": "assistant", "content": "Answer: ("}]
    assert chat["logprob_token_ids"] == [32, 33]
    assert (chat["continue_final_message"], chat["add_generation_prompt"]) == (True, False)
    assert (chat["max_tokens"], chat["temperature"], chat["logprobs"]) == (1, 1.0, True)


# -- A real vLLM server ---------------------------------------------------------------------


def _log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's OpenAI-compatible server with the embedded model, started once for this module."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    try:
        model_dir = resolve_model(None).path
    except CharterError as exc:
        pytest.skip(str(exc))
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {
        **os.environ,
        "VLLM_CPU_NUM_OF_RESERVED_CPU": os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"),
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "4"),
        "VLLM_CACHE_ROOT": os.environ.get("VLLM_CACHE_ROOT", str(cache_root() / "vllm")),
    }
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_dir, "--served-model-name", SERVED,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--max-model-len", "2048",
        "--enforce-eager",  # ~25-40 s to start on CPU instead of 40-80 s
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        started = time.monotonic()
        while True:
            if process.poll() is not None:
                pytest.fail(f"the vLLM server exited with {process.returncode}:\n{_log_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as health:
                    if health.status == 200:
                        break
            except OSError:  # refused, reset or timed out while the server starts
                pass
            if time.monotonic() - started > 180:
                pytest.fail(f"the vLLM server was not healthy after 180 s:\n{_log_tail(log)}")
            time.sleep(0.5)
        print(f"vLLM server healthy after {time.monotonic() - started:.1f} s")
        yield url
    finally:
        _stop(process)


JUDGE_CONVERSATIONS = [
    [
        {
            "role": "user",
            "content": "Which response is more helpful?\n(A) Paris is the capital.\n(B) I don't know.",
        },
    ],
    [
        {"role": "system", "content": "You compare two answers."},
        {"role": "user", "content": "Question: 2+2?\n(A) 5\n(B) 4\nWhich response is better, (A) or (B)?"},
    ],
]


@pytest.mark.integration
def test_against_a_real_vllm_server(vllm_server: str) -> None:
    backend = OpenAIBackend(vllm_server + "/v1", MODEL)
    try:
        conversations = [
            [{"role": "user", "content": "Write one sentence about the sea."}],
            [{"role": "user", "content": "Name a colour and say why you like it."}],
        ]
        sampling = SamplingSettings(n=3, temperature=1.0, top_p=1.0, max_tokens=12)
        first = backend.generate(conversations, sampling, [11, 12])
        again = backend.generate(conversations, sampling, [11, 12])
        assert [len(samples) for samples in first] == [3, 3]
        assert [[c.text for c in s] for s in again] == [[c.text for c in s] for s in first]
        for samples in first:
            assert len({c.text for c in samples}) >= 2
            assert all(1 <= c.num_tokens <= 12 and c.finish_reason in ("stop", "length") for c in samples)

        prefix = "The better response is ("
        served = backend.next_token_logprobs(JUDGE_CONVERSATIONS, ["A", "B"], assistant_prefix=prefix)
    finally:
        backend.close()

    from tasks.backends.hf import HFBackend

    reference = HFBackend(resolve_model(None))
    try:
        local = reference.next_token_logprobs(JUDGE_CONVERSATIONS, ["A", "B"], assistant_prefix=prefix)
    finally:
        reference.close()
    for got, expected in zip(served, local, strict=True):
        assert got.keys() == expected.keys()
        for candidate in expected:
            assert got[candidate] == pytest.approx(expected[candidate], abs=1e-3)
