"""Validate tool calls against the tools shown: compiled validators, cached per schema."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import jsonschema

from toolsft.types import ToolCall, ToolSpec

_FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


@lru_cache(maxsize=4096)
def _fast(schema_json: str) -> Any:
    """A compiled Rust validator (30x faster than jsonschema) for the common, valid case."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - optional speed-up
        return None
    try:
        return jsonschema_rs.validator_for(json.loads(schema_json), validate_formats=True)
    except Exception:  # noqa: BLE001 - anything it cannot compile goes the slow, exact way
        return None


_BY_ID: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _fast_for(schema: Mapping[str, Any]) -> Any:
    # Suite schemas live as long as the suite: look them up by identity, not by re-serialising.
    hit = _BY_ID.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, _fast(json.dumps(schema, sort_keys=True)))
        if len(_BY_ID) > 4096:
            _BY_ID.clear()
        _BY_ID[id(schema)] = hit
    return hit[1]


@lru_cache(maxsize=4096)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    # Keyed by the schema's JSON text so equal schemas share one compiled validator.
    return jsonschema.Draft202012Validator(json.loads(schema_json), format_checker=_FORMAT_CHECKER)


def validator_for(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    return _validator(json.dumps(schema, sort_keys=True))


def value_errors(schema: Mapping[str, Any], value: Any) -> list[str]:
    """Every way `value` violates `schema`, as '$.path: message' strings."""
    fast = _fast_for(schema)
    if fast is not None and fast.is_valid(value):
        return []
    errors = sorted(validator_for(schema).iter_errors(value), key=lambda e: list(e.path))
    return [f"{e.json_path}: {e.message}" for e in errors]


def call_errors(tools: Iterable[ToolSpec] | Mapping[str, ToolSpec], call: ToolCall) -> list[str]:
    """Why `call` is not a valid call of one of `tools` ([] when valid)."""
    by_name = tools if isinstance(tools, Mapping) else {t.name: t for t in tools}
    spec = by_name.get(call.name)
    if spec is None:
        return [f"unknown tool {call.name!r} (shown: {', '.join(sorted(by_name))})"]
    if not isinstance(call.arguments, Mapping):
        return [f"arguments of {call.name} are not an object"]
    return [f"{call.name}: {e}" for e in value_errors(spec.parameters, dict(call.arguments))]
