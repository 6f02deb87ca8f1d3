"""A real HTTP server on an ephemeral port that answers as each test scripts (the openai backend tests)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tasks.backends.models import ResolvedModel

SERVED = "charter-test"
MODEL = ResolvedModel(path=SERVED, model_id=f"openai:{SERVED}")

# (status, JSON body or a str sent as text/html, extra headers, seconds to wait before answering)
Reply = tuple[int, Any, dict[str, str], float]


def chat_reply(*texts: str, completion_tokens: int = 3) -> dict[str, Any]:
    """A chat-completions answer with one choice per text, as small as the client accepts."""
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
                self.answer(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"))

            def do_GET(self) -> None:
                self.answer({})

            def answer(self, body: dict[str, Any]) -> None:
                with lock:
                    # Header names are case-insensitive: record them in lower case.
                    requests.append((self.path, body, {k.lower(): v for k, v in self.headers.items()}))
                status, payload, headers, delay = respond(self.path, body)
                time.sleep(delay)
                # A str payload is sent as it is, as text: a server that does not speak JSON.
                is_text = isinstance(payload, str)
                data = payload.encode() if is_text else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if is_text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

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
