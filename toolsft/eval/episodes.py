"""Run test rows as episodes on the suite's executor, batched across episodes per turn.

An episode starts from the row's prompt (system, earlier turns, the user request). Each turn,
every still-running episode's conversation goes to the engine in ONE batch; the replies are
parsed (`toolsft.chat.parse`), calls are validated against the tools shown and executed on the
suite's deterministic mock executor (an invalid call gets an `INVALID_ARGUMENTS` error result,
as a real API would answer), and the results go back as tool messages. An episode ends when
the model answers without a call, writes an unparseable call, or uses up its turns: as many as
the row's gold conversation has assistant turns (a stage-1 row is one turn, a stage-3 row two).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any

from toolsft.chat.parse import Parsed, parse_assistant
from toolsft.engines.base import Decoding, Engine, EngineError, Generation, Request
from toolsft.engines.replay import request_key
from toolsft.eval.validity import call_validity
from toolsft.schema.executor import Executor
from toolsft.types import Example, ToolCall, dumps

logger = logging.getLogger(__name__)

MAX_TURNS = 4
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Turn:
    """One model reply inside an episode."""

    prior: int
    """How many messages preceded this reply (the prompt it answered)."""
    text: str
    parsed: Parsed
    gen: Generation
    results: list[dict[str, Any]] = field(default_factory=list)
    """Executor results of this turn's calls (empty when the episode stopped here)."""


@dataclass
class Episode:
    example: Example
    sample: int
    messages: list[dict[str, Any]]
    max_turns: int
    turns: list[Turn] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """Why the run itself failed this episode (a reply it could not handle), beyond scoring."""

    @property
    def row_id(self) -> str:
        return str(self.example.meta.get("id", ""))

    @property
    def calls(self) -> list[ToolCall]:
        return [c for t in self.turns for c in t.parsed.calls]

    @property
    def answer(self) -> str:
        """The final reply: the last turn's text when it made no call, else ''."""
        if not self.turns or self.turns[-1].parsed.calls or self.turns[-1].parsed.errors:
            return ""
        return self.turns[-1].parsed.content


@dataclass
class BatchStat:
    """One engine call: how many requests, how long it took on the wall clock."""

    turn: int
    requests: int
    wall_s: float


def gold_turn_count(example: Example) -> int:
    n = int(example.meta.get("prompt_len", len(example.messages) - 1))
    return max(1, sum(1 for m in example.messages[n:] if m.get("role") == "assistant"))


def run_episodes(
    engine: Engine,
    examples: Sequence[Example],
    executor: Executor,
    decoding: Decoding,
    samples: int = 1,
    max_turns: int = MAX_TURNS,
    progress: Callable[[int, int], None] | None = None,
    *,
    done: Mapping[str, Generation] | None = None,
    record: Callable[[str, Generation], None] | None = None,
    deadline: float | None = None,
) -> tuple[list[Episode], list[BatchStat]]:
    """Every example `samples` times; returns the episodes and per-batch timings.

    `done` holds predictions a resumed run already made (by request key): those turns are not
    asked of the engine again. `record(key, generation)` sees every new one as it arrives.
    `deadline` (a `time.monotonic()` instant) stops the run between batches.
    """
    done = done or {}
    episodes = [
        Episode(ex, s, ex.prompt_messages(), min(max_turns, gold_turn_count(ex)))
        for ex in examples
        for s in range(samples)
    ]
    tools = {id(ex): [t.to_openai() for t in ex.tools] for ex in examples}
    active, turn = list(episodes), 0
    stats: list[BatchStat] = []
    while active:
        requests = [
            Request(ep.messages, tools[id(ep.example)], request_key(ep.row_id, ep.sample, turn))
            for ep in active
        ]
        gens: list[Generation | None] = [_resumed(done.get(r.key)) for r in requests]
        todo = [i for i, g in enumerate(gens) if g is None]
        if todo:
            _check_deadline(deadline, len(done), sum(s.requests for s in stats))
            t0 = time.perf_counter()
            with closing(_generate(engine, [requests[i] for i in todo], decoding)) as stream:
                for i, gen in stream:
                    gens[todo[i]] = gen
                    if record is not None and _recordable(gen):
                        record(requests[todo[i]].key, gen)
            stats.append(BatchStat(turn, len(todo), time.perf_counter() - t0))
            logger.info("turn %d: %d requests in %.1fs", turn, len(todo), stats[-1].wall_s)
        active = [ep for ep, gen in zip(active, gens, strict=True) if step(ep, gen, executor)]
        turn += 1
        if progress:
            progress(turn, len(active))
    return episodes, stats


def _recordable(gen: Any) -> bool:
    """Whether a resumed run can read this generation back (garbage is asked again)."""
    return isinstance(gen, Generation) and isinstance(gen.text, str)


