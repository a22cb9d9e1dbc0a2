"""Write docs/cli.md from the CLI's own --help, so the reference cannot drift from the code.

    .venv/bin/python scripts/cli_docs.py           # rewrite docs/cli.md
    .venv/bin/python scripts/cli_docs.py --check   # exit 1 when docs/cli.md is stale

Every command's help is rendered as `toolsft COMMAND --help` prints it on a terminal at least
80 columns wide (click wraps at 80 by default): the width is fixed here, not read from the
terminal, so the file is the same on every machine. `tests/test_docs.py` compares it with
the committed file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "cli.md"
WIDTH = 78
"""What click prints on any terminal of 80 columns or more (its max_content_width, 80, less
the 2 it keeps free)."""


def _context(cmd: click.Command, name: str, parent: click.Context | None) -> click.Context:
    settings = {**cmd.context_settings, "terminal_width": WIDTH, "max_content_width": 80}
    return click.Context(cmd, info_name=name, parent=parent, **settings)


def render() -> str:
    """docs/cli.md's text: the group's help, then every command's, in the group's order."""
    from toolsft.cli import main as cli_main

    cli = cli_main.cli
    listing = getattr(cli_main, "HELP", {})  # what `toolsft --help` lists, when it has a table
    if not isinstance(cli, click.Group):
        raise SystemExit("toolsft.cli.main:cli is not a click group")
    root = _context(cli, "toolsft", None)
    names = cli.list_commands(root)
    parts = [
        "# Command-line reference\n",
        "Generated from `toolsft --help` by `scripts/cli_docs.py` (`make docs`); do not edit by",
        "hand: `tests/test_docs.py` fails when this file and the help texts differ.\n",
        "| command | what it does |",
        "|---|---|",
    ]
    commands = []
    for name in names:
        cmd = cli.get_command(root, name)
        if cmd is None:
            raise SystemExit(f"toolsft {name}: listed but not found")
        commands.append((name, cmd))
        short = listing.get(name) or cmd.get_short_help_str(200)
        parts.append(f"| [`toolsft {name}`](#toolsft-{name}) | {short} |")
    parts += ["", "## toolsft\n", _block(cli.get_help(root))]
    for name, cmd in commands:
        parts += [f"## toolsft {name}\n", _block(cmd.get_help(_context(cmd, name, root)))]
    return "\n".join(parts)


def _block(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    return "```text\n" + "\n".join(lines).strip("\n") + "\n```\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is stale")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale: run python scripts/cli_docs.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
