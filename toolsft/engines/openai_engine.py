"""Score a deployed OpenAI-compatible server (e.g. `vllm serve --enable-lora
--enable-auto-tool-choice --tool-call-parser hermes`).

Requests stream so time to first token is measured on the client. The server's parsed
`tool_calls` are rendered back into the template's `<tool_call>` text, so every engine's output
goes through the same parser and scorer; a server without a tool parser returns the raw text,
which parses the same way. Constrained decoding sends vLLM's `structured_outputs` extension.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from toolsft.engines.base import Decoding, EngineError, Generation, Request, strip_stop
from toolsft.engines.constrain import structural_tag

logger = logging.getLogger(__name__)


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
        transport: Any = None,
    ) -> None:
        import httpx

        self.base_url, self.model = base_url.rstrip("/"), model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport
        )
        self.concurrency = max(1, concurrency)

    def info(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "base_url": self.base_url,
            "model": self.model,
            "adapter": None,
            "concurrency": self.concurrency,
        }

    def close(self) -> None:
        self.client.close()

    def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Generation]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda r: self._one(r, decoding), requests))

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
        import httpx

        t0 = time.perf_counter()
        acc = _Accumulator()
        try:
            with self.client.stream(
                "POST", "/chat/completions", json=self.body(request, decoding)
            ) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise EngineError(
                        f"{self.base_url}/chat/completions answered "
                        f"{resp.status_code}: {resp.text[:300]}"
                    )
                for line in resp.iter_lines():
                    acc.feed(line, time.perf_counter() - t0)
        except httpx.HTTPError as exc:
            raise EngineError(f"{self.base_url}: {exc.__class__.__name__}: {exc}") from exc
        return acc.generation(time.perf_counter() - t0)


class _Accumulator:
    """Collects a streamed chat completion: content, tool-call deltas, usage, first-token time."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.usage: Mapping[str, Any] = {}
        self.ttft: float | None = None
        self.finish: str | None = None

    def feed(self, line: str, t: float) -> None:
        if not line.startswith("data:"):
            return
        data = line[5:].strip()
        if not data or data == "[DONE]":
            return
        chunk = json.loads(data)
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if (delta.get("content") or delta.get("tool_calls")) and self.ttft is None:
                self.ttft = t
            self.content.append(delta.get("content") or "")
            for tc in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(int(tc.get("index", 0)), {"name": "", "arguments": ""})
                fn = tc.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            self.finish = choice.get("finish_reason") or self.finish

    def generation(self, latency: float) -> Generation:
        text = strip_stop("".join(self.content)).strip()
        calls = [render_raw_call(c["name"], c["arguments"]) for _, c in sorted(self.calls.items())]
        text = "\n".join(p for p in [text, *calls] if p)
        return Generation(
            text=text,
            prompt_tokens=int(self.usage.get("prompt_tokens", 0)),
            output_tokens=int(self.usage.get("completion_tokens", 0)),
            ttft_s=self.ttft,
            latency_s=latency,
            finish_reason=self.finish,
        )


def render_raw_call(name: str, arguments: str) -> str:
    """The template's call text around the server's raw argument string (kept if not JSON)."""
    args = arguments.strip() or "{}"
    return f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {args}}}\n</tool_call>'
