"""A suite compiled once for generation: parsed templates, slot samplers and tool tables.

Generation used to re-derive these on every row (classify each template, resolve each slot's
schema and pool, find tools by a linear scan), about a third of its time. A plan is built on
first use and kept as long as its suite object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolsft.gen.sample import SlotSampler
from toolsft.gen.swap import Vocab, suite_vocab
from toolsft.schema.suite import Suite, ToolGen
from toolsft.schema.templates import Segment, parse_template
from toolsft.types import ToolSpec

STAGE_KINDS: dict[int, dict[str, float]] = {
    1: {"select": 0.55, "multi": 0.15, "no_tool": 0.30},
    2: {"fill": 0.55, "clarify": 0.15, "parallel": 0.15, "confirm_ask": 0.15},
    3: {"result": 0.75, "tool_error": 0.25},
}


@dataclass(frozen=True)
class TemplatePlan:
    """One request template, flattened: each segment is (group index or -1, text, slot)."""

    tid: str
    source: str
    segments: tuple[tuple[int, str, str | None], ...]
    required: tuple[str, ...]
    """Slots outside optional groups."""
    groups: tuple[tuple[str, ...], ...]
    """Slots of each optional group."""
    may_miss: bool
    """Whether dropping optional groups can leave a required parameter out."""

    def render(self, keep: list[bool], surfaces: dict[str, str]) -> str:
        return "".join(
            [
                surfaces[slot] if slot else text
                for g, text, slot in self.segments
                if g < 0 or keep[g]
            ]
        ).strip()


@dataclass(frozen=True)
class ToolPlan:
    name: str
    spec: ToolSpec
    gen: ToolGen
    required: tuple[str, ...]
    sampler: SlotSampler
    templates: dict[tuple[str, bool, bool], tuple[TemplatePlan, ...]]
    """(lang, holdout, complete) -> the templates a request of that kind picks from."""
    neighbours: tuple[tuple[str, ...], tuple[str, ...]]
    """(this tool and its confusable tools, every other tool): what a row about it shows."""


@dataclass(frozen=True)
class SuitePlan:
    names: tuple[str, ...]
    tools: dict[str, ToolPlan]
    specs: dict[str, ToolSpec]
    kinds: dict[int, tuple[tuple[str, ...], tuple[float, ...]]]
    """Stage -> (kinds, cumulative weights), less the kinds this suite cannot produce."""
    error_tools: tuple[str, ...]
    confirm_tools: tuple[str, ...]


_PLANS: dict[int, tuple[Suite, SuitePlan]] = {}


def plan_for(suite: Suite) -> SuitePlan:
    """The suite's plan (a Suite holds dicts, so it is cached by identity, not by hash)."""
    hit = _PLANS.get(id(suite))
    if hit is None or hit[0] is not suite:
        if len(_PLANS) > 64:
            _PLANS.clear()
        hit = _PLANS[id(suite)] = (suite, _compile(suite))
    return hit[1]


def _compile(suite: Suite) -> SuitePlan:
    pools = suite.config.get("pools") or {}
    names = tuple(t.name for t in suite.tools)
    texts = [t for g in suite.gen.values() for ts in g.templates.values() for t in ts]
    vocab = suite_vocab(pools, texts)
    tools = {t.name: _tool_plan(t, suite.gen[t.name], pools, names, vocab) for t in suite.tools}
    error_tools = tuple(n for n in tools if suite.gen[n].result.get("error"))
    kinds = {}
    for stage, table in STAGE_KINDS.items():
        table = dict(table)
        if not suite.policy.confirm_required:
            table.pop("confirm_ask", None)
        if not error_tools:
            table.pop("tool_error", None)
        total, cum = 0.0, []
        for w in table.values():
            total += w
            cum.append(total)
        kinds[stage] = (tuple(table), tuple(cum))
    return SuitePlan(
        names=names,
        tools=tools,
        specs={t.name: t for t in suite.tools},
        kinds=kinds,
        error_tools=error_tools,
        confirm_tools=tuple(sorted(suite.policy.confirm_required)),
    )


def _tool_plan(
    spec: ToolSpec, gen: ToolGen, pools: dict[str, Any], names: tuple[str, ...], vocab: Vocab
) -> ToolPlan:
    required = tuple(spec.parameters.get("required", []))
    templates: dict[tuple[str, bool, bool], tuple[TemplatePlan, ...]] = {}
    for lang in ("zh", "en"):
        for holdout in (False, True):
            plans = [
                _template_plan(tid, text, required) for tid, text in _texts(gen, lang, holdout)
            ]
            for complete in (True, False):
                templates[(lang, holdout, complete)] = tuple(
                    p for p in plans if _covers(p, required) == complete
                )
    sampler = SlotSampler(spec.parameters, gen.slots, pools, vocab)
    head = tuple(dict.fromkeys((spec.name, *gen.confusable)))
    rest = tuple(n for n in names if n not in head)
    return ToolPlan(spec.name, spec, gen, required, sampler, templates, (head, rest))


def _texts(gen: ToolGen, lang: str, holdout: bool) -> list[tuple[str, str]]:
    """(template id, text) pairs of the split's template set."""
    if holdout and gen.holdout.get(lang):
        return [(f"{gen.name}:{lang}:h{i}", t) for i, t in enumerate(gen.holdout[lang])]
    return [(f"{gen.name}:{lang}:{i}", t) for i, t in enumerate(gen.templates.get(lang, ()))]


def _template_plan(tid: str, text: str, required: tuple[str, ...]) -> TemplatePlan:
    tpl = parse_template(text)
    segments: list[tuple[int, str, str | None]] = []
    groups: list[tuple[str, ...]] = []
    for part in tpl.parts:
        if isinstance(part, Segment):
            segments.append((-1, part.text, part.slot))
            continue
        segments.extend((len(groups), s.text, s.slot) for s in part)
        groups.append(tuple(s.slot for s in part if s.slot))
    req = tuple(tpl.required_slots)
    always = {s.split(".")[0] for s in req}
    return TemplatePlan(
        tid, text, tuple(segments), req, tuple(groups), any(r not in always for r in required)
    )


def _covers(p: TemplatePlan, required: tuple[str, ...]) -> bool:
    """Whether keeping every optional group names every required parameter (a complete call)."""
    have = {s.split(".")[0] for s in p.required + tuple(s for g in p.groups for s in g)}
    return all(r in have for r in required)
