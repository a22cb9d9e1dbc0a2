"""The documentation cannot drift: docs/cli.md is the CLI's --help, the README stays a short
guide whose links resolve, every metric is defined in docs/metrics.md, and the code carries no
dated history (that lives in docs/experiments.md)."""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 200


def _cli_docs():
    spec = importlib.util.spec_from_file_location("cli_docs", REPO / "scripts" / "cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_md_is_the_current_help() -> None:
    # In a fresh interpreter: click caches each command's help option the first time one is
    # made, so a test that invoked a command on its own (without the group's -h) changes it.
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, (
        "docs/cli.md differs from the CLI's --help: run python scripts/cli_docs.py\n"
        + proc.stdout[-2000:]
        + proc.stderr[-2000:]
    )


def test_cli_md_has_every_command(tmp_path: Path) -> None:
    from toolsft.cli.main import cli

    cli_docs = _cli_docs()
    out = tmp_path / "cli.md"
    assert cli_docs.main(["--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    names = cli.list_commands(None)  # type: ignore[arg-type]
    assert names
    for name in names:
        assert f"## toolsft {name}\n" in text
        assert f"Usage: toolsft {name} [OPTIONS]" in text
    assert cli_docs.main(["--check", "--out", str(out)]) == 0
    out.write_text(text.replace("Usage:", "Usage :", 1), encoding="utf-8")
    assert cli_docs.main(["--check", "--out", str(out)]) == 1


def test_cli_md_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    cli_docs = _cli_docs()
    monkeypatch.setenv("COLUMNS", "200")
    wide = cli_docs.render()
    monkeypatch.setenv("COLUMNS", "40")
    assert cli_docs.render() == wide


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move depth to docs/"
    )


def test_readme_gives_exactly_the_two_setup_commands() -> None:
    """A fresh machine needs `make demo` and `make test`, and nothing else."""
    text = README.read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(path: Path) -> list[tuple[str, str]]:
    out = []
    for target in _LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file, _, anchor = target.partition("#")
        out.append((file, anchor))
    return out


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize(
    "doc", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: str(p.relative_to(REPO))
)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for file, anchor in _relative_links(doc):
        target = (doc.parent / file).resolve()
        if not target.exists():
            broken.append(file)
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{file}#{anchor}")
    assert not broken, f"{doc.name}: links to nothing: {broken}"


def test_readme_links_into_docs() -> None:
    linked = {Path(f).as_posix() for f, _ in _relative_links(README)}
    for name in ("training.md", "metrics.md", "performance.md", "experiments.md", "cli.md"):
        assert f"docs/{name}" in linked


def test_every_metric_is_defined_in_metrics_md() -> None:
    from toolsft.eval.metrics import METRICS

    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    missing = [name for name in METRICS if f"| `{name}` (" not in text]
    assert not missing, f"docs/metrics.md has no definition row for {missing}"


# --- no dated history in the code -------------------------------------------------------------

_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATED = re.compile(
    r"\b20\d\d-\d\d-\d\d\b"  # an ISO date
    rf"|\b{_MONTHS},? +(?:of +)?20\d\d\b"  # a month and a year: "Dec 2026", "December, 2026"
    r"|\b20\d\d-(?:0[1-9]|1[0-2])\b(?!-\d)"  # a year and a month: "2026-12"
)
_ALLOWED = ("2020-12",)
"""JSON Schema's draft name ("the 2020-12 meta-schema") is a version, not a date."""
_DATE_VALUE = re.compile(r"20\d\d-\d\d-\d\d")
"""A string literal that is a date and nothing else is a data value (a suite's default date
range), not a dated finding."""


def dated_lines(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and string (docstrings and help texts included) that
    carries a date, except the data values and names above."""
    found = []
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    text_kinds = {tokenize.COMMENT, tokenize.STRING}
    text_kinds |= {getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}  # Python >= 3.12
    for tok in tokens:
        if tok.type not in text_kinds:
            continue
        if tok.type == tokenize.STRING and _is_date_value(tok.string):
            continue
        for m in _DATED.finditer(tok.string):
            if m.group(0) in _ALLOWED:
                continue
            line = tok.start[0] + tok.string.count("\n", 0, m.start())
            found.append((line, source.splitlines()[line - 1].strip()))
    return found


def _is_date_value(literal: str) -> bool:
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return False
    return isinstance(value, str) and _DATE_VALUE.fullmatch(value) is not None


def test_dated_lines_finds_history_and_spares_data() -> None:
    source = (
        "# measured on 2026-12-02: 1.34x\n"
        'DATES = ["2026-01-01", "2026-12-31"]\n'
        'def f():\n    """Step times (December 2026) on the EPYC."""\n'
        '    help = "as of Dec 2026, 2x faster"\n'
        "    # the 2020-12 meta-schema; sized in 2026-11\n"
        "    return dt.date(2026, 1, 1)\n"
    )
    assert [line for line, _ in dated_lines(source)] == [1, 4, 5, 6]


def test_no_dated_lines_in_the_package() -> None:
    """History belongs in docs/experiments.md; comments say why the code is as it is now."""
    found = []
    for path in sorted((REPO / "toolsft").rglob("*.py")):
        rel = path.relative_to(REPO)
        found += [f"{rel}:{n}: {text}" for n, text in dated_lines(path.read_text("utf-8"))]
    assert not found, "dated lines in the code (move the finding to docs/experiments.md):\n" + (
        "\n".join(found)
    )
