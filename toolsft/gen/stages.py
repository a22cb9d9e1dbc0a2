"""The three stage generators. Each builds one conversation of a given kind from a suite.

Stage 1 teaches which tool (distractors, no-tool requests, two-tool requests); stage 2 how to
fill parameters (types, optional groups, dates, number words, clarifying questions, parallel
calls, confirmation first); stage 3 how to answer from a tool result (and from tool errors).
"""

from __future__ import annotations

import datetime as dt
import random
from bisect import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from toolsft.gen.answers import facts_of, render_answer
from toolsft.gen.augment import lower_first, maybe_context, maybe_paraphrase, maybe_typo
from toolsft.gen.plan import plan_for
from toolsft.gen.sample import Context
from toolsft.gen.utterance import Utterance, make_utterance
from toolsft.gen.words import say_today
from toolsft.schema.suite import Suite
from toolsft.types import Expected, ToolCall, dumps


class Skip(Exception):
    """This row cannot be built from this suite (e.g. no tool has an error mock): try again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Draft:
    """A conversation under construction, with everything verification needs to know."""

    stage: int
    kind: str
    lang: str
    messages: list[dict[str, Any]]
    shown: list[str]
    expected: Expected
    prompt_len: int
    utterances: list[Utterance] = field(default_factory=list)
    augmentations: list[str] = field(default_factory=list)
    today: dt.date = dt.date(2026, 1, 1)


@dataclass(frozen=True)
class StageConfig:
    max_tools: int = 0
    """Tools shown in stage-1 rows (0: all); the target's confusable tools always come first."""
    noise: float = 0.15
    paraphrase: float = 0.25
    context: float = 0.15
    two_call: float = 0.0
    """Share of stage-3 rows that answer from two results (a multi or parallel request)."""
    no_tool_share: float = 0.0
    """Share of stage-2 and stage-3 rows that no tool fits (stage 1 has its own)."""
    multi_share: float = 0.0
    """Share of stage-1 select rows that ask for two tools instead, and of stage-2 fill rows
    that ask for one tool twice."""


def build(suite: Suite, stage: int, kind: str, ctx: Context, cfg: StageConfig) -> Draft:
    if stage == 3 and kind in _TWO_CALL:
        draft = _answered(suite, ctx, _BUILDERS[kind](suite, ctx, cfg))
    else:
        draft = _BUILDERS[kind](suite, ctx, cfg)
    draft.stage, draft.kind = stage, kind
    return draft


def _system(suite: Suite, ctx: Context) -> dict[str, Any]:
    base = (suite.config.get("system") or {}).get(ctx.lang, "")
    return {"role": "system", "content": _system_text(base, ctx.today, ctx.lang)}


@lru_cache(maxsize=4096)
def _system_text(base: str, today: dt.date, lang: str) -> str:
    # A year of dates per language and suite: formatted once each.
    return f"{base}\n{say_today(today, lang)}".strip()


def _user_text(
    u_text: str, ctx: Context, cfg: StageConfig, augs: list[str], us: Sequence[Utterance] = ()
) -> str:
    # A generator: the surfaces are only read when an English typo is actually made.
    protect = (s for u in us for s in u.draw.surfaces.values())
    text = maybe_typo(u_text, ctx, cfg.noise, augs, protect)
    return maybe_paraphrase(text, ctx, cfg.paraphrase, augs)


def _shown(suite: Suite, targets: list[str], ctx: Context, limit: int) -> list[str]:
    """The targets, then their confusable tools, then random others, up to `limit`; shuffled.
    A context with a fixed `order` shows every tool in that order instead."""
    if ctx.order:
        return list(ctx.order)
    plan = plan_for(suite)
    if len(targets) == 1:
        head, rest = plan.tools[targets[0]].neighbours
    else:
        confusable = [c for t in targets for c in plan.tools[t].gen.confusable]
        head = tuple(dict.fromkeys(targets + confusable))
        rest = tuple(n for n in plan.names if n not in head)
    cap = max(limit, len(targets)) if limit else len(plan.names)
    picked = list(head[:cap])
    more = cap - len(picked)
    if more > 0:  # which others join is random; their order is settled by the shuffle below
        picked.extend(rest if more >= len(rest) else ctx.rng.sample(rest, more))
    ctx.rng.shuffle(picked)
    return picked


