"""Whether an emitted call is valid: the tool was shown and the arguments validate against its
JSON Schema *closed* (no undeclared parameters), the same schema constrained decoding enforces.

A plain JSON Schema allows undeclared properties unless it says otherwise; a real API (and
BFCL) rejects them, so scoring and the episode executor both treat them as invalid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from toolsft.chat.parse import clip
from toolsft.engines.constrain import closed_schema
from toolsft.schema.validate import value_errors
from toolsft.types import ToolCall, ToolSpec

MAX_ERRORS = 8
"""Schema errors kept per call: an object with thousands of bad keys is one short verdict."""


@lru_cache(maxsize=1024)
def _closed(schema_json: str) -> dict[str, Any]:
    return closed_schema(json.loads(schema_json))


def call_validity(shown: Mapping[str, ToolSpec], call: ToolCall) -> list[str]:
    """Why `call` is not a valid call of a shown tool ([] when it is)."""
    spec = shown.get(call.name)
    if spec is None:
        return [f"unknown tool {clip(call.name, 64)!r} (shown: {', '.join(sorted(shown))})"]
    if not isinstance(call.arguments, Mapping):
        return [f"arguments of {call.name} are not an object"]
    schema = _closed(json.dumps(spec.parameters, sort_keys=True))
    try:
        errors = value_errors(schema, dict(call.arguments))
    except (ValueError, OverflowError, RecursionError, TypeError) as exc:
        # The validators convert values (to Rust, to floats); a value one of them cannot hold
        # is an invalid call, not a crash of the run.
        return [clip(f"{call.name}: arguments cannot be validated ({exc})")]
    return [f"{call.name}: {e}" for e in errors[:MAX_ERRORS]]
