"""A scripted OpenAI-compatible server for tests: 127.0.0.1, an ephemeral port, one thread.

`answer(n, body)` decides each reply (n counts POSTs from 0): a status, a body, a content
type, a delay, or `hang` (never answer until the server stops). Loopback only, so tests
stay offline and fast.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SSE = "text/event-stream"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    ctype: str = SSE
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False


def sse(text: str = "", calls: list[tuple[str, str]] | None = None) -> bytes:
    """A streamed chat completion saying `text` and making `calls` (name, raw arguments)."""
    chunks: list[dict[str, Any]] = []
    if text:
        chunks += [{"choices": [{"delta": {"content": p}}]} for p in (text[:3], text[3:]) if p]
    for i, (name, args) in enumerate(calls or []):
        fn = {"name": name, "arguments": args}
        chunks.append({"choices": [{"delta": {"tool_calls": [{"index": i, "function": fn}]}}]})
    chunks.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    lines = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return (lines + "data: [DONE]\n\n").encode()


class FakeOpenAI:
    """`with FakeOpenAI(answer) as server:` ... `server.url` is the API root (…/v1)."""

    def __init__(self, answer: Callable[[int, dict[str, Any]], Reply]) -> None:
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def calls(self) -> int:
        return len(self.bodies)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            body = json.loads(raw or b"{}")
            with server.lock:
                n = len(server.bodies)
                server.bodies.append(body)
            reply = server.answer(n, body)
            if reply.hang:
                server.release.wait(10)
                return
            if reply.delay:
                server.release.wait(reply.delay)
            self.send_response(reply.status)
            self.send_header("content-type", reply.ctype)
            self.send_header("content-length", str(len(reply.body)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(reply.body)

    return Handler
