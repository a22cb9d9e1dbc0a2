"""The engine interface: a batch of chat prompts in, one generation per prompt out.

Every backend (vLLM, transformers, an OpenAI-compatible server, a replay file) implements the
same small `Engine` protocol, so the episode runner and the scorer never know which one ran.
Engines return raw assistant text; parsing happens once, in `toolsft.chat.parse`, so a call
that scores is exactly a call that trains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from toolsft.chat.parse import cut_turn
from toolsft.errors import ToolsftError

STOP_STRINGS = ("<|im_end|>", "<|endoftext|>")
"""End-of-turn markers of the ChatML template; generation stops at the first one."""


TOO_LONG = "prompt_too_long"
"""finish_reason of a request whose prompt does not fit the engine's context."""


@dataclass(frozen=True)
class Request:
    """One prompt: the conversation so far and the tools shown (OpenAI function format)."""

    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]] = ()
    key: str = ""
    """Identifies the request to scripted engines: `<row id>#<sample>@<turn>`."""


@dataclass(frozen=True)
class Decoding:
    """Sampling settings shared by every engine; recorded in results.json for comparability."""

    max_tokens: int = 192
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    constrained: bool = False
    """Constrain every `<tool_call>` to the shown tools' JSON Schemas (free text stays free)."""
    tool_choice: str = "auto"
    """`auto`: the model decides; `required`: the reply must start with a (constrained) call."""

    @property
    def grammar(self) -> bool:
        """Whether requests with tools need a grammar."""
        return self.constrained or self.tool_choice == "required"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Generation:
    """What an engine produced for one request, with its own timing where it has one."""

    text: str
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft_s: float | None = None
    """Time to first token (arrival to first output token), seconds."""
    latency_s: float | None = None
    """End-to-end latency of the request, seconds."""
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """A text generator for chat prompts with tools."""

    name: str

    def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Generation]:
        """One generation per request, in order. Batching is the engine's business."""
        ...

    def info(self) -> dict[str, Any]:
        """What identifies this engine's outputs: backend, model, adapter, versions."""
        ...

    def close(self) -> None:
        """Release processes and memory (vLLM's engine core, model weights)."""
        ...


class EngineError(ToolsftError, RuntimeError):
    """An engine that cannot start or answer; the message says which setting is wrong."""


def strip_stop(text: str) -> str:
    """Cut the text at the first end-of-turn marker (some backends keep it).

    Cut where the parser cuts: a marker inside a JSON string of a call is an argument's text,
    not the end of the turn.
    """
    return cut_turn(text, STOP_STRINGS)
