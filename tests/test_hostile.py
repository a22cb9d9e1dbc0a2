"""The error contract, tried as a careless or hostile user would.

A user error (bad file, bad value, missing path, unsupported option combination) exits 2 with
one line, `Error: <file>:<field>: <what is wrong> (<the bad value>)`, and no traceback; --debug
or TOOLSFT_DEBUG=1 shows the traceback. Exit 1 means only "the gate found a regression"; a bug
exits 3 with its traceback, Ctrl-C 130. Every case here fails before a model loads, so the
module runs in seconds.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from helpers import make_dataset

from toolsft.cli.main import cli
from toolsft.errors import ToolsftError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace of hostile files next to one finished dataset."""
    root = tmp_path_factory.mktemp("hostile")
    make_dataset(root / "data", per_stage=10)
    (root / "empty").mkdir()
    (root / "file.txt").write_text("not a folder\n", encoding="utf-8")
    (root / "binary.yaml").write_bytes(bytes(range(128, 256)) * 8)
    (root / "r0.yaml").write_text("lora_r: 0\n", encoding="utf-8")
    (root / "typo.yaml").write_text("lora_rank: 8\n", encoding="utf-8")
    (root / "broken.yaml").write_text("lora_r: [\n", encoding="utf-8")
    (root / "list.yaml").write_text("- lora_r\n", encoding="utf-8")
    (root / "nan.yaml").write_text("learning_rate: .nan\n", encoding="utf-8")
    (root / "stage3.yaml").write_text("stages: {3: {learning_rate: 0}}\n", encoding="utf-8")
    (root / "stage9.yaml").write_text("stages: {9: {epochs: 1}}\n", encoding="utf-8")
    (root / "huge.yaml").write_text("# x\n" * 300_000, encoding="utf-8")
    (root / "types.yaml").write_text("max_steps: 1.5\n", encoding="utf-8")
    (root / "bigint.yaml").write_text(f"learning_rate: {10**400}\n", encoding="utf-8")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo.yaml")
    bad_model = root / "bad-model"
    bad_model.mkdir()
    (bad_model / "config.json").write_text('{"model_type": "llama",\n', encoding="utf-8")
    no_weights = root / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    damaged = root / "damaged-marker"
    damaged.mkdir()
    for name, text in [("config.json", "{}"), ("model.safetensors", ""), ("tokenizer.json", "{}")]:
        (damaged / name).write_text(text, encoding="utf-8")
    (damaged / "toolsft-model.json").write_text("{", encoding="utf-8")
    no_weights_run = root / "run-no-weights" / "stage1"
    no_weights_run.mkdir(parents=True)
    (no_weights_run / "run.json").write_text('{"stage": 1}', encoding="utf-8")
    run = root / "run-broken" / "stage1"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"stage": 1,', encoding="utf-8")
    return root


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env)


