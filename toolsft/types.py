"""Frozen dataclasses shared by every pipeline stage.

Rows on disk are plain JSON (OpenAI/TRL chat format); these types are the in-memory view.
`tools` and `meta` are stored as JSON *strings* in rows so that Arrow (`datasets`) never
unifies their heterogeneous keys and fills the missing ones with nulls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LANGS = ("zh", "en")
STAGES = (1, 2, 3)
SPLITS = ("train", "val", "test")


_PROBE = {"b": [1, 2.5, None, True], "a": {"ü": 'x\n"y'}, "c": -0.0}


def _encoder(sort_keys: bool) -> Callable[[Any], str]:
    """A JSON encoder built once. `json.dumps` with options builds a new one per call, half
    of its cost on the small objects rows are made of. Checked against `json.dumps` here, so
    the bytes never change; another Python's C encoder falls back to the plain one."""
    slow = json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys)
    try:
        # The C accelerator is a private name typeshed does not declare.
        from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

        enc = c_make_encoder(
            None, slow.default, encode_basestring, None, ": ", ", ", sort_keys, False, True
        )

        def fast(obj: Any) -> str:
            return "".join(enc(obj, 0))

        if fast(_PROBE) == json.dumps(_PROBE, ensure_ascii=False, sort_keys=sort_keys):
            return fast
    except (ImportError, TypeError):  # pragma: no cover - another Python's C encoder
        pass
    return slow.encode  # pragma: no cover


dumps: Callable[[Any], str] = _encoder(sort_keys=False)
"""Compact unicode JSON in insertion order: the row format's string form."""
canonical: Callable[[Any], str] = _encoder(sort_keys=True)
"""Sorted-key JSON: the canonical form hashed for seeds and cache keys."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool in OpenAI function format."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    @classmethod
    def from_openai(cls, obj: Mapping[str, Any]) -> ToolSpec:
        fn = obj.get("function", obj)
        return cls(fn["name"], fn.get("description", ""), fn.get("parameters", {}))


@dataclass(frozen=True)
class ToolCall:
    """A call of one tool: the name and the decoded arguments object."""

    name: str
    arguments: Mapping[str, Any]

    def to_openai(self, call_id: str) -> dict[str, Any]:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": dumps(dict(self.arguments))},
        }

    @classmethod
    def from_openai(cls, obj: Mapping[str, Any]) -> ToolCall:
        fn = obj.get("function", obj)
        args = fn.get("arguments", {})
        if isinstance(args, str):
            args = json.loads(args) if args.strip() else {}
        return cls(fn["name"], args)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class Expected:
    """What a correct assistant does on an eval episode (stored in a row's meta)."""

    calls: tuple[ToolCall, ...]
    """Gold calls of the target turn, in order; empty when the right move is no call."""
    facts: tuple[str, ...] = ()
    """Strings the final answer must contain (the tool result's key facts, rendered)."""
    answer: str | None = None
    """Reference final answer (stage 3), for BLEU/ROUGE."""
    ordered: bool = False
    """Whether the calls must come in this order (False: parallel, any order)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": [c.as_dict() for c in self.calls],
            "facts": list(self.facts),
            "answer": self.answer,
            "ordered": self.ordered,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Expected:
        return cls(
            calls=tuple(ToolCall(c["name"], c["arguments"]) for c in obj.get("calls", [])),
            facts=tuple(obj.get("facts", [])),
            answer=obj.get("answer"),
            ordered=bool(obj.get("ordered", False)),
        )


@dataclass(frozen=True)
class Example:
    """One training/eval conversation.

    `messages` are OpenAI chat messages; the last assistant message is the target.
    `meta` holds provenance: id, stage, split, lang, kind, tool(s), template id, slot values,
    augmentations, and `expected` (an `Expected.to_json()`).
    """

    messages: tuple[Mapping[str, Any], ...]
    tools: tuple[ToolSpec, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        return {
            "messages": [dict(m) for m in self.messages],
            "tools": dumps([t.to_openai() for t in self.tools]),
            "meta": dumps(dict(self.meta)),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Example:
        tools = row["tools"]
        if isinstance(tools, str):
            tools = json.loads(tools)
        meta = row.get("meta", {})
        if isinstance(meta, str):
            meta = json.loads(meta)
        messages = tuple(_strip_nulls(m) for m in row["messages"])
        return cls(messages, tuple(ToolSpec.from_openai(t) for t in tools), meta)

    @property
    def expected(self) -> Expected:
        return Expected.from_json(self.meta.get("expected", {}))

    def prompt_messages(self) -> list[dict[str, Any]]:
        """Messages before the first target turn: what an eval episode starts from."""
        n = int(self.meta.get("prompt_len", len(self.messages) - 1))
        return [dict(m) for m in self.messages[:n]]


def _strip_nulls(msg: Mapping[str, Any]) -> dict[str, Any]:
    """Undo Arrow's null-filling of keys a message never had."""
    return {k: v for k, v in msg.items() if v is not None}
