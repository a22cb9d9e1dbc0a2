"""Compare emitted calls with gold calls: BFCL's AST rules, and exact match.

BFCL's rules, adapted to gold *calls* (not lists of acceptable values):
- the function name must match;
- every emitted parameter must exist in the tool's schema, every required one be present;
- types must match, except that an int is accepted for a float (bool is never a number);
- strings compare after lower-casing and dropping spaces and the characters `,./-_*^`;
- an optional parameter may be omitted, or emitted when equal to its schema `default`, only
  where the gold call has it at that default (absent = default);
- lists compare element by element, objects key by key (recursively);
- unordered (parallel) calls match in any order with equal counts.
Every function returns reasons (empty = match) so verdicts can say what was wrong.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from toolsft.chat.parse import clip
from toolsft.types import ToolCall, ToolSpec

_STRIP = re.compile(r"[\s,./\-_*^]")
MAX_PERMUTATION_CALLS = 6
"""Above this many parallel calls, matching is greedy instead of over every permutation."""


def normalize_string(s: str) -> str:
    return _STRIP.sub("", s.lower())


def values_match(gold: Any, got: Any, schema: Mapping[str, Any] | None = None) -> bool:
    """BFCL value equality (see module doc)."""
    schema = schema or {}
    if isinstance(gold, bool) or isinstance(got, bool):
        return isinstance(gold, bool) and isinstance(got, bool) and gold == got
    if isinstance(gold, int | float) and isinstance(got, int | float):
        if isinstance(gold, int) and isinstance(got, float) and schema.get("type") == "integer":
            return False
        try:
            return float(gold) == float(got)
        except OverflowError:  # an int beyond a double: Python compares int and float exactly
            return gold == got
    if isinstance(gold, str) and isinstance(got, str):
        return normalize_string(gold) == normalize_string(got)
    if isinstance(gold, list) and isinstance(got, list):
        item = schema.get("items") or {}
        return len(gold) == len(got) and all(
            values_match(a, b, item) for a, b in zip(gold, got, strict=True)
        )
    if isinstance(gold, Mapping) and isinstance(got, Mapping):
        return not args_errors(gold, got, schema)
    return gold == got


def args_errors(
    gold: Mapping[str, Any],
    got: Mapping[str, Any],
    schema: Mapping[str, Any] | None = None,
    where: str = "",
) -> list[str]:
    """Why `got` arguments differ from `gold` under BFCL rules ([] when they match)."""
    schema = schema or {}
    props = schema.get("properties") or {}
    errors = []
    for key in sorted(set(gold) | set(got)):
        sub = props.get(key) or {}
        path = f"{where}{key}"
        if key in got and props and key not in props:
            errors.append(f"{path}: not a parameter")
        elif key not in got:
            if not ("default" in sub and values_match(sub["default"], gold[key], sub)):
                errors.append(f"{path}: missing (expected {_short(gold[key])})")
        elif key not in gold:
            if not ("default" in sub and values_match(sub["default"], got[key], sub)):
                errors.append(f"{path}: unexpected (got {_short(got[key])})")
        elif not values_match(gold[key], got[key], sub):
            errors.append(f"{path}: expected {_short(gold[key])}, got {_short(got[key])}")
    return errors


def call_errors(gold: ToolCall, got: ToolCall, tools: Mapping[str, ToolSpec]) -> list[str]:
    if gold.name != got.name:
        return [f"called {clip(got.name, 40)} instead of {gold.name}"]
    spec = tools.get(gold.name)
    schema = spec.parameters if spec else {}
    if not isinstance(got.arguments, Mapping):
        return [f"{clip(got.name, 40)}: arguments are not an object"]
    return [f"{got.name}.{e}" for e in args_errors(gold.arguments, got.arguments, schema)]


def calls_errors(
    gold: Sequence[ToolCall],
    got: Sequence[ToolCall],
    tools: Mapping[str, ToolSpec],
    ordered: bool = False,
) -> list[str]:
    """Why the emitted calls do not match the gold calls (BFCL AST); [] when they do."""
    if len(gold) != len(got):
        return [f"{len(got)} call(s) emitted, {len(gold)} expected"]
    if ordered or len(gold) == 1:
        return [e for g, c in zip(gold, got, strict=True) for e in call_errors(g, c, tools)]
    return _unordered_errors(list(gold), list(got), tools)


def _unordered_errors(
    gold: list[ToolCall], got: list[ToolCall], tools: Mapping[str, ToolSpec]
) -> list[str]:
    if len(got) <= MAX_PERMUTATION_CALLS:
        best: list[str] | None = None
        for perm in itertools.permutations(got):
            errs = [e for g, c in zip(gold, perm, strict=True) for e in call_errors(g, c, tools)]
            if not errs:
                return []
            if best is None or len(errs) < len(best):
                best = errs
        return best or []
    remaining = list(got)
    errors = []
    for g in gold:
        hit = next((c for c in remaining if not call_errors(g, c, tools)), None)
        if hit is None:
            errors.append(f"no emitted call matches {g.name}({_short(dict(g.arguments))})")
            hit = next((c for c in remaining if c.name == g.name), remaining[0])
        remaining.remove(hit)
    return errors


def canonical(call: ToolCall) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)


def calls_exact(gold: Sequence[ToolCall], got: Sequence[ToolCall], ordered: bool = False) -> bool:
    """Exact match: same names and identical arguments (JSON-equal), order as required."""
    a, b = [canonical(c) for c in gold], [canonical(c) for c in got]
    return a == b if ordered else sorted(a) == sorted(b)


def names_match(gold: Sequence[ToolCall], got: Sequence[ToolCall]) -> bool:
    """Tool selection: the same multiset of tool names."""
    return sorted(c.name for c in gold) == sorted(c.name for c in got)


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # a value no parser of ours produced
        text = repr(value)
    return clip(text, limit)
