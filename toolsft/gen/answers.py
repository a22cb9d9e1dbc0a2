"""Stage-3 answers: say a tool result's key facts, and nothing the result does not say."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from toolsft.schema.suite import Suite


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
    if "error" in result:
        options = list(((ans.get("error") or {}).get(lang)) or [])
    else:
        options = list(ans.get(lang) or [])
    if not options:
        return None
    text = rng.choice(options)
    values = {**{k: v for k, v in args.items()}, **result}
    return re.sub(
        r"\{([\w.]+)\}",
        lambda m: display(ans, m.group(1), _get(values, m.group(1)), lang),
        text,
    )


def _get(values: Mapping[str, Any], path: str) -> Any:
    cur: Any = values
    for part in path.split("."):
        cur = cur.get(part, "") if isinstance(cur, Mapping) else ""
    return cur
