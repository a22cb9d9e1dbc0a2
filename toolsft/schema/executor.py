"""The suite's mock executor: a deterministic function of (tool, arguments).

Each tool's `result.mock` in `tools/<name>.yaml` declares how every result field is made.
The RNG is seeded from the SHA-256 of the canonical call, so the same call always returns
the same result: generation, training and evaluation all see one consistent world.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
import string
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from toolsft.types import ToolCall, canonical

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


def call_key(call: ToolCall) -> str:
    """The canonical JSON of a call: the cache key and what the RNG seed is hashed from."""
    return canonical([call.name, call.arguments])


class Executor:
    """Runs calls on a suite's declarative mocks. `specs` maps tool name -> its `result` block."""

    def __init__(self, specs: Mapping[str, Mapping[str, Any]], cache_size: int = 4096) -> None:
        self._specs = dict(specs)
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_size = cache_size

    def run(self, call: ToolCall) -> dict[str, Any]:
        """The result of `call`. Results are cached and shared: treat them as read-only."""
        key = call_key(call)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._run(call, key)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def fails(self, call: ToolCall) -> bool:
        """Whether `run(call)` returns an error, without evaluating the mock: a row that needs
        a tool error tries one call after another until one fails."""
        key = call_key(call)
        hit = self._cache.get(key)
        if hit is not None:
            return "error" in hit
        spec = self._specs.get(call.name)
        return spec is None or _draws_error(spec, _seed(key))

    def _run(self, call: ToolCall, key: str) -> dict[str, Any]:
        spec = self._specs.get(call.name)
        if spec is None:
            return {"error": "UNKNOWN_TOOL", "message": f"no tool named {call.name}"}
        seed = _seed(key)
        if _draws_error(spec, seed):
            return _fill(spec["error"]["result"], dict(call.arguments))
        return evaluate_fields(spec.get("mock", {}), dict(call.arguments), random.Random(seed))


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _draws_error(spec: Mapping[str, Any], seed: int) -> bool:
    # The error draw comes first and from its own stream so adding fields never flips it.
    err = spec.get("error")
    if not err:
        return False
    return random.Random(seed ^ 0x5EED).random() < float(err.get("rate", 0))


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
    kind = next((k for k in expr if k in MOCK_KINDS), None)
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
    out: list[str] = []
    for text, n in code_parts(pattern):
        # One `choice` per character, as ever: mock results must not change between versions.
        out.extend([rng.choice(text) for _ in range(n)] if n else text)
    return "".join(out)


@lru_cache(maxsize=1024)
def code_parts(pattern: str) -> tuple[tuple[str, int], ...]:
    """(literal, 0) and (characters of a class, count) parts; parsed once per pattern."""
    parts = []
    for m in _CODE_TOKEN.finditer(pattern.strip("^$")):
        if m.group(3) is not None:
            parts.append((m.group(3), 0))
        elif int(m.group(2)) > 0:  # a class said zero times is nothing, not a literal
            parts.append((_expand_class(m.group(1)), int(m.group(2))))
    return tuple(parts)


def _expand_class(cls: str) -> str:
    chars: list[str] = []
    i = 0
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
