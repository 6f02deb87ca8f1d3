"""The OpenAI-compatible backend over real HTTP: a scripted server for failures, a vLLM server for values."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tasks.backends.base import SamplingSettings
from tasks.backends.models import ResolvedModel, cache_root, resolve_model
from tasks.backends.openai_backend import OpenAIBackend
from tasks.core.errors import CharterError

SERVED = "charter-test"
MODEL = ResolvedModel(path=SERVED, model_id=f"openai:{SERVED}")

# (status, JSON body, extra headers, seconds to wait before answering)
Reply = tuple[int, Any, dict[str, str], float]


def chat_reply(*texts: str, completion_tokens: int = 3) -> dict[str, Any]:
    return {
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": completion_tokens,
            "total_tokens": 5 + completion_tokens,
        },
    }


class ScriptedServer:
    """A real HTTP server on an ephemeral port; ``respond(path, body)`` decides each answer."""

    def __init__(self, respond: Callable[[str, dict[str, Any]], Reply]):
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        lock = threading.Lock()
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with lock:
                    requests.append((self.path, body, dict(self.headers)))
                status, payload, headers, delay = respond(self.path, body)
                time.sleep(delay)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sequence(*replies: Reply) -> Callable[[str, dict[str, Any]], Reply]:
    """Answer the i-th request with the i-th reply (the last one repeats)."""
    index = iter(range(len(replies)))

    def respond(path: str, body: dict[str, Any]) -> Reply:
        return replies[min(next(index, len(replies) - 1), len(replies) - 1)]

    return respond


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HELLO = [{"role": "user", "content": "hello"}]
ONE = SamplingSettings(n=1, max_tokens=8)


def test_retries_rate_limit_and_server_error_then_succeeds() -> None:
    replies = sequence(
        (429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}, 0.0),
        (503, {"error": {"message": "busy"}}, {}, 0.0),
        (200, chat_reply("hi there", completion_tokens=2), {}, 0.0),
    )
    with ScriptedServer(replies) as server:
        backend = OpenAIBackend(server.url + "/v1/", MODEL, backoff=0.01, api_key="sk-test")
        try:
            [[completion]] = backend.generate([HELLO], ONE, [7])
        finally:
            backend.close()
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
    assert headers["Authorization"] == "Bearer sk-test"


def test_client_error_fails_at_once_with_the_servers_message() -> None:
    with ScriptedServer(sequence((400, {"error": {"message": "bad field"}}, {}, 0.0))) as server:
        backend = OpenAIBackend(server.url, MODEL, backoff=0.01)
        try:
            with pytest.raises(CharterError, match="400") as raised:
                backend.generate([HELLO], ONE, [0])
        finally:
            backend.close()
    assert "bad field" in str(raised.value)
    assert len(server.requests) == 1


def test_unreachable_server_fails_after_the_retries() -> None:
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}", MODEL, max_retries=2, backoff=0.01)
    started = time.monotonic()
    try:
        with pytest.raises(
            CharterError, match=r"cannot reach the OpenAI-compatible server at http://127\.0\.0\.1"
        ):
            backend.generate([HELLO], ONE, [0])
    finally:
        backend.close()
    assert time.monotonic() - started < 5


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
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
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
