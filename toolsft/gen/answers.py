"""Stage-3 answers: say a tool result's key facts, and nothing the result does not say."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from toolsft.schema.suite import Suite

_FIELD = re.compile(r"\{([\w.]+)\}")


def display(gen_answer: Mapping[str, Any], field: str, value: Any, lang: str) -> str:
    """How a result value is said (an enum code mapped through `answer.display`)."""
    table = (gen_answer.get("display") or {}).get(field) or {}
    for key in (value, str(value)):
        if key in table:
            entry = table[key]
            return str(entry.get(lang, value)) if isinstance(entry, Mapping) else str(entry)
    if isinstance(value, bool):
        return {"zh": ("是", "否"), "en": ("yes", "no")}[lang][0 if value else 1]
    if isinstance(value, list):
        return ("、" if lang == "zh" else ", ").join(str(v) for v in value)
    return str(value)


def facts_of(suite: Suite, tool: str, result: Mapping[str, Any], lang: str) -> list[str]:
    """The strings a correct answer about `result` must contain."""
    if "error" in result:
        return [str(result.get("message", result["error"]))]
    ans = suite.gen[tool].answer
    return [display(ans, f, result[f], lang) for f in ans.get("facts", []) if f in result]


def render_answer(
    suite: Suite,
    tool: str,
    args: Mapping[str, Any],
    result: Mapping[str, Any],
    lang: str,
    rng: random.Random,
) -> str | None:
    """One answer from the tool's answer templates (error templates for error results)."""
    ans = suite.gen[tool].answer
    table = (ans.get("error") or {}) if "error" in result else ans
    options = table.get(lang) or []
    if not options:
        return None
    values = {**args, **result}
    return "".join(
        [
            text if name is None else display(ans, name, _get(values, name), lang)
            for text, name in _parts(rng.choice(options))
        ]
    )


@lru_cache(maxsize=4096)
def _parts(text: str) -> tuple[tuple[str, str | None], ...]:
    """A template split once into (literal, None) and ("", field) parts."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    for m in _FIELD.finditer(text):
        out.append((text[pos : m.start()], None))
        out.append(("", m.group(1)))
        pos = m.end()
    out.append((text[pos:], None))
    return tuple(out)


def _get(values: Mapping[str, Any], path: str) -> Any:
    if "." not in path:
        return values.get(path, "")
    cur: Any = values
    for part in path.split("."):
        cur = cur.get(part, "") if isinstance(cur, Mapping) else ""
    return cur