def _utter(
    suite: Suite,
    ctx: Context,
    tool: str | None = None,
    complete: bool = True,
    pool: list[str] | None = None,
) -> Utterance:
    """A request for `tool`, or for a random tool of `pool` (default: all) that has one."""
    tools = [tool] if tool else list(pool or plan_for(suite).names)
    while tools:
        name = tools.pop(ctx.rng.randrange(len(tools))) if len(tools) > 1 else tools.pop()
        u = make_utterance(suite, name, ctx, complete=complete)
        if u is not None and (u.call is not None) == complete:
            return u
    raise Skip("no_template" if complete else "no_incomplete_template")


def _call_turn(calls: list[ToolCall]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [c.to_openai(f"call_{i}") for i, c in enumerate(calls)],
    }


def _with_request(
    suite: Suite, ctx: Context, cfg: StageConfig, text: str, calls: list[ToolCall], augs: list[str]
) -> tuple[list[dict[str, Any]], int]:
    """System, optional earlier turns, the user request, and a confirmation exchange if needed."""
    msgs = [_system(suite, ctx)] + maybe_context(suite, ctx, cfg.context, augs)
    msgs.append({"role": "user", "content": text})
    if any(c.name in suite.policy.confirm_required for c in calls):
        ask = suite.policy.confirm_ask.get(ctx.lang, "{summary}")
        msgs.append({"role": "assistant", "content": ask.replace("{summary}", text)})
        yes = suite.policy.confirm_yes.get(ctx.lang) or ("yes",)
        msgs.append({"role": "user", "content": ctx.rng.choice(list(yes))})
        augs.append("confirmed")
    return msgs, len(msgs)


def _facts(suite: Suite, calls: list[ToolCall], lang: str) -> tuple[str, ...]:
    out: list[str] = []
    for c in calls:
        out.extend(facts_of(suite, c.name, suite.executor.run(c), lang))
    return tuple(out)


def _calls_draft(
    suite: Suite,
    ctx: Context,
    cfg: StageConfig,
    us: list[Utterance],
    text: str,
    shown: list[str],
    ordered: bool = False,
) -> Draft:
    augs: list[str] = []
    calls = [u.call for u in us if u.call is not None]
    text = _user_text(text, ctx, cfg, augs, us)
    msgs, plen = _with_request(suite, ctx, cfg, text, calls, augs)
    msgs.append(_call_turn(calls))
    exp = Expected(tuple(calls), _facts(suite, calls, ctx.lang), None, ordered)
    return Draft(0, "", ctx.lang, msgs, shown, exp, plen, us, augs, ctx.today)


def _reply_draft(
    suite: Suite,
    ctx: Context,
    cfg: StageConfig,
    text: str,
    reply: str,
    shown: list[str],
    us: list[Utterance],
) -> Draft:
    augs: list[str] = []
    text = _user_text(text, ctx, cfg, augs, us)
    msgs = [_system(suite, ctx)] + maybe_context(suite, ctx, cfg.context, augs)
    msgs.append({"role": "user", "content": text})
    plen = len(msgs)
    msgs.append({"role": "assistant", "content": reply})
    exp = Expected((), (), reply, False)
    return Draft(0, "", ctx.lang, msgs, shown, exp, plen, us, augs, ctx.today)


