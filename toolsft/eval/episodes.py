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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolsft.chat.parse import Parsed, parse_assistant
from toolsft.engines.base import Decoding, Engine, Generation, Request
from toolsft.engines.replay import request_key
from toolsft.eval.validity import call_validity
from toolsft.schema.executor import Executor
from toolsft.types import Example, ToolCall, dumps

logger = logging.getLogger(__name__)

MAX_TURNS = 4


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
) -> tuple[list[Episode], list[BatchStat]]:
    """Every example `samples` times; returns the episodes and per-batch timings."""
    episodes = [
        Episode(ex, s, ex.prompt_messages(), min(max_turns, gold_turn_count(ex)))
        for ex in examples
        for s in range(samples)
    ]
    tools = {id(ex): [t.to_openai() for t in ex.tools] for ex in examples}
    active, stats, turn = list(episodes), [], 0
    while active:
        requests = [
            Request(ep.messages, tools[id(ep.example)], request_key(ep.row_id, ep.sample, turn))
            for ep in active
        ]
        t0 = time.perf_counter()
        gens = engine.generate(requests, decoding)
        stats.append(BatchStat(turn, len(requests), time.perf_counter() - t0))
        if len(gens) != len(requests):
            raise RuntimeError(
                f"engine {engine.name} returned {len(gens)} generations for "
                f"{len(requests)} requests"
            )
        logger.info("turn %d: %d requests in %.1fs", turn, len(requests), stats[-1].wall_s)
        active = [ep for ep, gen in zip(active, gens, strict=True) if step(ep, gen, executor)]
        turn += 1
        if progress:
            progress(turn, len(active))
    return episodes, stats


def step(ep: Episode, gen: Generation, executor: Executor) -> bool:
    """Record one reply; execute its calls and return True when the episode goes on."""
    parsed = parse_assistant(gen.text)
    turn = Turn(len(ep.messages), gen.text, parsed, gen)
    ep.turns.append(turn)
    if not parsed.calls or parsed.errors or len(ep.turns) >= ep.max_turns:
        return False
    shown = {t.name: t for t in ep.example.tools}
    turn.results = [execute(shown, executor, c) for c in parsed.calls]
    ids = [f"call_{len(ep.turns) - 1}_{k}" for k in range(len(parsed.calls))]
    ep.messages.append(
        {
            "role": "assistant",
            "content": parsed.content,
            "tool_calls": [c.to_openai(i) for c, i in zip(parsed.calls, ids, strict=True)],
        }
    )
    for call, cid, result in zip(parsed.calls, ids, turn.results, strict=True):
        ep.messages.append(
            {"role": "tool", "tool_call_id": cid, "name": call.name, "content": dumps(result)}
        )
    return True


def execute(shown: Mapping[str, Any], executor: Executor, call: ToolCall) -> dict[str, Any]:
    """Run a call; a call that does not validate gets the error a real API would return."""
    errors = call_validity(shown, call)
    if errors:
        return {"error": "INVALID_ARGUMENTS", "message": "; ".join(errors)}
    return executor.run(call)
