"""toolsft as an installed package: shipped files found by name from any working directory,
user paths taken relative to it; and the bar itself, a wheel installed into a fresh venv
running `gen` and `eval` on a shipped suite from an empty folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from helpers import make_dataset, scripted_run

from toolsft.cli.main import cli
from toolsft.eval.gate import DEFAULT_TOLERANCE
from toolsft.eval.metrics import METRICS
from toolsft.eval.results import write_run
from toolsft.shipped import (
    KINDS,
    ShippedError,
    all_configs,
    resolve_suite,
    shipped_config,
    shipped_names,
    shipped_suite,
    shipped_tolerances,
)

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _manifest_suite(out: Path) -> str:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))["suite"]


def test_shipped_names_are_the_checkout_files() -> None:
    suites = sorted(p.parent.name for p in (REPO / "tool_schemas").glob("*/suite.yaml"))
    assert shipped_names("suite") == suites and suites
    accelerate = sorted(p.stem for p in (REPO / "configs" / "accelerate").glob("*.yaml"))
    assert shipped_names("accelerate") == accelerate and accelerate
    assert (
        shipped_config("accelerate/ddp").read_bytes()
        == (REPO / "configs" / "accelerate" / "ddp.yaml").read_bytes()
    )
    assert shipped_config("demo/quick.yaml").name == "quick.yaml"


def test_a_name_works_from_another_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_suite("finance") == shipped_suite("finance")
    assert (resolve_suite("finance") / "suite.yaml").is_file()
    res = _run("gen", "--suite", "finance", "--out", "d", "--per-stage", "20", "--seed", "1")
    assert res.exit_code == 0, res.output
    assert _manifest_suite(tmp_path / "d") == "finance"


def test_a_folder_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a folder called `commerce` holding the travel suite: the user's folder is what counts
    shutil.copytree(shipped_suite("travel"), tmp_path / "commerce")
    monkeypatch.chdir(tmp_path)
    assert resolve_suite("commerce") == Path("commerce")
    res = _run("gen", "--suite", "commerce", "--out", "d", "--per-stage", "20")
    assert res.exit_code == 0, res.output
    assert _manifest_suite(tmp_path / "d") == "travel"


def test_a_data_folder_does_not_hide_a_shipped_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `gen --out commerce` then `--suite commerce`: the folder holds data, not a suite
    (tmp_path / "commerce").mkdir()
    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_suite("commerce") == shipped_suite("commerce")
    assert resolve_suite("mine") == Path("mine")  # not shipped: load_suite says what is wrong


@pytest.mark.parametrize("command", ["gen", "eval", "curve", "demo"])
def test_an_unknown_name_is_one_line_with_a_guess(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    extra = {"gen": ["--out", "d"], "curve": ["--data", "d"]}.get(command, [])
    res = _run(command, "--suite", "comerce", *extra)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    line = lines[0]
    assert "comerce: no such folder" in line and "did you mean commerce?" in line
    assert f"shipped: {', '.join(shipped_names('suite'))}" in line
    assert "--suite" in line


def test_a_file_is_not_a_suite_folder(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("a: 1\n", encoding="utf-8")
    with pytest.raises(ShippedError, match="x.yaml: not a folder, and no shipped suite"):
        resolve_suite(tmp_path / "x.yaml")


def test_configs_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = _run("configs", "accelerate/ddp")
    assert res.exit_code == 0, res.output
    assert Path(res.output.strip()) == shipped_config("accelerate/ddp")
    assert Path(res.output.strip()).is_file()
    listing = _run("configs")
    assert listing.exit_code == 0, listing.output
    assert [line.split()[0] for line in listing.output.splitlines()] == all_configs()
    bad = _run("configs", "accelerate/dpp")
    assert bad.exit_code == 2
    assert "did you mean accelerate/ddp?" in bad.output and len(bad.output.splitlines()) == 1


def test_gate_uses_the_shipped_tolerances_from_another_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = yaml.safe_load(shipped_tolerances().read_text(encoding="utf-8"))
    tol = shipped["metrics"]["task_completion"]
    assert tol != DEFAULT_TOLERANCE  # else this test could not tell the two apart
    data = make_dataset(tmp_path / "data", suite=shipped_suite("commerce"), per_stage=20)
    run = write_run(scripted_run(data, suite=shipped_suite("commerce")), tmp_path / "run")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = _run("gate", str(run), "--baseline", str(run), "--markdown", "gate.md")
    assert res.exit_code == 0, res.output
    label = METRICS["task_completion"].label
    row = next(r for r in Path("gate.md").read_text().splitlines() if r.startswith(f"| {label} |"))
    assert row.split("|")[5].strip() == f"{100 * tol:.1f}"


# --- the bar: a wheel in a fresh venv, from an empty folder --------------------------------


def _venv_seeing_dev_packages(where: Path) -> Path:
    """A venv whose python sees the dev venv's third-party packages but not its editable
    toolsft: a .pth naming a folder adds it to sys.path, and the .pth files inside that folder
    (the editable finder's) are not processed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dev = sysconfig.get_paths()["purelib"]
    Path(purelib, "dev-venv.pth").write_text(dev + "\n", encoding="utf-8")
    return python


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
        + ["install", "-q", "--no-deps", "--no-index", "--ignore-installed", *args],
        check=True,
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _in(python: Path, code: str, cwd: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", code], cwd=cwd, env=_clean_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout to build from (a build writes build/ and *.egg-info beside it)."""
    src = tmp_path_factory.mktemp("src") / "toolsft"
    skip = shutil.ignore_patterns(
        ".*", "__pycache__", "*.egg-info", "build", "dist", "runs", "reports", "datasets"
    )
    shutil.copytree(REPO, src, ignore=skip)
    return src


def test_wheel_install_runs_the_bar_from_an_empty_folder(source: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--disable-pip-version-check", "-w", str(tmp_path / "wheels"), str(source)],
        check=True,
    )
    (wheel,) = (tmp_path / "wheels").glob("toolsft-*.whl")
    python = _venv_seeing_dev_packages(tmp_path / "venv")
    _pip(python, str(wheel))
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _in(python, "import toolsft; print(toolsft.__file__)", empty)
    assert Path(where).is_relative_to(tmp_path / "venv"), where
    # every shipped name of the checkout is in the wheel
    names = _in(
        python,
        "import json; from toolsft import shipped as s; "
        "print(json.dumps({k: s.shipped_names(k) for k in s.KINDS}))",
        empty,
    )
    assert json.loads(names) == {k: shipped_names(k) for k in KINDS}
    toolsft = tmp_path / "venv" / "bin" / "toolsft"
    for args in (
        ["gen", "--suite", "commerce", "--out", "d", "--seed", "1"],
        ["eval", "--suite", "commerce", "--data", "d", "--engine", "gold", "--out", "r"],
    ):
        out = subprocess.run(
            [str(toolsft), *args], cwd=empty, env=_clean_env(), capture_output=True, text=True
        )
        assert out.returncode == 0, f"{args}: {out.stdout[-2000:]}{out.stderr[-2000:]}"
    assert _manifest_suite(empty / "d") == "commerce"
    results = json.loads((empty / "r" / "results.json").read_text(encoding="utf-8"))
    assert results["run"]["suite"]["name"] == "commerce"
    assert Path(results["run"]["suite"]["path"]).is_relative_to(tmp_path / "venv")
    assert results["rows"], "no episode scored"
    print(f"wheel bar: {time.monotonic() - start:.1f} s")


def test_editable_install_reads_the_checkout(source: Path, tmp_path: Path) -> None:
    python = _venv_seeing_dev_packages(tmp_path / "venv")
    _pip(python, "--no-build-isolation", "-e", str(source))
    empty = tmp_path / "empty"
    empty.mkdir()
    root = _in(python, "from toolsft import shipped; print(shipped.ROOT)", empty)
    assert Path(root) == source
    assert not (source / "toolsft" / "_shipped").exists()  # nothing copied into the checkout
    out = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "toolsft"), "configs", "accelerate/ddp"],
        cwd=empty,
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == source / "configs" / "accelerate" / "ddp.yaml"
