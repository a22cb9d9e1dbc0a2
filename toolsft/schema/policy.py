"""A suite's compliance policy: forbidden phrases, PII patterns, confirmation-required tools.

Used by generation (no row that breaks the policy is written) and by scoring (compliance).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolsft.types import ToolCall

POLICY_KEYS = ("forbidden_phrases", "pii_patterns", "confirm_required", "confirmation")


@dataclass(frozen=True)
class Policy:
    forbidden_phrases: tuple[str, ...] = ()
    pii_patterns: Mapping[str, str] = field(default_factory=dict)
    confirm_required: frozenset[str] = frozenset()
    confirm_ask: Mapping[str, str] = field(default_factory=dict)
    """Per language: the assistant's confirmation question; `{summary}` is the request."""
    confirm_yes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per language: user replies that count as an explicit yes."""

    def text_violations(self, text: str) -> list[str]:
        """Forbidden phrases and PII in free text (an answer)."""
        low = text.lower()
        found = [f"forbidden phrase {p!r}" for p in self.forbidden_phrases if p.lower() in low]
        for name, pattern in self.pii_patterns.items():
            if re.search(pattern, text):
                found.append(f"PII {name}")
        return found

    def call_violations(self, call: ToolCall, prior: Sequence[Mapping[str, Any]]) -> list[str]:
        """PII in arguments; a confirmation-required tool called before the user said yes."""
        args = json.dumps(call.arguments, ensure_ascii=False) if self.pii_patterns else ""
        found = [
            f"PII {name} in arguments of {call.name}"
            for name, pattern in self.pii_patterns.items()
            if re.search(pattern, args)
        ]
        if call.name in self.confirm_required and not self.confirmed(prior):
            found.append(f"{call.name} called without explicit user confirmation")
        return found

    def confirmed(self, prior: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the last user turn is an explicit yes after an assistant question."""
        users = [m for m in prior if m.get("role") == "user"]
        if len(users) < 2:
            return False
        last = str(users[-1].get("content", "")).strip().lower().rstrip("。.!！")
        yes = {y.lower() for ys in self.confirm_yes.values() for y in ys}
        return last in yes


def policy_from_config(cfg: Mapping[str, Any]) -> Policy:
    conf = cfg.get("confirmation") or {}
    return Policy(
        forbidden_phrases=tuple(cfg.get("forbidden_phrases") or ()),
        pii_patterns=dict(cfg.get("pii_patterns") or {}),
        confirm_required=frozenset(cfg.get("confirm_required") or ()),
        confirm_ask=dict(conf.get("ask") or {}),
        confirm_yes={k: tuple(v) for k, v in (conf.get("yes") or {}).items()},
    )
