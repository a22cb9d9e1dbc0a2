"""Where the files shipped beside the package live: suites, baselines, budgets.

A checkout (or an editable install) keeps them at the repository root, next to the package;
user paths are always taken as given, relative to the working directory.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shipped_suite(name: str) -> Path:
    """`tool_schemas/<name>` of the checkout."""
    return ROOT / "tool_schemas" / name


def shipped_baseline(name: str) -> Path:
    """`evals/baselines/<name>` of the checkout."""
    return ROOT / "evals" / "baselines" / name