def _resumed(gen: Generation | None) -> Generation | None:
    if gen is None:
        return None
    return replace(gen, extra={**gen.extra, "resumed": True})


def _check_deadline(deadline: float | None, resumed: int, made: int) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise EngineError(
            f"--deadline passed after {made} new predictions ({resumed} resumed); "
            "the ones made are kept: rerun with --resume to go on"
        )


def _generate(
    engine: Engine, requests: Sequence[Request], decoding: Decoding
) -> Generator[tuple[int, Generation], None, None]:
    """(index, generation) pairs, each as soon as the engine has it.

    Engines that finish requests one by one (an HTTP server) offer `generate_each`, so a kill
    mid-batch loses only the requests in flight; the others answer a whole batch at once.
    """
    each = getattr(engine, "generate_each", None)
    if callable(each):
        seen = 0
        stream = each(requests, decoding)
        try:
            for i, gen in stream:
                seen += 1
                yield i, gen
        finally:
            getattr(stream, "close", lambda: None)()  # stop the requests still in flight
        if seen != len(requests):
            raise EngineError(f"engine {engine.name} answered {seen} of {len(requests)} requests")
        return
    gens = engine.generate(requests, decoding)
    if len(gens) != len(requests):
        raise EngineError(
            f"engine {engine.name} returned {len(gens)} generations for {len(requests)} requests"
        )
    yield from enumerate(gens)


def step(ep: Episode, gen: Any, executor: Executor) -> bool:
    """Record one reply; execute its calls and return True when the episode goes on.

    Whatever the reply is, it ends at worst this episode, failed with the reason: one hostile
    output (a lone surrogate, a 309-digit number, a nesting bomb) never stops the run.
    """
    gen = checked_generation(ep, gen)
    before = len(ep.turns)
    try:
        return _step(ep, gen, executor)
    except Exception as exc:  # noqa: BLE001 (any failure on one reply is that row's failure)
        reason = f"turn {before}: {describe(exc)}"
        logger.warning("row %s: %s", ep.row_id, reason, exc_info=logger.isEnabledFor(10))
        ep.failures.append(reason)
        if len(ep.turns) == before:
            ep.turns.append(Turn(len(ep.messages), gen.text, Parsed("", (), (reason,)), gen))
        return False


def _step(ep: Episode, gen: Generation, executor: Executor) -> bool:
    parsed = parse_assistant(gen.text)
    turn = Turn(len(ep.messages), gen.text, parsed, gen)
    ep.turns.append(turn)
    if not parsed.calls or parsed.errors or len(ep.turns) >= ep.max_turns:
        return False
    shown = {t.name: t for t in ep.example.tools}
    turn.results = [execute(shown, executor, c) for c in parsed.calls]
    ids = [f"call_{len(ep.turns) - 1}_{k}" for k in range(len(parsed.calls))]
    tool_messages = [
        {"role": "tool", "tool_call_id": cid, "name": call.name, "content": dumps(result)}
        for call, cid, result in zip(parsed.calls, ids, turn.results, strict=True)
    ]
    ep.messages.append(
        {
            "role": "assistant",
            "content": parsed.content,
            "tool_calls": [c.to_openai(i) for c, i in zip(parsed.calls, ids, strict=True)],
        }
    )
    ep.messages.extend(tool_messages)
    return True


def checked_generation(ep: Episode, gen: Any) -> Generation:
    """The engine's generation, made safe to keep: text that UTF-8 cannot encode (lone
    surrogates) is repaired with U+FFFD and the row fails with the reason."""
    if not isinstance(gen, Generation) or not isinstance(gen.text, str):
        got = type(gen.text if isinstance(gen, Generation) else gen).__name__
        ep.failures.append(f"turn {len(ep.turns)}: the engine returned {got}, not text")
        return Generation(text="", finish_reason="engine_error")
    if _SURROGATE.search(gen.text):
        ep.failures.append(
            f"turn {len(ep.turns)}: invalid Unicode in the reply (lone surrogate), "
            "replaced by U+FFFD"
        )
        return replace(gen, text=_SURROGATE.sub("\ufffd", gen.text))
    return gen


def describe(exc: BaseException) -> str:
    """`<Type>: <message>`, cut short: the message of a hostile value can be huge."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 (a broken __str__ must not hide the failure)
        text = ""
    return f"{exc.__class__.__name__}: {text[:200]}" if text else exc.__class__.__name__


def execute(shown: Mapping[str, Any], executor: Executor, call: ToolCall) -> dict[str, Any]:
    """Run a call; a call that does not validate gets the error a real API would return."""
    errors = call_validity(shown, call)
    if errors:
        return {"error": "INVALID_ARGUMENTS", "message": "; ".join(errors)}
    return executor.run(call)
