"""The suite's mock executor: a deterministic function of (tool, arguments).

Each tool's `result.mock` in `tools/<name>.yaml` declares how every result field is made.
The RNG is seeded from the SHA-256 of the canonical call, so the same call always returns
the same result: generation, training and evaluation all see one consistent world.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
import string
from collections.abc import Mapping
from typing import Any

from toolsft.types import ToolCall

MOCK_KINDS = (
    "arg",
    "choice",
    "integer",
    "number",
    "date",
    "code",
    "template",
    "const",
    "list",
    "mask",
)
_CODE_TOKEN = re.compile(r"\[([^\]]+)\]\{(\d+)\}|(.)")


def call_seed(call: ToolCall) -> int:
    canon = json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(canon.encode()).digest()[:8], "big")


class Executor:
    """Runs calls on a suite's declarative mocks. `specs` maps tool name -> its `result` block."""

    def __init__(self, specs: Mapping[str, Mapping[str, Any]], cache_size: int = 4096) -> None:
        self._specs = dict(specs)
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_size = cache_size

    def run(self, call: ToolCall) -> dict[str, Any]:
        """The result of `call`. Results are cached and shared: treat them as read-only."""
        key = json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._run(call)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def _run(self, call: ToolCall) -> dict[str, Any]:
        spec = self._specs.get(call.name)
        if spec is None:
            return {"error": "UNKNOWN_TOOL", "message": f"no tool named {call.name}"}
        rng = random.Random(call_seed(call))
        err = spec.get("error")
        # The error draw comes first and from its own stream so adding fields never flips it.
        if err and random.Random(call_seed(call) ^ 0x5EED).random() < float(err.get("rate", 0)):
            return _fill(err["result"], dict(call.arguments))
        return evaluate_fields(spec.get("mock", {}), dict(call.arguments), rng)

    def is_error(self, result: Mapping[str, Any]) -> bool:
        return "error" in result


def evaluate_fields(mock: Mapping[str, Any], args: dict[str, Any], rng: random.Random) -> dict:
    out: dict[str, Any] = {}
    for key, expr in mock.items():
        out[key] = evaluate(expr, args, out, rng)
    return out


def evaluate(
    expr: Any, args: Mapping[str, Any], done: Mapping[str, Any], rng: random.Random
) -> Any:
    if not isinstance(expr, Mapping) or len(expr) == 0:
        return expr
    kind = next(k for k in expr if k in MOCK_KINDS) if any(k in MOCK_KINDS for k in expr) else None
    if kind is None:
        return {k: evaluate(v, args, done, rng) for k, v in expr.items()}
    val = expr[kind]
    if kind == "arg":
        return _lookup(args, val, expr.get("default"))
    if kind == "choice":
        return rng.choice(list(val))
    if kind == "integer":
        return rng.randint(int(val[0]), int(val[1]))
    if kind == "number":
        return round(rng.uniform(float(val[0]), float(val[1])), int(expr.get("decimals", 2)))
    if kind == "date":
        lo, hi = (dt.date.fromisoformat(str(v)) for v in val)
        return (lo + dt.timedelta(days=rng.randint(0, (hi - lo).days))).isoformat()
    if kind == "code":
        return sample_code(str(val), rng)
    if kind == "template":
        return _fill(val, {**args, **done})
    if kind == "const":
        return val
    if kind == "list":
        lo, hi = val.get("n", [1, 3])
        return [evaluate_fields(val["item"], dict(args), rng) for _ in range(rng.randint(lo, hi))]
    return mask(str(_lookup(args, val, "")))


def sample_code(pattern: str, rng: random.Random) -> str:
    """A string for a simple pattern: literals and `[class]{n}` (class like A-Z0-9)."""
    out = []
    for m in _CODE_TOKEN.finditer(pattern.strip("^$")):
        if m.group(3) is not None:
            out.append(m.group(3))
            continue
        chars = _expand_class(m.group(1))
        out.extend(rng.choice(chars) for _ in range(int(m.group(2))))
    return "".join(out)


def _expand_class(cls: str) -> str:
    chars, i = [], 0
    while i < len(cls):
        if i + 2 < len(cls) and cls[i + 1] == "-":
            chars.extend(chr(c) for c in range(ord(cls[i]), ord(cls[i + 2]) + 1))
            i += 3
        else:
            chars.append(cls[i])
            i += 1
    return "".join(chars) or string.digits


def mask(value: str) -> str:
    """All but the last four characters masked, e.g. '**** **** **** 1234'."""
    digits = re.sub(r"\s", "", value)
    return "**** **** **** " + digits[-4:] if len(digits) > 4 else digits


def _lookup(args: Mapping[str, Any], path: str, default: Any) -> Any:
    cur: Any = args
    for part in str(path).split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _fill(obj: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(obj, str):
        return re.sub(r"\{([\w.]+)\}", lambda m: str(_lookup(values, m.group(1), m.group(0))), obj)
    if isinstance(obj, Mapping):
        return {k: _fill(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, values) for v in obj]
    return obj