def error_line(res: Result, code: int = 2) -> str:
    """The output is exactly one `Error: ...` line, with `code`, and no traceback."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


def train(ws: Path, *extra: str, stage: str = "1") -> list[str]:
    out = ws / "runs" / "never"
    return ["train", "--stage", stage, "--data", str(ws / "data"), "--out", str(out), *extra]


# (id, args built from the workspace, substrings the one line must hold)
Case = tuple[str, Callable[[Path], list[str]], tuple[str, ...]]
CASES: list[Case] = [
    # --- train: option values, named as the option the user typed, with the value
    ("lr-zero", lambda w: train(w, "--lr", "0"), ("--lr: must be > 0 (0.0)",)),
    ("lr-nan", lambda w: train(w, "--lr", "nan"), ("--lr: must be a finite number (nan)",)),
    ("lr-inf", lambda w: train(w, "--lr", "inf"), ("--lr:", "(inf)")),
    ("lr-text", lambda w: train(w, "--lr", "abc"), ("'--lr'", "'abc'")),
    ("steps-negative", lambda w: train(w, "--max-steps", "-5"), ("--max-steps:", "(-5)")),
    ("steps-zero", lambda w: train(w, "--max-steps", "0"), ("--max-steps:", "(0)")),
    ("epochs-negative", lambda w: train(w, "--epochs", "-1"), ("--epochs: must be > 0",)),
    ("seed-negative", lambda w: train(w, "--seed", "-1"), ("--seed:", "(-1)")),
    ("max-time-zero", lambda w: train(w, "--max-time", "0"), ("--max-time:", "(0.0)")),
    ("lora-alpha-zero", lambda w: train(w, "--lora-alpha", "0"), ("--lora-alpha:", "(0)")),
    ("dropout-one", lambda w: train(w, "--lora-dropout", "1"), ("--lora-dropout:", "(1.0)")),
    ("batch-zero", lambda w: train(w, "--batch-size", "0"), ("--batch-size: must be > 0",)),
    ("replay-share", lambda w: train(w, "--replay-share", "1"), ("--replay-share:",)),
    ("scheduler", lambda w: train(w, "--lr-scheduler", "bogus"), ("--lr-scheduler:", "bogus")),
    ("targets-empty", lambda w: train(w, "--target-modules", ","), ("--target-modules:",)),
    ("unknown-option", lambda w: train(w, "--lrr", "1"), ("No such option", "--lrr")),
    ("stage-4", lambda w: train(w, stage="4"), ("'--stage'", "4")),
    ("stage-text", lambda w: train(w, stage="one"), ("'--stage'", "one")),
    ("no-stage", lambda w: [a for a in train(w) if a not in ("--stage", "1")], ("--all",)),
    ("stage-and-all", lambda w: train(w, "--all"), ("--stage N or --all",)),
    (
        "decision-weight-combo",
        lambda w: train(w, "--decision-weight", "3"),
        ("--decision-weight: must be 1 without share_prefix", "(3.0)"),
    ),
    (
        "no-prefix-grad-combo",
        lambda w: train(w, "--no-prefix-grad"),
        ("--no-prefix-grad: must be true without share_prefix",),
    ),
    # --- train: the config file, named with the field (and its stage section)
    ("config-field", lambda w: train(w, "--config", str(w / "r0.yaml")), ("r0.yaml:lora_r:",)),
    (
        "config-typo",
        lambda w: train(w, "--config", str(w / "typo.yaml")),
        ("typo.yaml:lora_rank: unknown key", "'lora_r'"),
    ),
    (
        "config-type",
        lambda w: train(w, "--config", str(w / "types.yaml")),
        ("types.yaml:max_steps: expected an integer (1.5)",),
    ),
    (
        "config-nan",
        lambda w: train(w, "--config", str(w / "nan.yaml")),
        ("nan.yaml:learning_rate: must be a finite number (nan)",),
    ),
    (
        "config-huge-number",
        lambda w: train(w, "--config", str(w / "bigint.yaml")),
        ("bigint.yaml:learning_rate: expected a number",),
    ),
    (
        "config-other-stage",
        lambda w: train(w, "--config", str(w / "stage3.yaml")),
        ("stage3.yaml:stages.3.learning_rate: must be > 0 (0.0)",),
    ),
    (
        "config-stage-9",
        lambda w: train(w, "--config", str(w / "stage9.yaml")),
        ("stage9.yaml:stages.9:",),
    ),
    (
        "config-invalid-yaml",
        lambda w: train(w, "--config", str(w / "broken.yaml")),
        ("broken.yaml:2: invalid YAML",),
    ),
    (
        "config-not-a-mapping",
        lambda w: train(w, "--config", str(w / "list.yaml")),
        ("list.yaml: top level must be a mapping",),
    ),
    (
        "config-binary",
        lambda w: train(w, "--config", str(w / "binary.yaml")),
        ("binary.yaml: not UTF-8 text",),
    ),
    (
        "config-huge",
        lambda w: train(w, "--config", str(w / "huge.yaml")),
        ("huge.yaml: larger than",),
    ),
    (
        "config-folder",
        lambda w: train(w, "--config", str(w / "empty")),
        ("'--config'", "is a directory"),
    ),
    (
        "config-missing",
        lambda w: train(w, "--config", str(w / "nope.yaml")),
        ("'--config'", "nope.yaml", "does not exist"),
    ),
    # --- train: paths
    (
        "data-missing",
        lambda w: ["train", "--stage", "1", "--data", str(w / "nope"), "--out", str(w / "o")],
        ("'--data'", "does not exist"),
    ),
    (
        "data-is-a-file",
        lambda w: ["train", "--stage", "1", "--data", str(w / "file.txt"), "--out", str(w)],
        ("'--data'", "file.txt", "is a file"),
    ),
    (
        "out-is-a-file",
        lambda w: [
            "train",
            "--stage",
            "1",
            "--data",
            str(w / "data"),
            "--out",
            str(w / "file.txt"),
        ],
        ("file.txt: not a folder",),
    ),
    (
        "stage-2-first",
        lambda w: train(w, stage="2"),
        ("never/stage1: stage 1 is not complete",),
    ),
    (
        "model-unknown",
        lambda w: train(w, "--model", "smollm9"),
        ("--model: no such folder", "('smollm9')"),
    ),
    (
        "model-empty-folder",
        lambda w: train(w, "--model", str(w / "empty")),
        ("empty: not a model folder (no config.json)",),
    ),
    (
        "model-is-a-file",
        lambda w: train(w, "--model", str(w / "file.txt")),
        ("file.txt: not a model folder",),
    ),
    (
        "model-bad-config",
        lambda w: train(w, "--model", str(w / "bad-model")),
        ("bad-model/config.json:2: invalid JSON",),
    ),
    (
        "model-no-weights",
        lambda w: train(w, "--model", str(w / "no-weights")),
        ("no-weights: not a model folder (no *.safetensors",),
    ),
    (
        "model-damaged-marker",
        lambda w: train(w, "--model", str(w / "damaged-marker")),
        ("damaged-marker/toolsft-model.json: unreadable",),
    ),
    (
        "parent-without-weights",
        # a model that does not resolve: the parent is checked first, without a model (the
        # default model would be converted on first use, its progress bar in the output)
        lambda w: [
            *train(w, stage="2")[:-2],
            *("--out", str(w / "run-no-weights"), "--model", str(w / "no-such-model")),
        ],
        ("run-no-weights/stage1: no weights beside run.json",),
    ),
    # --- export
    (
        "export-missing-run",
        lambda w: ["export", "--run", str(w / "nope"), "--stage", "1", "--out", str(w / "x")],
        ("'--run'", "does not exist"),
    ),
    (
        "export-incomplete",
        lambda w: ["export", "--run", str(w / "empty"), "--stage", "1", "--out", str(w / "x")],
        ("empty/stage1/run.json: not found",),
    ),
    (
        "export-broken-run-json",
        lambda w: ["export", "--run", str(w / "run-broken"), "--stage", "1", "--out", str(w)],
        ("run-broken/stage1/run.json:1: invalid JSON",),
    ),
    (
        "export-without-weights",
        lambda w: ["export", "--run", str(w / "run-no-weights"), "--stage", "1", "--out", str(w)],
        ("run-no-weights/stage1: no weights",),
    ),
    (
        "export-stage-4",
        lambda w: ["export", "--run", str(w), "--stage", "4", "--out", str(w / "x")],
        ("'--stage'", "4"),
    ),
    # --- prepare-model and the group itself
    ("prepare-unknown", lambda w: ["prepare-model", "nosuch"], ("--model: no such folder",)),
    (
        "prepare-file",
        lambda w: ["prepare-model", str(w / "file.txt")],
        ("file.txt: not a model folder",),
    ),
    ("unknown-command", lambda w: ["trian"], ("No such command", "trian")),
    # --- other commands: the same contract end to end
    (
        "gen-missing-suite",
        lambda w: ["gen", "--suite", str(w / "nope"), "--out", str(w / "g")],
        ("nope",),
    ),
    (
        "gate-missing-run",
        lambda w: ["gate", str(w / "nope.json"), "--baseline", str(w / "b.json")],
        ("nope.json",),
    ),
    (
        "gate-binary-run",
        lambda w: ["gate", str(w / "binary.yaml"), "--baseline", str(w / "b.json")],
        ("binary.yaml",),
    ),
    ("report-missing", lambda w: ["report", str(w / "nope.json")], ("nope.json",)),
    (
        "eval-missing-data",
        lambda w: [
            "eval",
            "--suite",
            str(REPO / "tool_schemas" / "commerce"),
            "--data",
            str(w / "nope"),
            "--engine",
            "gold",
            "--out",
            str(w / "e"),
        ],  # fmt: skip
        ("nope",),
    ),
]


@pytest.mark.parametrize(("args", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_error_is_one_line_exit_2(
    ws: Path, args: Callable[[Path], list[str]], needles: tuple[str, ...]
) -> None:
    line = error_line(invoke(args(ws)))
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (ws / "runs").exists(), "a refused run must write nothing"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_config_fifo_is_refused_not_read(ws: Path) -> None:
    """Reading a FIFO blocks until a writer comes: it must be refused, not opened."""
    line = error_line(invoke(train(ws, "--config", str(ws / "fifo.yaml"))))
    assert "fifo.yaml: not a regular file" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_config(ws: Path, tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("lora_r: 8\n", encoding="utf-8")
    path.chmod(0)
    line = error_line(invoke(train(ws, "--config", str(path))))
    assert "secret.yaml: cannot read: Permission denied" in line


def test_home_that_is_a_file(ws: Path) -> None:
    res = invoke(["prepare-model", "tiny-random"], env={"TOOLSFT_HOME": str(ws / "file.txt")})
    assert "file.txt: not a folder; set TOOLSFT_HOME" in error_line(res)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(ws: Path, how: str) -> None:
    args = train(ws, "--lr", "0")
    res = invoke(["--debug", *args]) if how == "flag" else invoke(args, env={"TOOLSFT_DEBUG": "1"})
    assert res.exit_code == 2, res.output
    assert "Traceback" in res.output and "ConfigError" in res.output
    assert res.output.rstrip().splitlines()[-1] == "Error: --lr: must be > 0 (0.0)"


def test_help_lists_the_exit_codes() -> None:
    res = invoke(["--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    for code in ("0 success", "1 the gate found a regression", "2 a user error", "3 a bug"):
        assert code in text, code
    assert "--debug" in text


# --- the net in toolsft.cli.main: what escapes a command without a ToolsftError -------------


def _raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> Result:
    """Run `prepare-model` with model resolution replaced by one that raises `exc`."""

    def boom(*_: Any, **__: Any) -> Any:
        raise exc

    monkeypatch.setattr("toolsft.models.resolve_model", boom)
    return invoke(["prepare-model", "x"])


def test_a_bug_keeps_its_traceback_and_is_not_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    res = _raising(monkeypatch, ZeroDivisionError("oops"))
    assert res.exit_code == 3, res.output
    assert "Traceback" in res.output and "ZeroDivisionError: oops" in res.output
    assert "Error: a bug in toolsft (ZeroDivisionError)" in res.output


def test_ctrl_c_is_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    assert error_line(_raising(monkeypatch, KeyboardInterrupt()), 130) == "Error: interrupted"


def test_a_reader_that_left_is_not_a_regression(monkeypatch: pytest.MonkeyPatch) -> None:
    """`toolsft gate ... | head`: a broken pipe is 141 (128 + SIGPIPE), never 1."""
    res = _raising(monkeypatch, BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert res.exit_code == 141 and "Traceback" not in res.output, res.output


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "Error: No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied", "/x/y"), "Error: /x/y: Permission"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not UTF-8 text"),
        (json.JSONDecodeError("Expecting value", "x\ny", 2), "line 2: invalid JSON"),
        (ToolsftError("two\nlines", file="f.json", where="$.a", value=1), "f.json:$.a: two lines"),
        (click.ClickException("a click error"), "Error: a click error"),
    ],
    ids=["disk-full", "permission", "unicode", "json", "multi-line", "click-exit-1"],
)
def test_user_errors_that_escape_are_one_line(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, needle: str
) -> None:
    """Library code raises ToolsftError at the source; the net catches what still escapes,
    and click's own exit 1 becomes 2 (1 is the gate's regression)."""
    assert needle in error_line(_raising(monkeypatch, exc))


@pytest.mark.slow
def test_sigint_during_training_is_exit_130(ws: Path, tmp_path: Path) -> None:
    """A real Ctrl-C while a stage trains: exit 130 and one line, not click's exit 1."""
    from fixtures_train import make_dataset as make_train_dataset

    data = make_train_dataset(tmp_path / "data")
    (data / "manifest.json").unlink()
    env = {**os.environ, "TOOLSFT_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "toolsft.cli", "train", "--stage", "1", "--no-manifest"]
    cmd += ["--data", str(data), "--out", str(tmp_path / "run"), "--model", "tiny-random"]
    cmd += ["--max-steps", "400", "--save-steps", "400", "--batch-size", "1", "--grad-accum", "1"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        # a job started in the background inherits SIGINT ignored; a user's Ctrl-C is not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 300
        for raw in proc.stdout:  # the first progress line: training is under way
            if b"step" in raw or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, rest
    assert "Error: interrupted" in rest and "Traceback" not in rest


# --- eval, report and gate: option values, files and targets checked before any work -------

SUITE = REPO / "tool_schemas" / "commerce"


def gold_eval(ws: Path, out: Path, *extra: str) -> list[str]:
    data = ["--data", str(ws / "data"), "--stages", "1"]
    return ["eval", "--suite", str(SUITE), *data, "--engine", "gold", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def gold_results(ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished gold run's results.json, for report and gate."""
    out = tmp_path_factory.mktemp("gold") / "run"
    res = invoke(gold_eval(ws, out, "--limit", "2", "--quiet"))
    assert res.exit_code == 0, res.output
    return out / "results.json"


def test_eval_negative_limit_is_refused(ws: Path, tmp_path: Path) -> None:
    line = error_line(invoke(gold_eval(ws, tmp_path / "e", "--limit", "-1")))
    assert "'--limit'" in line and "-1" in line, line
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--samples", "0"),
        ("--limit", "0"),
        ("--max-turns", "0"),
        ("--max-tokens", "-1"),
        ("--temperature", "-1"),
        ("--temperature", "nan"),
        ("--top-p", "2"),
        ("--top-p", "0"),
        ("--concurrency", "0"),
        ("--timeout", "0"),
        ("--retries", "-1"),
        ("--deadline", "-5"),
        ("--seed", "-1"),
        ("--batch-size", "0"),
        ("--kv-cache-gib", "inf"),
        ("--dtype", "fp8"),
    ],
)
def test_eval_bad_option_value_is_refused(
    ws: Path, tmp_path: Path, option: str, value: str
) -> None:
    """Each used to run and exit 0 (an empty or meaningless results.json)."""
    line = error_line(invoke(gold_eval(ws, tmp_path / "e", option, value)))
    assert f"'{option}'" in line and value in line, line
    assert not (tmp_path / "e").exists(), "a refused run must write nothing"


def test_eval_bad_split_is_refused(ws: Path, tmp_path: Path) -> None:
    line = error_line(invoke(gold_eval(ws, tmp_path / "e", "--split", "../stage2/test")))
    assert "--split:" in line and "'../stage2/test'" in line, line
    assert not (tmp_path / "e").exists()


def _replay(ws: Path, out: Path, predictions: Path) -> list[str]:
    return gold_eval(ws, out, "--engine", "replay", "--predictions", str(predictions))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "predictions.jsonl: holds no prediction"),
        (b"\n  \n", "predictions.jsonl: holds no prediction"),
        (
            b'{"key": "a#0@0", "text": "x"}\n' + bytes(range(128, 256)),
            "predictions.jsonl:2: not UTF-8",
        ),
        (b'{"id": "a", "turns": ["x"], "sample": "one"}\n', "predictions.jsonl:1: field sample"),
        (b'{"key": "a", "text": ' + b"9" * 5000 + b"}\n", "predictions.jsonl:1: unreadable JSON"),
    ],
    ids=["empty", "blank", "binary", "bad-sample", "huge-int"],
)
def test_eval_replay_bad_predictions_name_the_file(
    ws: Path, tmp_path: Path, content: bytes, needle: str
) -> None:
    preds = tmp_path / "predictions.jsonl"
    preds.write_bytes(content)
    line = error_line(invoke(_replay(ws, tmp_path / "e", preds)))
    assert needle in line and str(tmp_path) in line, line
    assert not (tmp_path / "e").exists()


