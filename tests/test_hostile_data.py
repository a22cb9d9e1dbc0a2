"""Datasets are atomic and verified: a killed or doubled `gen` never leaves a mixed dataset, and
`train`/`eval` refuse a dataset that was changed, half written, has no manifest or invalid rows.

Every refusal is exit 2 with one line naming the file (and, for a row, the line and field), and
nothing is lost: the previous dataset survives, no training run is started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import DEFAULT_SUITE, make_dataset
from helpers import error_line as _error_line

from toolsft.cli.main import cli
from toolsft.manifest import verify_dataset, write_manifest
from toolsft.train.data import check_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("pristine"), per_stage=20)


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of a finished dataset for each test to break."""
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _eval(data: Path, *extra: str, out: Path | None = None) -> Any:
    out = out or data.parent / "report"
    return _invoke(
        "eval", "--suite", str(DEFAULT_SUITE), "--data", str(data), "--engine", "gold",
        "--out", str(out), "--quiet", *extra,
    )  # fmt: skip


def _train(data: Path, *extra: str) -> Any:
    # Refusals come before any model loads; a model that does not exist proves it.
    out = data.parent / "run"
    return _invoke(
        "train", "--stage", "2", "--data", str(data), "--out", str(out),
        "--model", str(data.parent / "no-such-model"), *extra,
    )  # fmt: skip


def _refused_by_both(data: Path, *needles: str) -> None:
    """`train` and `eval` both exit 2 naming every needle; neither writes anything."""
    for res in (_train(data), _eval(data)):
        line = _error_line(res)
        for needle in needles:
            assert needle in line, (needle, line)
    assert not (data.parent / "run").exists() and not (data.parent / "report").exists()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _reseal(data: Path) -> None:
    """Rewrite the manifest over the current files: a dataset whose hashes match its rows."""
    manifest = json.loads((data / "manifest.json").read_text())
    del manifest["files"]
    write_manifest(data, manifest)


# --- the manifest ---------------------------------------------------------------------------


def test_a_finished_dataset_is_accepted(data: Path) -> None:
    res = _eval(data)
    assert res.exit_code == 0, res.output
    assert check_dataset(data, (1, 2, 3))["seed"] == 0


def test_a_tampered_file_is_refused(data: Path) -> None:
    path = data / "stage1" / "test.jsonl"
    text = path.read_text()
    path.write_text(text.replace("e", "E", 1))  # one character of one row
    assert path.read_text() != text
    _refused_by_both(data, str(path), "changed after `toolsft gen`", "sha256")


def test_a_missing_file_is_refused(data: Path) -> None:
    (data / "stage3" / "val.jsonl").unlink()
    _refused_by_both(data, str(data / "stage3" / "val.jsonl"), "missing")


@pytest.mark.parametrize("rel", ["stage1/extra.jsonl", "stage4/train.jsonl", "notes.txt"])
def test_an_extra_file_is_refused(data: Path, rel: str) -> None:
    """A file gen did not write: another run's leftovers, or rows mixed in by hand."""
    extra = data / rel
    extra.parent.mkdir(exist_ok=True)
    shutil.copy(data / "stage1" / "train.jsonl", extra)
    _refused_by_both(data, str(extra), "not listed in manifest.json")


def test_a_missing_manifest_is_refused_unless_no_manifest(data: Path) -> None:
    (data / "manifest.json").unlink()
    _refused_by_both(data, str(data), "no manifest.json", "--no-manifest")
    res = _eval(data, "--no-manifest")
    assert res.exit_code == 0, res.output
    assert check_dataset(data, (1, 2, 3), require_manifest=False) is None


def test_eval_of_one_file_verifies_its_dataset(data: Path) -> None:
    file = data / "stage2" / "test.jsonl"
    out = data.parent / "report"
    assert _eval(file, out=out).exit_code == 0
    (data / "stage1" / "test.jsonl").write_text("")
    line = _error_line(_eval(file, out=out))
    assert str(data / "stage1" / "test.jsonl") in line


@pytest.mark.parametrize(
    ("manifest", "where"),
    [
        ("{not json", "manifest.json:line 1: not JSON"),
        ("[1, 2]", "manifest.json:$: must be a JSON object"),
        ('{"seed": 0}', "manifest.json:$.files: must map each data file"),
        (
            '{"files": {"../x.jsonl": {"sha256": "' + "0" * 64 + '"}}}',
            'manifest.json:$.files["../x.jsonl"]: not a path inside the dataset folder',
        ),
        (
            '{"files": {"stage1/train.jsonl": {"sha256": 7}}}',
            'manifest.json:$.files["stage1/train.jsonl"].sha256: needs a hex sha256 (7)',
        ),
    ],
)
def test_a_malformed_manifest_names_its_field(data: Path, manifest: str, where: str) -> None:
    (data / "manifest.json").write_text(manifest)
    _refused_by_both(data, where)


