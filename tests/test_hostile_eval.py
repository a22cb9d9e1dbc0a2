"""Evaluations survive: predictions kept as they are made, `eval --resume` after a kill (even
SIGKILL mid-write), refusal to mix two runs, and model output that cannot kill a run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI, Reply, sse
from helpers import DEFAULT_SUITE, make_dataset

from toolsft.cli.main import cli
from toolsft.engines.base import Decoding, EngineError, Generation, Request
from toolsft.engines.replay import GoldEngine, ReplayEngine, gold_script
from toolsft.errors import ToolsftError
from toolsft.eval.data import load_eval_data
from toolsft.eval.resume import PredictionLog, ResumeError
from toolsft.eval.runner import EvalConfig, evaluate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "d", per_stage=20)


def _examples(data: Path) -> list[Any]:
    return load_eval_data(data).examples


def _cfg(data: Path, **kw: Any) -> EvalConfig:
    return EvalConfig(suite=DEFAULT_SUITE, data=data, model={"name": "gold"}, **kw)


CLOCK = ("ttft_s", "latency_s")


def _comparable(res: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on whether the run was interrupted: all but the clock."""
    rows = [
        {**r, "turns": [{k: v for k, v in t.items() if k not in CLOCK} for t in r["turns"]]}
        for r in res["rows"]
    ]
    same = {k: v for k, v in res.items() if k not in ("created", "perf", "rows")}
    return same | {"rows": rows, "requests": res["perf"]["requests"]}