def test_replay_keeps_a_line_separator_inside_a_text(tmp_path: Path) -> None:
    """Lines split at \\n only: a model's raw U+2028 in a text is not a line break."""
    from toolsft.engines.replay import load_predictions

    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"key": "a", "text": "x\u2028y"}, ensure_ascii=False) + "\n")
    assert load_predictions(preds) == {"a": "x\u2028y"}


def test_eval_out_that_is_a_file_is_refused_before_the_engine(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine(*a: Any, **k: Any) -> None:
        raise AssertionError("an engine was built for a run that must be refused")

    monkeypatch.setattr("toolsft.cli.eval.build_engine", no_engine)
    target = tmp_path / "binary.bin"
    target.write_bytes(b"\x00\xff keep me")
    line = error_line(invoke(gold_eval(ws, target)))
    assert f"{target}: --out must be a folder" in line, line
    assert target.read_bytes() == b"\x00\xff keep me"
    line = error_line(invoke(gold_eval(ws, target / "sub")))
    assert f"{target}: not a folder" in line and "--out" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.bin"]


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_eval_bfcl_checks_folder_and_category_before_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    """No engine (the default is vLLM with the default model) starts for a bad --bfcl."""

    def no_engine(*a: Any, **k: Any) -> None:
        raise AssertionError("an engine was built for a run that must be refused")

    monkeypatch.setattr("toolsft.cli.eval.build_engine", no_engine)
    bfcl = tmp_path / folder
    if folder == "empty":
        bfcl.mkdir()
    out = tmp_path / "out"
    line = error_line(
        invoke(["eval", "--bfcl", str(bfcl), "--category", "simple", "--out", str(out)])
    )
    if folder == "missing":
        assert "'--bfcl'" in line and str(bfcl) in line, line
    else:
        assert f"{bfcl}/BFCL_v4_simple.json: no such BFCL category" in line, line
    assert not out.exists()


def test_eval_jobs_out_that_is_a_file_is_refused_before_any_model(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine(*a: Any, **k: Any) -> None:
        raise AssertionError("an engine was built for a run that must be refused")

    monkeypatch.setattr("toolsft.cli.eval_engine.build_engine", no_engine)
    (tmp_path / "taken").write_text("x")
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"model": "m", "out": str(tmp_path / "taken")}]))
    args = gold_eval(ws, tmp_path / "e", "--engine", "hf", "--jobs", str(jobs))
    line = error_line(invoke(args))
    assert f"{jobs}:[0].out:" in line and "must be a folder" in line, line