# --- rows train would learn from ------------------------------------------------------------


def _first_call_row(path: Path) -> tuple[int, dict[str, Any]]:
    for n, line in enumerate(path.read_text().splitlines(), 1):
        row = json.loads(line)
        if any(m.get("tool_calls") for m in row["messages"]):
            return n, row
    raise AssertionError(f"{path}: no row with a call")


def _break_row(data: Path, edit: Any) -> tuple[Path, int]:
    """Apply `edit(row)` to the first row with a call in stage2/train.jsonl and reseal."""
    path = data / "stage2" / "train.jsonl"
    lines = path.read_text().splitlines()
    n, row = _first_call_row(path)
    edit(row)
    lines[n - 1] = json.dumps(row, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n")
    _reseal(data)
    return path, n


def _call(row: dict[str, Any]) -> dict[str, Any]:
    msg = next(m for m in row["messages"] if m.get("tool_calls"))
    return msg["tool_calls"][0]["function"]


def _set_args(row: dict[str, Any], value: Any) -> None:
    _call(row)["arguments"] = json.dumps(value)


def _tools(row: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(row["tools"])


def _loosen_first_tool(row: dict[str, Any]) -> None:
    tools = _tools(row)
    tools[0]["function"]["parameters"] = {"type": "object"}
    row["tools"] = json.dumps(tools)


def _add_foreign_tool(row: dict[str, Any]) -> None:
    foreign = {"type": "function", "function": {"name": "rm_rf", "parameters": {}}}
    row["tools"] = json.dumps([*_tools(row), foreign])


def _say_a_call(row: dict[str, Any]) -> None:
    msg = next(m for m in row["messages"] if m.get("tool_calls"))
    msg["content"] = '<tool_call>{"name": "x", "arguments": {}}</tool_call>'


@pytest.mark.parametrize(
    ("edit", "field", "what"),
    [
        (lambda r: _set_args(r, {"nope": [1, 2]}), "tool_calls[0]", "{'nope': [1, 2]}"),
        (lambda r: _call(r).update(name="not_a_tool"), "tool_calls[0]", "unknown tool"),
        (lambda r: _call(r).update(arguments="{broken"), "function.arguments", "not JSON"),
        (lambda r: _call(r).update(arguments="[1]"), "function.arguments", "JSON object"),
        (_loosen_first_tool, "tools[0]", "differs from the suite's"),
        (_add_foreign_tool, "tools[", "not a tool of the suite ('rm_rf')"),
        (_say_a_call, "messages[", "does not parse back"),
    ],
)
def test_train_refuses_an_invalid_row_naming_it(
    data: Path, edit: Any, field: str, what: str
) -> None:
    path, n = _break_row(data, edit)
    verify_dataset(data)  # the hashes match: only the row is wrong
    line = _error_line(_train(data))
    assert f"{path}:{n}: " in line and field in line and what in line, line
    assert not (data.parent / "run").exists()


def test_rows_of_every_stage_trained_on_are_checked(data: Path) -> None:
    """Stage 2 replays stage 1: a bad stage-1 row stops stage 2, and a bad val row too."""
    for rel in ("stage1/train.jsonl", "stage2/val.jsonl"):
        copy = Path(shutil.copytree(data, data.parent / rel.replace("/", "-")))
        path = copy / rel
        path.write_text(path.read_text() + "not json\n")
        _reseal(copy)
        bad_line = len(path.read_text().splitlines())
        res = _invoke("train", "--stage", "2", "--data", str(copy), "--out", str(copy / "x"))
        assert f"{path}:{bad_line}: invalid JSON" in _error_line(res)


def test_no_manifest_still_validates_rows(data: Path) -> None:
    path, n = _break_row(data, lambda r: _call(r).update(name="not_a_tool"))
    (data / "manifest.json").unlink()
    line = _error_line(_train(data, "--no-manifest"))
    assert f"{path}:{n}: " in line and "unknown tool" in line


def test_undecodable_rows_are_refused_not_crashed(data: Path) -> None:
    path = data / "stage2" / "train.jsonl"
    with path.open("ab") as fh:
        fh.write(b'{"messages": "\xff\xfe"}\n')
    _reseal(data)
    bad_line = len(path.read_bytes().splitlines())
    assert f"{path}:{bad_line}: not valid UTF-8" in _error_line(_train(data))


# --- gen killed, gen twice ------------------------------------------------------------------


def _gen_argv(out: Path, seed: int, per_stage: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "toolsft.cli", "gen", "--suite", str(DEFAULT_SUITE),
        "--out", str(out), "--seed", str(seed), "--per-stage", str(per_stage), *extra,
    ]  # fmt: skip


def _partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def _kill_mid_write(out: Path, *extra: str) -> Path:
    """Start a big `gen`, SIGKILL it once some of its files are written; the partial folder."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        _gen_argv(out, 1, 1500, *extra), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    try:
        while not any(out.parent.glob(f".{out.name}.partial-*/stage1/*.jsonl")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "gen wrote no file within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "gen finished before it could be killed"
    (partial,) = _partials(out)
    assert not (partial / "manifest.json").exists()
    return partial


def _half_written_is_refused(partial: Path) -> None:
    for res in (_train(partial), _eval(partial)):
        line = _error_line(res)
        assert str(partial) in line and "no manifest.json" in line


def test_gen_killed_into_a_new_folder_leaves_no_dataset(tmp_path: Path) -> None:
    out = tmp_path / "data"
    partial = _kill_mid_write(out)
    assert not out.exists(), "the target appears only when the dataset is complete"
    _half_written_is_refused(partial)
    assert _error_line(_train(out))  # click: --data does not exist
    line = _error_line(_eval(out))
    assert str(out) in line
    # the next gen clears the dead run's partial folder and writes a whole dataset
    res = subprocess.run(_gen_argv(out, 0, 10), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert _partials(out) == [] and verify_dataset(out)["seed"] == 0


def test_gen_killed_while_overwriting_keeps_the_previous_dataset(data: Path) -> None:
    before = _snapshot(data)
    partial = _kill_mid_write(data, "--overwrite")
    assert _snapshot(data) == before, "the previous dataset is untouched"
    assert verify_dataset(data)["seed"] == 0
    _half_written_is_refused(partial)
    assert _eval(data).exit_code == 0


def test_two_gens_into_one_folder_never_mix(tmp_path: Path) -> None:
    """Run at once: without --overwrite one wins and the other is refused; with it, the last
    to finish wins whole. Either way the folder is exactly one run's dataset."""
    refs = {}
    for seed in (1, 2):
        refs[seed] = tmp_path / f"ref{seed}"
        res = _invoke(*_gen_argv(refs[seed], seed, 40)[3:])
        assert res.exit_code == 0, res.output
    for extra in ((), ("--overwrite",)):
        out = tmp_path / f"out{len(extra)}"
        procs = [
            subprocess.Popen(_gen_argv(out, s, 40, *extra), stderr=subprocess.PIPE, text=True)
            for s in (1, 2)
        ]
        codes, errs = zip(*[(p.wait(timeout=300), p.stderr.read()) for p in procs], strict=True)  # type: ignore[union-attr]
        if extra:
            assert codes == (0, 0), errs
        else:
            assert sorted(codes) == [0, 2], errs
            loser = errs[codes.index(2)]
            assert f"Error: {out}" in loser and "Traceback" not in loser
        seed = verify_dataset(out)["seed"]
        assert _snapshot(out) == _snapshot(refs[seed])
        assert _partials(out) == []


def _folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "f").write_text(text)
    return path


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replace_survives_a_rival_filling_the_folder_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    """The race the concurrent test above can hit: the folder is missing when we look and
    filled by another `--overwrite` run before our rename; ours must then replace it."""
    from toolsft import io

    new, target = _folder(tmp_path / "new", "ours"), tmp_path / "out"
    real = os.rename
    if not exchange:
        monkeypatch.setattr(io, "_exchange", lambda a, b: False)

    rivals = [1]

    def rival_first(src: Any, dst: Any) -> None:
        if Path(dst) == target and not target.exists() and rivals:
            _folder(target, f"theirs {rivals.pop()}")
        real(src, dst)

    monkeypatch.setattr(io.os, "rename", rival_first)
    io.swap_dir(new, target, replace=True)
    assert (target / "f").read_text() == "ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_survives_a_rival_removing_the_folder_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the race: the folder exists when we look and is gone (renamed aside by
    a rival's two-rename swap) by the time we exchange with it."""
    from toolsft import io

    new, target = _folder(tmp_path / "new", "ours"), _folder(tmp_path / "out", "old")
    real = io._exchange

    def rival_removes(a: Path, b: Path) -> bool:
        if b.exists():
            shutil.rmtree(b)
        return real(a, b)

    monkeypatch.setattr(io, "_exchange", rival_removes)
    io.swap_dir(new, target, replace=True)
    assert (target / "f").read_text() == "ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