class Killed(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs, no handler catches it."""


class DiesAfter(GoldEngine):
    """The gold engine, answering one request at a time, that dies after `left` answers."""

    def __init__(self, examples: Sequence[Any], left: int) -> None:
        super().__init__(examples)
        self.left = left

    def generate_each(
        self, requests: Sequence[Request], decoding: Decoding
    ) -> Iterator[tuple[int, Generation]]:
        for i, gen in enumerate(self.generate(requests, decoding)):
            if self.left == 0:
                raise Killed
            self.left -= 1
            yield i, gen


class Counting(GoldEngine):
    def __init__(self, examples: Sequence[Any]) -> None:
        super().__init__(examples)
        self.asked: list[str] = []

    def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Generation]:
        self.asked += [r.key for r in requests]
        return super().generate(requests, decoding)


# --- predictions kept, resume ------------------------------------------------------------------


def test_killed_run_resumes_to_the_same_results(data: Path, tmp_path: Path) -> None:
    examples = _examples(data)
    whole = evaluate(GoldEngine(examples), _cfg(data), out=tmp_path / "whole")
    with pytest.raises(Killed):
        evaluate(DiesAfter(examples, 7), _cfg(data), out=tmp_path / "run")
    kept = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    assert len(kept) == 7  # each prediction was on disk the moment it was made
    engine = Counting(examples)
    resumed = evaluate(engine, _cfg(data), out=tmp_path / "run", resume=True)
    assert _comparable(resumed) == _comparable(whole)
    assert resumed["metrics"]["task_completion"]["value"] == 1.0
    assert len(engine.asked) == whole["perf"]["requests"] - 7  # only the rest was asked
    assert resumed["perf"]["resumed_requests"] == 7
    assert not {json.loads(x)["key"] for x in kept} & set(engine.asked)
    lines = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == whole["perf"]["requests"]  # nothing lost, nothing twice
    assert len({json.loads(x)["key"] for x in lines}) == len(lines)


def test_half_written_last_line_is_dropped_on_resume(data: Path, tmp_path: Path) -> None:
    examples = _examples(data)
    whole = evaluate(GoldEngine(examples), _cfg(data), out=tmp_path / "run")
    preds = tmp_path / "run" / "predictions.jsonl"
    lines = preds.read_bytes().splitlines(keepends=True)
    preds.write_bytes(b"".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # killed mid-write
    resumed = evaluate(Counting(examples), _cfg(data), out=tmp_path / "run", resume=True)
    assert _comparable(resumed) == _comparable(whole)
    assert resumed["perf"]["resumed_requests"] == 5
    after = preds.read_text().splitlines()
    assert len(after) == len(lines) and all(json.loads(x)["key"] for x in after)


def test_a_valid_last_line_without_newline_is_kept(data: Path, tmp_path: Path) -> None:
    examples = _examples(data)
    evaluate(GoldEngine(examples), _cfg(data), out=tmp_path / "run")
    preds = tmp_path / "run" / "predictions.jsonl"
    lines = preds.read_bytes().splitlines(keepends=True)
    preds.write_bytes(b"".join(lines[:4]) + lines[4].rstrip(b"\n"))
    resumed = evaluate(Counting(examples), _cfg(data), out=tmp_path / "run", resume=True)
    assert resumed["perf"]["resumed_requests"] == 5
    assert len(preds.read_text().splitlines()) == len(lines)


def test_a_broken_line_before_the_end_is_refused(data: Path, tmp_path: Path) -> None:
    examples = _examples(data)
    evaluate(GoldEngine(examples), _cfg(data), out=tmp_path / "run")
    preds = tmp_path / "run" / "predictions.jsonl"
    lines = preds.read_text().splitlines(keepends=True)
    lines[2] = '{"key": "x"\n'
    preds.write_text("".join(lines))
    with pytest.raises(ResumeError) as err:
        evaluate(Counting(examples), _cfg(data), out=tmp_path / "run", resume=True)
    assert f"{preds}:3:" in str(err.value)
    assert preds.read_text() == "".join(lines)  # refused, and left as it was


def test_resume_of_an_empty_folder_runs_everything(data: Path, tmp_path: Path) -> None:
    engine = Counting(_examples(data))
    res = evaluate(engine, _cfg(data), out=tmp_path / "new", resume=True)
    assert res["perf"]["resumed_requests"] == 0 and len(engine.asked) == res["perf"]["requests"]


def test_a_second_writer_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    first = PredictionLog(tmp_path, {"a": 1}, resume=False)
    try:
        with pytest.raises(ResumeError, match="another `toolsft eval` is writing"):
            PredictionLog(tmp_path, {"a": 1}, resume=True)
    finally:
        first.close()


def test_engine_failure_mid_run_says_how_to_resume(data: Path, tmp_path: Path) -> None:
    class Fails(DiesAfter):
        def generate_each(
            self, requests: Sequence[Request], decoding: Decoding
        ) -> Iterator[tuple[int, Generation]]:
            try:
                yield from super().generate_each(requests, decoding)
            except Killed:
                raise EngineError("http://127.0.0.1:1/v1: answered 503 (gave up)") from None

    with pytest.raises(EngineError, match=r"the 4 predictions made are kept in .*--resume"):
        evaluate(Fails(_examples(data), 4), _cfg(data), out=tmp_path / "run")


def test_deadline_stops_between_batches_and_resume_finishes(data: Path, tmp_path: Path) -> None:
    examples = _examples(data)

    class Slow(GoldEngine):
        def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Generation]:
            time.sleep(2.5)
            return super().generate(requests, decoding)

    # The deadline must fall inside the first batch, never before it: only a file is opened
    # between setting it and the first check, which 2 s covers even on a loaded machine.
    with pytest.raises(EngineError, match=r"--deadline passed.*--resume"):
        evaluate(Slow(examples), _cfg(data), out=tmp_path / "run", deadline_s=2.0)
    res = evaluate(GoldEngine(examples), _cfg(data), out=tmp_path / "run", resume=True)
    assert res["perf"]["resumed_requests"] > 0
    assert res["metrics"]["task_completion"]["value"] == 1.0


# --- the CLI: --resume refuses another run ---------------------------------------------------


def _eval(data: Path, out: Path, *extra: str) -> Any:
    args = ["eval", "--suite", str(DEFAULT_SUITE), "--data", str(data), "--out", str(out)]
    return CliRunner().invoke(cli, [*args, "--quiet", *extra])


@pytest.fixture(scope="module")
def gold_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gold") / "run"
    assert _eval(data, out, "--engine", "gold").exit_code == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp_path / "run"))


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        (("--limit", "2"), "limit"),
        (("--temperature", "0.5"), "decoding.temperature"),
        (("--max-turns", "2"), "max_turns"),
        (("--stages", "1,2"), "stages"),
    ],
)
def test_resume_refuses_a_different_run(
    data: Path, gold_run: Path, tmp_path: Path, changed: tuple[str, str], field: str
) -> None:
    out = _copy(gold_run, tmp_path)
    before = (out / "predictions.jsonl").read_bytes()
    res = _eval(data, out, "--engine", "gold", "--resume", *changed)
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: {out / 'resume.json'}:{field}: --resume would mix")
    assert "Traceback" not in res.output
    assert (out / "predictions.jsonl").read_bytes() == before  # nothing lost


def test_resume_refuses_other_data_and_another_engine(
    data: Path, gold_run: Path, tmp_path: Path
) -> None:
    out = _copy(gold_run, tmp_path)
    other = make_dataset(tmp_path / "other", per_stage=20, seed=1)
    res = _eval(other, out, "--engine", "gold", "--resume")
    assert res.exit_code == 2 and "resume.json:rows:" in res.output
    preds = str(out / "predictions.jsonl")
    res = _eval(data, out, "--engine", "replay", "--resume", "--predictions", preds)
    assert res.exit_code == 2 and "resume.json:model.name:" in res.output


def test_resume_refuses_predictions_without_identity(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "predictions.jsonl").write_text('{"key": "a#0@0", "text": "x"}\n')
    res = _eval(data, out, "--engine", "gold", "--resume")
    assert res.exit_code == 2 and f"{out / 'predictions.jsonl'}: no resume.json" in res.output


def test_resume_of_a_finished_run_asks_nothing(data: Path, gold_run: Path, tmp_path: Path) -> None:
    out = _copy(gold_run, tmp_path)
    first = json.loads((out / "results.json").read_text())
    assert _eval(data, out, "--engine", "gold", "--resume").exit_code == 0
    again = json.loads((out / "results.json").read_text())
    assert _comparable(again) == _comparable(first)
    assert again["perf"]["resumed_requests"] == again["perf"]["requests"]


# --- hostile model output never kills the run ---------------------------------------------------

HOSTILE = {
    "lone surrogate": '<tool_call>\n{"name": "get_order\ud800", "arguments": {}}\n</tool_call>',
    "lone surrogate in text": "Sure \udfff done",
    "309 digits": '<tool_call>\n{"name": "get_order", "arguments": {"order_id": '
    + "9" * 309
    + "}}\n</tool_call>",
    "5000 digits": '<tool_call>\n{"name": "x", "arguments": {"n": '
    + "7" * 5000
    + "}}\n</tool_call>",
    "1e400": '<tool_call>\n{"name": "get_order", "arguments": {"order_id": 1e400}}\n</tool_call>',
    "nesting": '<tool_call>\n{"name": "x", "arguments": {"a": '
    + "[" * 5000
    + "]" * 5000
    + "}}\n</tool_call>",
    "50 kB": "<tool_call>" + "{" * 50_000,
    "NUL": "\x00" * 100,
    "stop inside a string": '<tool_call>\n{"name": "x", "arguments": {"s": "</s>"}}\n</tool_call>',
}


def test_hostile_outputs_fail_their_row_and_the_run_goes_on(data: Path, tmp_path: Path) -> None:
    examples = _examples(data)
    callers = [ex for ex in examples if ex.expected.calls]  # rows where no text can pass
    victims = {
        str(ex.meta["id"]): text for ex, text in zip(callers, HOSTILE.values(), strict=False)
    }
    assert len(victims) == len(HOSTILE)
    script = gold_script(
        examples, edit=lambda ex, turn, text: victims.get(str(ex.meta["id"]), text)
    )
    res = evaluate(ReplayEngine(script), _cfg(data), out=tmp_path / "run")
    rows = {r["id"]: r for r in res["rows"]}
    for rid in victims:
        assert not rows[rid]["ok"] and rows[rid]["reasons"], rid
    assert all(r["ok"] for rid, r in rows.items() if rid not in victims)  # the rest still scored
    surrogate = rows[next(iter(victims))]
    assert any("lone surrogate" in x for x in surrogate["reasons"])
    json.dumps(res, ensure_ascii=False).encode("utf-8")  # and the results can be written


def test_hostile_predictions_through_the_cli_write_results(data: Path, tmp_path: Path) -> None:
    examples = _examples(data)[:3]
    preds = tmp_path / "hostile.jsonl"
    texts = list(HOSTILE.values())
    preds.write_text(  # ASCII-escaped: the lone surrogates survive the file as they would JSON
        "".join(
            json.dumps({"key": f"{ex.meta['id']}#0@0", "text": t}) + "\n"
            for ex, t in zip(examples, texts, strict=False)
        )
    )
    out = tmp_path / "run"
    res = _eval(data, out, "--engine", "replay", "--predictions", str(preds), "--stages", "1")
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    first = next(r for r in results["rows"] if r["id"] == examples[0].meta["id"])
    assert not first["ok"] and any("surrogate" in x for x in first["reasons"])
    assert (out / "report.md").is_file() and (out / "predictions.jsonl").is_file()


def test_a_crash_while_scoring_fails_only_that_row(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import toolsft.eval.runner as runner

    examples = _examples(data)
    victim = str(examples[3].meta["id"])
    real = runner.score_episode

    def flaky(ep: Any, *a: Any) -> Any:
        if ep.row_id == victim:
            raise OverflowError("int too large to convert to float")
        return real(ep, *a)

    monkeypatch.setattr(runner, "score_episode", flaky)
    res = evaluate(GoldEngine(examples), _cfg(data))
    bad = [r for r in res["rows"] if not r["ok"]]
    assert [r["id"] for r in bad] == [victim]
    assert bad[0]["reasons"] == ["scoring failed: OverflowError: int too large to convert to float"]
    assert bad[0]["turns"] and res["metrics"]["task_completion"]["n"] == len(res["rows"])


def test_an_engine_returning_garbage_fails_the_row(data: Path, tmp_path: Path) -> None:
    examples = _examples(data)

    class Garbage(GoldEngine):
        def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Any]:
            gens: list[Any] = super().generate(requests, decoding)
            gens[0] = Generation(text=None)  # type: ignore[arg-type]
            return gens

    res = evaluate(Garbage(examples), _cfg(data))
    bad = [r for r in res["rows"] if not r["ok"]]
    assert bad and "the engine returned NoneType, not text" in bad[0]["reasons"][0]


# --- SIGKILL mid-run: a real process, a real (local) server -----------------------------------


def _answer(n: int, body: dict[str, Any]) -> Reply:
    """A deterministic 'model': the same request always gets the same reply."""
    digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).digest()
    tools = [t["function"]["name"] for t in body.get("tools") or []]
    if tools and digest[0] % 2 and body["messages"][-1]["role"] == "user":
        return Reply(body=sse(calls=[(tools[digest[1] % len(tools)], "{}")]), delay=0.04)
    return Reply(body=sse(f"Reply {digest.hex()[:8]}."), delay=0.04)


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(
    data: Path, tmp_path: Path
) -> None:
    with FakeOpenAI(_answer) as server:
        args = [
            *("eval", "--suite", str(DEFAULT_SUITE), "--data", str(data), "--engine", "openai"),
            *("--base-url", server.url, "--model", "m", "--concurrency", "1", "--quiet"),
        ]
        run = tmp_path / "run"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolsft.cli", *args, "--out", str(run)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        preds = run / "predictions.jsonl"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if preds.is_file() and preds.read_bytes().count(b"\n") >= 6:
                    break
                time.sleep(0.01)
            assert proc.poll() is None, "the run ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(10)
        assert not (run / "results.json").exists()
        made = preds.read_bytes().count(b"\n")
        asked_before = server.calls
        resumed = CliRunner().invoke(cli, [*args, "--out", str(run), "--resume"])
        assert resumed.exit_code == 0, resumed.output
        asked_on_resume = server.calls - asked_before
        whole = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "whole")])
        assert whole.exit_code == 0, whole.output
    a = json.loads((run / "results.json").read_text())
    b = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert _comparable(a) == _comparable(b)
    assert a["perf"]["resumed_requests"] >= made >= 6
    assert asked_on_resume == a["perf"]["requests"] - a["perf"]["resumed_requests"]


def test_rows_sharing_an_id_are_refused_before_anything_runs(data: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "dup"
    shutil.copytree(data, copy)
    (copy / "manifest.json").unlink()
    rows = copy / "stage1" / "test.jsonl"
    rows.write_text(rows.read_text() + rows.read_text().splitlines()[0] + "\n")
    engine = Counting(_examples(data))
    with pytest.raises(ToolsftError, match=r"test.jsonl:id: two rows have this id") as err:
        evaluate(engine, _cfg(copy, require_manifest=False), out=tmp_path / "run")
    assert "commerce-s1-test-000000" in str(err.value) and not engine.asked


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_a_deadline_must_be_positive(data: Path, tmp_path: Path, bad: float) -> None:
    with pytest.raises(ToolsftError, match="--deadline must be a positive"):
        evaluate(GoldEngine(_examples(data)), _cfg(data), out=tmp_path / "r", deadline_s=bad)
    assert not (tmp_path / "r").exists()


def test_a_fresh_run_does_not_wipe_an_unfinished_one(data: Path, tmp_path: Path) -> None:
    examples, out = _examples(data), tmp_path / "run"
    with pytest.raises(Killed):
        evaluate(DiesAfter(examples, 5), _cfg(data), out=out)
    kept = (out / "predictions.jsonl").read_bytes()
    with pytest.raises(ResumeError, match="unfinished run; add --resume") as err:
        evaluate(GoldEngine(examples), _cfg(data), out=out)
    assert str(err.value).startswith(f"{out / 'predictions.jsonl'}: ")
    assert (out / "predictions.jsonl").read_bytes() == kept  # nothing lost
    evaluate(GoldEngine(examples), _cfg(data), out=out, resume=True)
    evaluate(GoldEngine(examples), _cfg(data), out=out)  # finished: a new run may start over
