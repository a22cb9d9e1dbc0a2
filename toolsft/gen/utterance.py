"""Turn one tool's template + drawn values into a request text and its gold call."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from toolsft.gen.sample import Context, Draw, SlotSampler
from toolsft.schema.suite import Suite, ToolGen
from toolsft.schema.templates import Segment, Template, parse_template
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


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Template:
    return parse_template(text)


def templates_for(gen: ToolGen, lang: str, holdout: bool) -> list[tuple[str, str]]:
    """(template id, text) pairs of the split's template set."""
    if holdout and gen.holdout.get(lang):
        return [(f"{gen.name}:{lang}:h{i}", t) for i, t in enumerate(gen.holdout[lang])]
    return [(f"{gen.name}:{lang}:{i}", t) for i, t in enumerate(gen.templates.get(lang, ()))]


def missing_required(gen_required: list[str], tpl: Template) -> tuple[str, ...]:
    have = {s.split(".")[0] for s in tpl.required_slots}
    for group in tpl.groups:
        have |= {s.slot.split(".")[0] for s in group if s.slot}
    return tuple(r for r in gen_required if r not in have)


def make_utterance(
    suite: Suite, tool: str, ctx: Context, complete: bool = True
) -> Utterance | None:
    """A request for `tool`; `complete=False` asks for one that misses a required value."""
    gen = suite.gen[tool]
    spec = suite.tool(tool)
    required = list(spec.parameters.get("required", []))
    pool = []
    for tid, text in templates_for(gen, ctx.lang, ctx.holdout):
        tpl = _parsed(text)
        if bool(missing_required(required, tpl)) != (not complete):
            continue
        pool.append((tid, tpl))
    if not pool:
        return None
    tid, tpl = ctx.rng.choice(pool)
    keep = [ctx.rng.random() < 0.5 for _ in tpl.groups]
    slots = list(tpl.required_slots)
    for group, kept in zip(tpl.groups, keep, strict=True):
        if kept:
            slots.extend(s.slot for s in group if s.slot)
    sampler = SlotSampler(spec.parameters, gen.slots, suite.config.get("pools") or {})
    draw = sampler.draw(slots, ctx)
    text = _render(tpl, keep, draw.surfaces)
    have = {s.split(".")[0] for s in slots}
    missing = tuple(r for r in required if r not in have)
    call = None if missing else ToolCall(tool, draw.args)
    return Utterance(tool, text, call, missing, tid, tpl.source, draw)


def _render(tpl: Template, keep: list[bool], surfaces: dict[str, str]) -> str:
    out: list[str] = []
    groups = iter(keep)
    for part in tpl.parts:
        if isinstance(part, tuple):
            if next(groups):
                out.extend(_seg(s, surfaces) for s in part)
        else:
            out.append(_seg(part, surfaces))
    return "".join(out).strip()


def _seg(seg: Segment, surfaces: dict[str, str]) -> str:
    return surfaces[seg.slot] if seg.slot else seg.text
