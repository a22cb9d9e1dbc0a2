"""Property tests: any sampled argument validates; any generated row round-trips."""

from __future__ import annotations

import datetime as dt
import json
import random

from conftest import REPO, SHIPPED_SUITES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolsft.chat.parse import parse_assistant
from toolsft.chat.template import render_assistant
from toolsft.eval.scoring import block_validity
from toolsft.gen.pipeline import GenConfig, GenResult, _date_range, _one_row
from toolsft.gen.sample import Context
from toolsft.gen.stages import StageConfig
from toolsft.gen.utterance import make_utterance
from toolsft.schema.suite import load_suite
from toolsft.schema.validate import call_errors
from toolsft.types import Example, ToolCall

SUITES = {name: load_suite(REPO / "tool_schemas" / name) for name in SHIPPED_SUITES}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    name=st.sampled_from(SHIPPED_SUITES),
    seed=st.integers(0, 2**32),
    lang=st.sampled_from(["zh", "en"]),
    holdout=st.booleans(),
    tool_index=st.integers(0, 100),
    days=st.integers(0, 364),
)
def test_any_sampled_argument_validates(
    name: str, seed: int, lang: str, holdout: bool, tool_index: int, days: int
) -> None:
    suite = SUITES[name]
    tool = suite.tools[tool_index % len(suite.tools)]
    ctx = Context(
        lang, holdout, dt.date(2026, 1, 1) + dt.timedelta(days=days), random.Random(seed), 0.5
    )
    u = make_utterance(suite, tool.name, ctx, complete=True)
    if u is None or u.call is None:
        return
    assert call_errors(suite.tools_by_name, u.call) == []
    assert "{" not in u.text, u.text


@FAST
@given(
    name=st.sampled_from(SHIPPED_SUITES),
    seed=st.integers(0, 10**6),
    stage=st.sampled_from([1, 2, 3]),
    split=st.sampled_from(["train", "test"]),
    index=st.integers(0, 10**6),
)
def test_any_generated_row_round_trips_through_json(
    name: str, seed: int, stage: int, split: str, index: int
) -> None:
    suite = SUITES[name]
    cfg = GenConfig(seed=seed)
    lo, hi = _date_range(suite)
    ex = _one_row(suite, cfg, StageConfig(), stage, split, index, lo, hi, GenResult())
    assert ex is not None
    row = ex.to_row()
    again = Example.from_row(json.loads(json.dumps(row, ensure_ascii=False)))
    assert again.to_row() == row
    assert again.expected == ex.expected


def test_generated_rows_round_trip_through_datasets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datasets

    suite = SUITES[SHIPPED_SUITES[0]]
    cfg = GenConfig(seed=1)
    lo, hi = _date_range(suite)
    rows = [
        _one_row(suite, cfg, StageConfig(), s, "train", i, lo, hi, GenResult())
        for s in (1, 2, 3)
        for i in range(40)
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r.to_row(), ensure_ascii=False) + "\n" for r in rows if r))
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    back = [Example.from_row(r) for r in ds]
    assert [b.to_row() for b in back] == [r.to_row() for r in rows if r]


@FAST
@given(
    name=st.sampled_from(SHIPPED_SUITES),
    seed=st.integers(0, 10**6),
    stage=st.sampled_from([1, 2, 3]),
    index=st.integers(0, 10**6),
)
def test_any_generated_call_parses_back_valid(name: str, seed: int, stage: int, index: int) -> None:
    """Every assistant turn of a generated row, rendered as the template does, parses back to
    its calls, and the scorer finds every block valid: parser, scorer and data agree."""
    suite = SUITES[name]
    lo, hi = _date_range(suite)
    ex = _one_row(
        suite, GenConfig(seed=seed), StageConfig(), stage, "test", index, lo, hi, GenResult()
    )
    assert ex is not None
    shown = {t.name: t for t in ex.tools}
    for msg in ex.messages:
        if msg.get("role") != "assistant":
            continue
        calls = [ToolCall.from_openai(c) for c in msg.get("tool_calls") or []]
        text = render_assistant(msg.get("content") or "", calls)
        parsed = parse_assistant(text + "<|im_end|>")
        assert parsed.ok and list(parsed.calls) == calls, parsed.errors
        assert block_validity(text, shown) == [None] * len(calls)
