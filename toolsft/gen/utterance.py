"""Turn one tool's template + drawn values into a request text and its gold call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from toolsft.gen.plan import plan_for
from toolsft.gen.sample import Context, Draw
from toolsft.schema.suite import Suite
from toolsft.types import ToolCall


@dataclass(frozen=True)
class Utterance:
    tool: str
    text: str
    call: ToolCall | None
    """None when the template leaves out a required parameter (a clarify request)."""
    missing: tuple[str, ...]
    template_id: str
    template: str
    draw: Draw


def make_utterance(
    suite: Suite, tool: str, ctx: Context, complete: bool = True
) -> Utterance | None:
    """A request for `tool`; `complete=False` asks for one that misses a required value."""
    tp = plan_for(suite).tools[tool]
    pool = tp.templates.get((ctx.lang, ctx.holdout, complete))
    if not pool:
        return None
    rng = ctx.rng
    tpl = rng.choice(pool)
    keep = [rng.random() < 0.5 for _ in tpl.groups]
    slots = list(tpl.required)
    for group, kept in zip(tpl.groups, keep, strict=True):
        if kept:
            slots.extend(group)
    draw = tp.sampler.draw(slots, ctx)
    text = tpl.render(keep, draw.surfaces)
    missing: tuple[str, ...] = ()
    if tpl.may_miss:  # only then can dropped groups have taken a required parameter along
        have = {s.split(".")[0] for s in slots}
        missing = tuple(r for r in tp.required if r not in have)
    # Arguments in the schema's property order: constrained decoding emits that order, so
    # training on it keeps the model on the distribution it is decoded with.
    call = None if missing else ToolCall(tool, schema_ordered(draw.args, tp.spec.parameters))
    return Utterance(tool, text, call, missing, tpl.tid, tpl.source, draw)


def schema_ordered(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` with object keys in the order of the schema's `properties`, recursively."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        keys = [k for k in props if k in value] + [k for k in value if k not in props]
        return {k: schema_ordered(value[k], props.get(k) or {}) for k in keys}
    if isinstance(value, list):
        return [schema_ordered(v, schema.get("items") or {}) for v in value]
    return value
