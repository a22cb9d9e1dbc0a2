"""Read an OpenAI chat completion, streamed (server-sent events) or whole, and refuse anything
else: every field is checked for the type the API gives it, so a server that answers another
protocol (an HTML page, other JSON, plain text) is an error with what came back, never an
empty reply scored as a failed row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from toolsft.engines.base import Generation, strip_stop

_SSE_FIELDS = ("event:", "id:", "retry:", ":")
"""Server-sent event lines other than `data:` (`:` starts a comment); they carry no output."""
SAMPLE = 200


class NotTheApi(Exception):
    """The server answered, but not as the OpenAI API; `sample` is what it said."""

    def __init__(self, what: str, sample: bytes | str = b"") -> None:
        super().__init__(what)
        self.what = what
        self.sample = sample


class Accumulator:
    """Collects a streamed chat completion: content, tool-call deltas, usage, first-token time."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.usage: Mapping[str, Any] = {}
        self.ttft: float | None = None
        self.finish: str | None = None
        self.events = 0
        self.choices_seen = False

    def feed(self, line: str, t: float) -> None:
        if not line.strip() or line.startswith(_SSE_FIELDS):
            return
        if not line.startswith("data:"):
            raise NotTheApi("a stream that is not server-sent events", line[:SAMPLE])
        data = line[5:].strip()
        if not data or data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            raise NotTheApi("a stream event that is not JSON", data[:SAMPLE]) from None
        self.events += 1
        self._chunk(chunk, data, t)

    def _chunk(self, chunk: Any, data: str, t: float) -> None:
        if not isinstance(chunk, dict):
            raise NotTheApi("a stream event that is not a JSON object", data[:SAMPLE])
        if chunk.get("error") is not None:
            raise NotTheApi("an error in the stream", _error_text(chunk["error"]))
        usage = chunk.get("usage")
        if usage is not None:
            self.usage = _usage(usage, data)
        if "choices" not in chunk:
            if usage is None:
                raise NotTheApi("a stream event without choices", data[:SAMPLE])
            return
        self.choices_seen = True
        for choice in _list(chunk["choices"], "choices", data):
            delta = _obj(_field(choice, "delta", data) or {}, "delta", data)
            content = _text(delta.get("content"), "delta.content", data)
            calls = _list(delta.get("tool_calls") or [], "delta.tool_calls", data)
            if (content or calls) and self.ttft is None:
                self.ttft = t
            self.content.append(content)
            for tc in calls:
                self._call_delta(_obj(tc, "tool_calls[]", data), data)
            finish = choice.get("finish_reason")
            self.finish = _text(finish, "finish_reason", data) or self.finish

    def _call_delta(self, tc: Mapping[str, Any], data: str) -> None:
        index = tc.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 1024:
            raise NotTheApi("a tool call with a bad index", data[:SAMPLE])
        slot = self.calls.setdefault(index, {"name": "", "arguments": ""})
        fn = _obj(tc.get("function") or {}, "tool_calls[].function", data)
        slot["name"] += _text(fn.get("name"), "function.name", data)
        slot["arguments"] += _text(fn.get("arguments"), "function.arguments", data)

    def check(self) -> None:
        """At the end of the stream: it must have said something in the API's terms."""
        if not self.events:
            raise NotTheApi("an empty stream (no data events)")
        if not self.choices_seen:
            raise NotTheApi("a stream without choices")

    def generation(self, latency: float) -> Generation:
        text = strip_stop("".join(self.content)).strip()
        calls = [render_raw_call(c["name"], c["arguments"]) for _, c in sorted(self.calls.items())]
        text = "\n".join(p for p in [text, *calls] if p)
        return Generation(
            text=text,
            prompt_tokens=_count(self.usage.get("prompt_tokens")),
            output_tokens=_count(self.usage.get("completion_tokens")),
            ttft_s=self.ttft,
            latency_s=latency,
            finish_reason=self.finish,
        )


def completion_generation(raw: bytes, latency: float) -> Generation:
    """A whole (non-streamed) chat completion: what a server that ignores `stream` sends."""
    sample = raw[:SAMPLE]
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise NotTheApi("a JSON content type over a body that is not JSON", sample) from None
    if not isinstance(doc, dict):
        raise NotTheApi("JSON that is not a chat completion", sample)
    if doc.get("error") is not None:
        raise NotTheApi("an error", _error_text(doc["error"]))
    if "choices" not in doc:
        raise NotTheApi(f"JSON that is not a chat completion (no choices; keys {sorted(doc)})")
    choices = _list(doc["choices"], "choices", sample)
    if not choices:
        raise NotTheApi("a chat completion with no choices", sample)
    acc = Accumulator()
    choice = _obj(choices[0], "choices[0]", sample)
    message = _obj(_field(choice, "message", sample) or {}, "message", sample)
    acc.content.append(_text(message.get("content"), "message.content", sample))
    for i, tc in enumerate(_list(message.get("tool_calls") or [], "message.tool_calls", sample)):
        acc._call_delta({**_obj(tc, "tool_calls[]", sample), "index": i}, str(sample))
    acc.finish = _text(choice.get("finish_reason"), "finish_reason", sample) or None
    acc.usage = _usage(doc.get("usage") or {}, sample)
    return acc.generation(latency)


def render_raw_call(name: str, arguments: str) -> str:
    """The template's call text around the server's raw argument string (kept if not JSON)."""
    args = arguments.strip() or "{}"
    return f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {args}}}\n</tool_call>'


def _field(obj: Any, key: str, sample: Any) -> Any:
    return _obj(obj, "choices[]", sample).get(key)


def _obj(value: Any, what: str, sample: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise NotTheApi(f"{what} is a {type(value).__name__}, not an object", _cut(sample))
    return value


def _list(value: Any, what: str, sample: Any) -> list[Any]:
    if not isinstance(value, list):
        raise NotTheApi(f"{what} is a {type(value).__name__}, not a list", _cut(sample))
    return value


def _text(value: Any, what: str, sample: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise NotTheApi(f"{what} is a {type(value).__name__}, not a string", _cut(sample))
    return value


def _usage(value: Any, sample: Any) -> Mapping[str, Any]:
    return _obj(value, "usage", sample)


def _count(value: Any) -> int:
    """A token count as reported; anything that is not a non-negative integer counts 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return error["message"][:SAMPLE]
    return str(error)[:SAMPLE]


def _cut(sample: Any) -> Any:
    return sample[:SAMPLE] if isinstance(sample, str | bytes) else ""