def _select(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    u = _utter(suite, ctx)
    return _calls_draft(suite, ctx, cfg, [u], u.text, _shown(suite, [u.tool], ctx, cfg.max_tools))


def _multi(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    first = _utter(suite, ctx)
    second = _utter(suite, ctx, pool=[t.name for t in suite.tools if t.name != first.tool])
    text = _join(suite, ctx, first.text, second.text)
    shown = _shown(suite, [first.tool, second.tool], ctx, cfg.max_tools)
    return _calls_draft(suite, ctx, cfg, [first, second], text, shown)


def _parallel(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    first = _utter(suite, ctx)
    second = _utter(suite, ctx, tool=first.tool)
    for _ in range(3):  # two phrasings read more naturally than one template said twice
        if second.template_id != first.template_id:
            break
        second = _utter(suite, ctx, tool=first.tool)
    if second.call == first.call:
        raise Skip("parallel_duplicate")
    text = _join(suite, ctx, first.text, second.text)
    return _calls_draft(suite, ctx, cfg, [first, second], text, _narrow(suite, [first.tool], ctx))


def _fill(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    u = _utter(suite, ctx)
    return _calls_draft(suite, ctx, cfg, [u], u.text, _narrow(suite, [u.tool], ctx))


def _narrow(suite: Suite, targets: list[str], ctx: Context, extra: int = 2) -> list[str]:
    """Stage 2/3 rows show the target and a few confusable tools: short prompts."""
    return _shown(suite, targets, ctx, len(targets) + ctx.rng.randint(0, extra))


def _no_tool(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    irr = suite.config.get("irrelevant") or {}
    pool = (irr.get("holdout") or {}).get(ctx.lang) if ctx.holdout else None
    requests = pool or irr.get(ctx.lang) or []
    replies = (suite.config.get("no_tool_reply") or {}).get(ctx.lang) or []
    if not requests or not replies:
        raise Skip("no_irrelevant_requests")
    shown = _shown(suite, [], ctx, cfg.max_tools)
    draft = _reply_draft(
        suite, ctx, cfg, ctx.rng.choice(requests), ctx.rng.choice(replies), shown, []
    )
    draft.augmentations.append("irrelevant:holdout" if pool else "irrelevant")
    return draft


def _clarify(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    u = _utter(suite, ctx, complete=False)
    missing = u.missing[0]
    ask = suite.gen[u.tool].ask.get(missing) or {}
    question = ask.get(ctx.lang) if isinstance(ask, Mapping) else None
    if not question:
        desc = plan_for(suite).specs[u.tool].parameters.get("properties", {}).get(missing) or {}
        what = desc.get("description") or missing
        question = f"请问{what}是什么？" if ctx.lang == "zh" else f"Could you tell me the {what}?"
    return _reply_draft(suite, ctx, cfg, u.text, question, _narrow(suite, [u.tool], ctx), [u])


def _confirm_ask(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    tools = plan_for(suite).confirm_tools
    if not tools:
        raise Skip("no_confirm_tool")
    u = _utter(suite, ctx, tool=ctx.rng.choice(tools))
    ask = suite.policy.confirm_ask.get(ctx.lang, "{summary}")
    augs: list[str] = []
    text = _user_text(u.text, ctx, cfg, augs, [u])
    # The question quotes the request as the user wrote it, so augment it first and only once.
    plain = _plain(cfg)
    draft = _reply_draft(
        suite, ctx, plain, text, ask.replace("{summary}", text), _narrow(suite, [u.tool], ctx), [u]
    )
    draft.augmentations.extend(augs)
    return draft


@lru_cache(maxsize=64)
def _plain(cfg: StageConfig) -> StageConfig:
    return replace(cfg, noise=0.0, paraphrase=0.0)


def _result(suite: Suite, ctx: Context, cfg: StageConfig, want_error: bool = False) -> Draft:
    plan = plan_for(suite)
    tools = plan.error_tools if want_error else plan.names
    if not tools:
        raise Skip("no_error_mock")
    for _ in range(40):
        u = _utter(suite, ctx, tool=ctx.rng.choice(tools))
        assert u.call is not None
        # An error row tries ~1/rate calls before one fails: `fails` rejects the others
        # without evaluating their mocks.
        if want_error and not suite.executor.fails(u.call):
            continue
        result = suite.executor.run(u.call)
        if ("error" in result) == want_error:
            return _answer_draft(suite, ctx, cfg, u, result)
    raise Skip("no_error_result" if want_error else "no_ok_result")


def _tool_error(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    return _result(suite, ctx, cfg, want_error=True)


def _answer_draft(
    suite: Suite, ctx: Context, cfg: StageConfig, u: Utterance, result: Mapping[str, Any]
) -> Draft:
    assert u.call is not None
    draft = _calls_draft(suite, ctx, cfg, [u], u.text, _narrow(suite, [u.tool], ctx, extra=1))
    draft.messages.append(
        {"role": "tool", "tool_call_id": "call_0", "name": u.tool, "content": dumps(result)}
    )
    answer = render_answer(suite, u.tool, u.call.arguments, result, ctx.lang, ctx.rng)
    if answer is None:
        raise Skip("no_answer_template")
    draft.messages.append({"role": "assistant", "content": answer})
    # One call, so the facts `_calls_draft` collected are this result's facts.
    draft.expected = Expected(draft.expected.calls, draft.expected.facts, answer, False)
    return draft


def _answered(suite: Suite, ctx: Context, draft: Draft) -> Draft:
    """A multi or parallel call turn carried on to the answer: each call's result, then one
    answer that says every result's facts, as a multi or parallel episode ends in evaluation.
    Without these rows no stage ever shows an answer to two results."""
    calls = draft.expected.calls
    parts = []
    for i, call in enumerate(calls):
        result = suite.executor.run(call)
        draft.messages.append(
            {
                "role": "tool",
                "tool_call_id": f"call_{i}",
                "name": call.name,
                "content": dumps(result),
            }
        )
        part = render_answer(suite, call.name, call.arguments, result, ctx.lang, ctx.rng)
        if part is None:
            raise Skip("no_answer_template")
        parts.append(part)
    joint = "另外，" if ctx.lang == "zh" else " Also, "
    answer = parts[0] + "".join(
        joint + (lower_first(p) if ctx.lang == "en" else p) for p in parts[1:]
    )
    draft.messages.append({"role": "assistant", "content": answer})
    draft.expected = Expected(calls, draft.expected.facts, answer, False)
    return draft


def _join(suite: Suite, ctx: Context, a: str, b: str) -> str:
    default = {"zh": ["，另外"], "en": [", and also "]}
    conns = (suite.config.get("connectors") or default).get(ctx.lang) or default[ctx.lang]
    a = a.rstrip("。.?？!！")
    if ctx.lang == "en" and b:
        b = lower_first(b)
    return a + ctx.rng.choice(list(conns)) + b


def pick_suite_kind(
    suite: Suite,
    stage: int,
    rng: random.Random,
    two_call: float = 0.0,
    no_tool: float = 0.0,
    multi: float = 0.0,
) -> str:
    """A kind drawn from the stage's mix (STAGE_KINDS), less the kinds this suite cannot
    produce; the cumulative table is built once per suite. In stages 2-3 a `no_tool` share of
    rows are requests no tool fits; in stage 3 a `two_call` share are multi or parallel
    requests answered from both results; in stages 1-2 a `multi` share of the one-call rows
    (select, fill) become two-call requests (two tools in stage 1, one tool twice in stage 2).
    A share of 0 draws nothing, so data made without it stays byte-identical."""
    if stage > 1 and no_tool > 0 and rng.random() < no_tool:
        return "no_tool"
    if stage == 3 and two_call > 0 and rng.random() < two_call:
        return _TWO_CALL[0] if rng.random() < 0.5 else _TWO_CALL[1]
    kinds, cum = plan_for(suite).kinds[stage]
    # What `rng.choices(kinds, cum_weights=cum)` does, without rebuilding its arguments.
    kind = kinds[bisect(cum, rng.random() * cum[-1], 0, len(cum) - 1)]
    # From the one-call rows only: taking it from the whole mix cost stage 1 a third of its
    # "no tool fits" rows, and the refusals with them (docs/experiments.md).
    two = _TWO_OF.get(kind) if multi > 0 else None
    return two if two in kinds and rng.random() < multi else kind


_TWO_CALL = ("multi", "parallel")
_TWO_OF = {"select": "multi", "fill": "parallel"}
"""The two-call kind a one-call kind becomes under `multi_share` (select: stage 1, fill: 2)."""

_BUILDERS = {
    "select": _select,
    "multi": _multi,
    "no_tool": _no_tool,
    "fill": _fill,
    "clarify": _clarify,
    "parallel": _parallel,
    "confirm_ask": _confirm_ask,
    "result": _result,
    "tool_error": _tool_error,
}