def _no_temp_files(folder: Path) -> None:
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_report_out_that_is_a_folder_names_it(gold_results: Path, tmp_path: Path) -> None:
    adir = tmp_path / "adir"
    adir.mkdir()
    line = error_line(invoke(["report", str(gold_results), "--out", str(adir)]))
    assert f"{adir}: --out must be a regular file, and this is a folder" in line, line
    assert list(adir.iterdir()) == []
    _no_temp_files(tmp_path)


def test_report_markdown_folder_is_refused_before_the_html(
    gold_results: Path, tmp_path: Path
) -> None:
    adir, html = tmp_path / "adir", tmp_path / "r.html"
    adir.mkdir()
    args = ["report", str(gold_results), "--out", str(html), "--markdown", str(adir)]
    line = error_line(invoke(args))
    assert f"{adir}: --markdown must be" in line, line
    assert not html.exists(), "nothing is written when one target is refused"
    _no_temp_files(tmp_path)


def test_gate_update_into_a_folder_is_refused(gold_results: Path, tmp_path: Path) -> None:
    adir = tmp_path / "adir"
    adir.mkdir()
    line = error_line(invoke(["gate", str(gold_results), "--baseline", str(adir), "--update"]))
    assert f"{adir}: --baseline must be a regular file" in line, line
    assert list(adir.iterdir()) == []
    _no_temp_files(tmp_path)


def test_gate_markdown_folder_is_refused_before_the_table(
    gold_results: Path, tmp_path: Path
) -> None:
    """One line and exit 2: no table printed first (error_line checks the whole output)."""
    adir = tmp_path / "adir"
    adir.mkdir()
    args = ["gate", str(gold_results), "--baseline", str(gold_results), "--markdown", str(adir)]
    line = error_line(invoke(args))
    assert f"{adir}: --markdown must be a regular file" in line, line
    assert list(adir.iterdir()) == []


def test_gate_markdown_goes_into_a_new_folder(gold_results: Path, tmp_path: Path) -> None:
    md = tmp_path / "new" / "summary.md"
    args = ["gate", str(gold_results), "--baseline", str(gold_results), "--markdown", str(md)]
    res = invoke(args)
    assert res.exit_code == 0, res.output
    assert "| " in md.read_text(encoding="utf-8")


def test_atomic_write_refuses_a_folder_before_making_a_temp_file(tmp_path: Path) -> None:
    from toolsft.io import atomic_write

    (tmp_path / "adir").mkdir()
    with pytest.raises(ToolsftError, match="adir: must be a regular file"):
        atomic_write(tmp_path / "adir", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]
