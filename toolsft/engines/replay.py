"""Scripted engines: answers come from a file or from the gold rows, never from a model.

`ReplayEngine` scores outputs produced elsewhere (and re-scores a past run: every eval writes
`predictions.jsonl` in this format). `GoldEngine` answers with each row's own target turns: it
is the harness's self-test (gold must score 100%) and the base of the perturbation tests.

Requests are matched by key `<row id>#<sample>@<turn>` (see `request_key`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolsft.chat.template import render_assistant
from toolsft.engines.base import Decoding, EngineError, Generation, Request
from toolsft.engines.predictions import generation
from toolsft.types import Example, ToolCall

logger = logging.getLogger(__name__)

MISSING = "missing"
"""finish_reason of a request the script has no answer for (scored as a failure)."""


def request_key(row_id: str, sample: int, turn: int) -> str:
    return f"{row_id}#{sample}@{turn}"


def load_predictions(
    path: str | Path, recorded: dict[str, Generation] | None = None
) -> dict[str, str]:
    """Read `{"key", "text"}` lines, or `{"id", "turns": [...], "sample"?}` lines. An eval's
    own lines also carry `finish_reason` and `output_tokens`: `recorded` gets them by key.

    Errors name the file and the line. Lines are split at `\\n` only: a model's text may hold
    a raw U+2028, which `str.splitlines` would cut. A file with no prediction is refused: it
    would score every episode as a miss."""
    file = Path(path)
    if file.exists() and not file.is_file():  # a folder, FIFO or device: reading would hang
        raise EngineError("predictions must be a regular file", file=file)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise EngineError(f"cannot read predictions ({exc.strerror})", file=file) from exc
    out: dict[str, str] = {}
    for n, raw in enumerate(data.split(b"\n"), 1):
        if raw.strip():
            obj = _json_line(file, n, raw)
            out.update(_entries(file, n, obj))
            if recorded is not None and "key" in obj:
                recorded[str(obj["key"])] = _recorded(file, n, obj)
    if not out:
        raise EngineError("holds no prediction: every episode would score as a miss", file=file)
    return out


def _json_line(file: Path, n: int, raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise EngineError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file, where=n
        ) from exc
    except json.JSONDecodeError as exc:
        raise EngineError(f"not JSON ({exc.msg})", file=file, where=n) from exc
    except (ValueError, RecursionError) as exc:  # over-long integers, too deep nesting
        raise EngineError(f"unreadable JSON ({exc})", file=file, where=n) from exc


def _entries(file: Path, n: int, obj: Any) -> dict[str, str]:
    if not isinstance(obj, Mapping):
        raise EngineError(
            "a prediction is a JSON object", file=file, where=n, value=type(obj).__name__
        )
    if "key" in obj and isinstance(obj.get("text"), str):
        return {str(obj["key"]): obj["text"]}
    turns = obj.get("turns")
    if "id" in obj and isinstance(turns, list) and all(isinstance(t, str) for t in turns):
        sample = obj.get("sample", 0)
        if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
            raise EngineError(
                "field sample must be a count (0, 1, ...)", file=file, where=n, value=sample
            )
        return {request_key(str(obj["id"]), sample, i): t for i, t in enumerate(turns)}
    raise EngineError(
        'needs {"key", "text"} or {"id", "turns": [...]}', file=file, where=n, value=sorted(obj)
    )


def _recorded(file: Path, n: int, obj: Mapping[str, Any]) -> Generation:
    """What a past eval recorded of one turn: its finish_reason and output token count (the
    format and its checks are `toolsft.engines.predictions`'). A line without a count (one
    written by hand) counts words; one without a finish_reason finished."""
    text = str(obj["text"])
    try:
        past = generation(obj, text)
    except ValueError as exc:
        raise EngineError(f"not a prediction ({exc})", file=file, where=n) from exc
    tokens = past.output_tokens if "output_tokens" in obj else _words(text)
    return Generation(text=text, output_tokens=tokens, finish_reason=past.finish_reason or "stop")


def _words(text: str) -> int:
    return len(text.split())


class ReplayEngine:
    """Answers each request with the scripted text for its key. Replaying an eval's own
    predictions.jsonl keeps each reply's recorded finish_reason: a reply the model ran to
    --max-tokens stays cut (scored as a failure) instead of passing as finished text."""

    name = "replay"

    def __init__(self, predictions: Mapping[str, str] | str | Path) -> None:
        self.source = None if isinstance(predictions, Mapping) else str(predictions)
        self.recorded: dict[str, Generation] = {}
        self.script = (
            dict(predictions)
            if isinstance(predictions, Mapping)
            else load_predictions(predictions, self.recorded)
        )

    def info(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.source or "script", "adapter": None}

    def close(self) -> None:
        pass

    def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Generation]:
        out = []
        for r in requests:
            text = self.script.get(r.key)
            if text is None:
                logger.warning("replay: no prediction for %s", r.key)
                out.append(Generation(text="", finish_reason=MISSING))
            else:
                past = self.recorded.get(r.key)
                out.append(
                    replace(past, extra={})
                    if past is not None
                    else Generation(text=text, output_tokens=_words(text), finish_reason="stop")
                )
        return out


def gold_turns(example: Example) -> list[str]:
    """The row's target assistant turns after the prompt, as the template renders them."""
    n = int(example.meta.get("prompt_len", len(example.messages) - 1))
    turns = []
    for msg in example.messages[n:]:
        if msg.get("role") != "assistant":
            continue
        calls = [ToolCall.from_openai(tc) for tc in msg.get("tool_calls") or []]
        turns.append(render_assistant(str(msg.get("content") or ""), calls))
    return turns


def gold_script(
    examples: Iterable[Example],
    samples: int = 1,
    edit: Callable[[Example, int, str], str] | None = None,
) -> dict[str, str]:
    """Keys to gold turn texts; `edit(example, turn, text)` perturbs them (tests)."""
    script: dict[str, str] = {}
    for ex in examples:
        for turn, text in enumerate(gold_turns(ex)):
            new = edit(ex, turn, text) if edit else text
            for s in range(samples):
                script[request_key(str(ex.meta.get("id")), s, turn)] = new
    return script


class GoldEngine(ReplayEngine):
    """Replays the rows' own targets: the score every harness change must keep at 100%."""

    name = "gold"

    def __init__(self, examples: Iterable[Example], samples: int = 1) -> None:
        super().__init__(gold_script(examples, samples))
        self.source = "gold"
