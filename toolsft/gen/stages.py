"""The three stage generators. Each builds one conversation of a given kind from a suite.

Stage 1 teaches which tool (distractors, no-tool requests, two-tool requests); stage 2 how to
fill parameters (types, optional groups, dates, number words, clarifying questions, parallel
calls, confirmation first); stage 3 how to answer from a tool result (and from tool errors).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from toolsft.gen.answers import facts_of, render_answer
from toolsft.gen.augment import maybe_context, maybe_paraphrase, maybe_typo
from toolsft.gen.sample import Context
from toolsft.gen.utterance import Utterance, make_utterance
from toolsft.gen.words import say_today
from toolsft.schema.suite import Suite
from toolsft.types import Expected, ToolCall

STAGE_KINDS: dict[int, dict[str, float]] = {
    1: {"select": 0.55, "multi": 0.15, "no_tool": 0.30},
    2: {"fill": 0.55, "clarify": 0.15, "parallel": 0.15, "confirm_ask": 0.15},
    3: {"result": 0.75, "tool_error": 0.25},
}


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


def build(suite: Suite, stage: int, kind: str, ctx: Context, cfg: StageConfig) -> Draft:
    builder = {
        "select": _select,
        "multi": _multi,
        "no_tool": _no_tool,
        "fill": _fill,
        "clarify": _clarify,
        "parallel": _parallel,
        "confirm_ask": _confirm_ask,
        "result": _result,
        "tool_error": _tool_error,
    }[kind]
    draft = builder(suite, ctx, cfg)
    draft.stage, draft.kind = stage, kind
    return draft


def _system(suite: Suite, ctx: Context) -> dict[str, Any]:
    base = (suite.config.get("system") or {}).get(ctx.lang, "")
    return {"role": "system", "content": f"{base}\n{say_today(ctx.today, ctx.lang)}".strip()}


def _user_text(
    u_text: str, ctx: Context, cfg: StageConfig, augs: list[str], us: list[Utterance] = ()
) -> str:  # type: ignore[assignment]
    protect = [s for u in us for s in u.draw.surfaces.values()]
    text = maybe_typo(u_text, ctx, cfg.noise, augs, protect)
    return maybe_paraphrase(text, ctx, cfg.paraphrase, augs)


def _shown(suite: Suite, targets: list[str], ctx: Context, limit: int) -> list[str]:
    names = [t.name for t in suite.tools]
    confusable = [c for t in targets for c in suite.gen[t].confusable if c not in targets]
    rest = [n for n in names if n not in targets and n not in confusable]
    ctx.rng.shuffle(rest)
    picked = list(dict.fromkeys(targets + confusable + rest))
    if limit:
        picked = picked[: max(limit, len(targets))]
    ctx.rng.shuffle(picked)
    return picked


def _utter(
    suite: Suite,
    ctx: Context,
    tool: str | None = None,
    complete: bool = True,
    pool: list[str] | None = None,
) -> Utterance:
    tools = [tool] if tool else list(pool or [t.name for t in suite.tools])
    ctx.rng.shuffle(tools)
    for name in tools:
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
        desc = suite.tool(u.tool).parameters.get("properties", {}).get(missing) or {}
        what = desc.get("description") or missing
        question = f"请问{what}是什么？" if ctx.lang == "zh" else f"Could you tell me the {what}?"
    return _reply_draft(suite, ctx, cfg, u.text, question, _narrow(suite, [u.tool], ctx), [u])


def _confirm_ask(suite: Suite, ctx: Context, cfg: StageConfig) -> Draft:
    tools = sorted(suite.policy.confirm_required)
    if not tools:
        raise Skip("no_confirm_tool")
    u = _utter(suite, ctx, tool=ctx.rng.choice(tools))
    ask = suite.policy.confirm_ask.get(ctx.lang, "{summary}")
    augs: list[str] = []
    text = _user_text(u.text, ctx, cfg, augs, [u])
    # The question quotes the request as the user wrote it, so augment it first and only once.
    plain = replace(cfg, noise=0.0, paraphrase=0.0)
    draft = _reply_draft(
        suite, ctx, plain, text, ask.replace("{summary}", text), _narrow(suite, [u.tool], ctx), [u]
    )
    draft.augmentations.extend(augs)
    return draft


def _result(suite: Suite, ctx: Context, cfg: StageConfig, want_error: bool = False) -> Draft:
    tools = [t.name for t in suite.tools if not want_error or suite.gen[t.name].result.get("error")]
    if not tools:
        raise Skip("no_error_mock")
    for _ in range(40):
        u = _utter(suite, ctx, tool=ctx.rng.choice(tools))
        assert u.call is not None
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
    from toolsft.types import dumps

    draft.messages.append(
        {"role": "tool", "tool_call_id": "call_0", "name": u.tool, "content": dumps(dict(result))}
    )
    answer = render_answer(suite, u.tool, u.call.arguments, result, ctx.lang, ctx.rng)
    if answer is None:
        raise Skip("no_answer_template")
    draft.messages.append({"role": "assistant", "content": answer})
    draft.expected = Expected(
        draft.expected.calls, tuple(facts_of(suite, u.tool, result, ctx.lang)), answer, False
    )
    return draft


def _join(suite: Suite, ctx: Context, a: str, b: str) -> str:
    default = {"zh": ["，另外"], "en": [", and also "]}
    conns = (suite.config.get("connectors") or default).get(ctx.lang) or default[ctx.lang]
    a = a.rstrip("。.?？!！")
    if ctx.lang == "en" and b:
        b = b[0].lower() + b[1:]
    return a + ctx.rng.choice(list(conns)) + b


def kind_weights(suite: Suite, stage: int) -> dict[str, float]:
    """The stage's kind mix, less the kinds this suite cannot produce."""
    table = dict(STAGE_KINDS[stage])
    if not suite.policy.confirm_required:
        table.pop("confirm_ask", None)
    if not any(g.result.get("error") for g in suite.gen.values()):
        table.pop("tool_error", None)
    return table


def pick_kind(stage: int, rng: random.Random, weights: Mapping[str, float] | None = None) -> str:
    table = dict(weights or STAGE_KINDS[stage])
    kinds, w = zip(*table.items(), strict=True)
    return rng.choices(kinds, weights=w, k=1)[0]
