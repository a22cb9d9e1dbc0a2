"""Score a deployed OpenAI-compatible server (e.g. `vllm serve --enable-lora
--enable-auto-tool-choice --tool-call-parser hermes`).

Requests stream so time to first token is measured on the client. The server's parsed
`tool_calls` are rendered back into the template's `<tool_call>` text, so every engine's output
goes through the same parser and scorer; a server without a tool parser returns the raw text,
which parses the same way. Constrained decoding sends vLLM's `structured_outputs` extension.

A server is trusted with nothing: transient failures (connection refused or reset, 408, 429,
5xx, a timeout) are retried with exponential backoff a bounded number of times; every request
has a timeout and the whole evaluation a deadline; an answer that is not the OpenAI API (an
HTML page, other JSON, a stream that is not server-sent events, chunks without choices) stops
the run with one line that says what came back, instead of scoring it as a 0% model.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from toolsft.engines.base import TOO_LONG, Decoding, EngineError, Generation, Request
from toolsft.engines.constrain import structural_tag
from toolsft.engines.openai_stream import (
    Accumulator,
    NotTheApi,
    completion_generation,
    render_raw_call,
)

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
MAX_BODY = 16 << 20
"""Largest non-streamed answer read (a chat completion is far smaller; a runaway is not)."""
SHOWN_BODY = 160
_TOO_LONG = re.compile(r"context length|context window|max_model_len|maximum model length", re.I)


class _Transient(Exception):
    """A failure worth another attempt; `retry_after` is the server's own hint (seconds)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIEngine:
    """Chat completions over HTTP with a bounded number of requests in flight."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        deadline_s: float | None = None,
        transport: Any = None,
    ) -> None:
        import httpx

        if not re.match(r"https?://[^/\s]+", base_url or ""):
            raise EngineError(
                "--base-url must be an http(s) URL, e.g. http://localhost:8000/v1", value=base_url
            )
        for flag, value in (("--timeout", timeout_s), ("--deadline", deadline_s)):
            if value is not None and not value > 0:
                raise EngineError(f"{flag} must be a positive number of seconds", value=value)
        if retries < 0:
            raise EngineError("--retries must be 0 or more", value=retries)
        self.base_url, self.model = base_url.rstrip("/"), model
        self.url = f"{self.base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport
        )
        self.concurrency = max(1, concurrency)
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.deadline_s = deadline_s
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self._stop = threading.Event()

    def info(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "base_url": self.base_url,
            "model": self.model,
            "adapter": None,
            "concurrency": self.concurrency,
            "timeout_s": self.timeout_s,
            "retries": self.retries,
        }

    def close(self) -> None:
        self._stop.set()
        self.client.close()

    def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Generation]:
        out: list[Generation | None] = [None] * len(requests)
        for i, gen in self.generate_each(requests, decoding):
            out[i] = gen
        return [g for g in out if g is not None]

    def generate_each(
        self, requests: Sequence[Request], decoding: Decoding
    ) -> Iterator[tuple[int, Generation]]:
        """(index, generation) as each request finishes, so the caller can keep it at once.

        The first failure that is not transient (or outlasts its retries) stops the batch:
        requests not started are cancelled and the ones in flight give up their retries.
        """
        self._stop.clear()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="toolsft-openai")
        pending: dict[Future[Generation], int] = {
            pool.submit(self._one, r, decoding): i for i, r in enumerate(requests)
        }
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield pending.pop(fut), fut.result()
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def body(self, request: Request, decoding: Decoding) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in request.messages],
            "max_tokens": decoding.max_tokens,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "seed": decoding.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = [dict(t) for t in request.tools]
        if request.tools and decoding.tool_choice == "required":
            body["tool_choice"] = "required"
        if decoding.constrained and request.tools:
            body["structured_outputs"] = {
                "structural_tag": json.dumps(structural_tag(request.tools))
            }
        return body

    def _one(self, request: Request, decoding: Decoding) -> Generation:
        """One request, retried with exponential backoff while the failure is transient."""
        body = self.body(request, decoding)
        for attempt in range(self.retries + 1):
            try:
                return self._post(body, self._request_timeout())
            except _Transient as exc:
                if attempt == self.retries:
                    tries = f"{attempt + 1} attempt" + ("s" if attempt else "")
                    raise EngineError(f"{self.url}: {exc} (gave up after {tries})") from None
                wait_s = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
                if exc.retry_after is not None:
                    wait_s = min(max(wait_s, exc.retry_after), MAX_BACKOFF_S)
                if self.deadline is not None and time.monotonic() + wait_s >= self.deadline:
                    raise self._deadline_error(f"while retrying after: {exc}") from None
                logger.warning("%s: %s; retry %d in %.1fs", self.url, exc, attempt + 1, wait_s)
                if self._stop.wait(wait_s):
                    raise EngineError(f"{self.url}: {exc} (batch stopped)") from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def _request_timeout(self) -> float:
        if self._stop.is_set():
            raise EngineError(f"{self.url}: batch stopped by another request's failure")
        if self.deadline is None:
            return self.timeout_s
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._deadline_error()
        return min(self.timeout_s, left)

    def _deadline_error(self, detail: str = "") -> EngineError:
        extra = f" ({detail})" if detail else ""
        return EngineError(f"{self.url}: the --deadline of {self.deadline_s:g} s passed{extra}")

    def _post(self, body: Mapping[str, Any], timeout: float) -> Generation:
        import httpx

        t0 = time.perf_counter()
        try:
            with self.client.stream(
                "POST", "/chat/completions", json=body, timeout=timeout
            ) as resp:
                if resp.status_code != 200:
                    return self._refused(resp)
                ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype.endswith("json"):
                    raw = _read_capped(resp, MAX_BODY)
                    return completion_generation(raw, time.perf_counter() - t0)
                if "html" in ctype or ctype.endswith("xml"):
                    raise NotTheApi("an HTML page", _read_capped(resp, 2048))
                # Not every server labels its stream: the reader refuses what is not SSE.
                return self._read_stream(resp, t0, timeout)
        except NotTheApi as exc:
            raise EngineError(
                f"{self.url} did not answer as the OpenAI API: {exc.what}"
                f"{_shown(exc.sample)}; is --base-url the API root (it usually ends in /v1)?"
            ) from None
        except httpx.TimeoutException as exc:
            raise _Transient(f"no answer within {timeout:g} s ({exc.__class__.__name__})") from None
        except httpx.TransportError as exc:
            raise _Transient(f"{exc.__class__.__name__}: {_one_line(str(exc))}") from None
        except httpx.HTTPError as exc:
            detail = f"{exc.__class__.__name__}: {_one_line(str(exc))}"
            raise EngineError(f"{self.url}: {detail}") from exc

    def _read_stream(self, resp: Any, t0: float, timeout: float) -> Generation:
        acc = Accumulator()
        for line in _lines(resp, MAX_BODY):
            now = time.perf_counter() - t0
            if now > timeout:  # a server that trickles forever never trips the read timeout
                raise _Transient(f"the stream took longer than {timeout:g} s")
            acc.feed(line, now)
        acc.check()
        return acc.generation(time.perf_counter() - t0)

    def _refused(self, resp: Any) -> Generation:
        """A non-200 answer: retry it, report it, or (context overflow) score it as too long."""
        text = _read_capped(resp, 4096).decode("utf-8", "replace")
        status = resp.status_code
        if status in TRANSIENT_STATUS:
            raise _Transient(f"answered {status}{_shown(text)}", _retry_after(resp))
        if status == 400 and _TOO_LONG.search(text):
            return Generation(text="", finish_reason=TOO_LONG)
        hint = {
            401: "; is OPENAI_API_KEY right?",
            403: "; is OPENAI_API_KEY right?",
            404: "; is --base-url the API root (it usually ends in /v1) and --model served?",
        }.get(status, "")
        raise EngineError(f"{self.url} answered {status}{_shown(text)}{hint}")


def _lines(resp: Any, limit: int) -> Iterator[str]:
    """The stream's lines (split at LF only: U+2028 may stand raw in JSON), refusing a stream
    past `limit` characters in all; linear however the server cuts its chunks."""
    buf: list[str] = []
    total = 0
    for text in resp.iter_text():
        total += len(text)
        if total > limit:
            raise NotTheApi(f"a stream longer than {limit >> 20} M characters")
        if "\n" not in text:
            buf.append(text)
            continue
        head, *mid, tail = text.split("\n")
        yield ("".join(buf) + head).rstrip("\r")
        yield from (m.rstrip("\r") for m in mid)
        buf = [tail]
    rest = "".join(buf)
    if rest:
        yield rest.rstrip("\r")


def _read_capped(resp: Any, limit: int) -> bytes:
    out = bytearray()
    for chunk in resp.iter_bytes():
        out += chunk
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def _retry_after(resp: Any) -> float | None:
    try:
        value = float(resp.headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shown(sample: bytes | str) -> str:
    text = sample.decode("utf-8", "replace") if isinstance(sample, bytes) else sample
    text = _one_line(text)
    if not text:
        return ""
    return ": " + (text if len(text) <= SHOWN_BODY else text[: SHOWN_BODY - 3] + "...")


__all__ = ["OpenAIEngine", "render_raw_call"]
