"""The files shipped with toolsft, found by name: suites, baselines, tolerances, configs.

A wheel carries them inside the package (`toolsft/_shipped/`, copied there by setup.py); a
checkout or an editable install keeps them at the repository root, in the same layout. This
module is the one place that knows where they are. User paths are never resolved here: they
are taken as given, relative to the working directory.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from toolsft.errors import ToolsftError

_PACKAGE = Path(__file__).resolve().parent
_PACKAGED = _PACKAGE / "_shipped"
ROOT = _PACKAGED if _PACKAGED.is_dir() else _PACKAGE.parent
"""Where the shipped files live: the package's `_shipped/` (a wheel) or the checkout root."""

# kind -> (folder under ROOT, file suffix of one item; "" for a suite folder)
KINDS: dict[str, tuple[str, str]] = {
    "suite": ("tool_schemas", ""),
    "baseline": ("evals/baselines", ".json"),
    "accelerate": ("configs/accelerate", ".yaml"),
    "demo": ("configs/demo", ".yaml"),
}
TOLERANCES = "evals/tolerances.yaml"


class ShippedError(ToolsftError):
    """A shipped name that does not exist."""


def shipped_names(kind: str) -> list[str]:
    """The names of one kind of shipped file, sorted (a suite is a folder with suite.yaml)."""
    folder, suffix = KINDS[kind]
    base = ROOT / folder
    if not base.is_dir():
        return []
    if not suffix:
        return sorted(p.name for p in base.iterdir() if (p / "suite.yaml").is_file())
    return sorted(p.name[: -len(suffix)] for p in base.glob(f"*{suffix}") if p.is_file())


def shipped_path(kind: str, name: str) -> Path:
    """The shipped file (or suite folder) `name` of `kind`; `name` may carry the suffix."""
    folder, suffix = KINDS[kind]
    if suffix and name.endswith(suffix):
        name = name[: -len(suffix)]
    names = shipped_names(kind)
    if name not in names:
        raise ShippedError(f"no shipped {kind} of that name{_hint(name, names)}", where=name)
    return ROOT / folder / f"{name}{suffix}"


def shipped_suite(name: str) -> Path:
    """The shipped suite folder `name` (`commerce`, ...)."""
    return shipped_path("suite", name)


def shipped_baseline(name: str) -> Path:
    """Where the shipped baseline `name` is, or would be: a caller may test `.is_file()` (the
    demo has a baseline for some budgets only), so an unknown name is not an error here."""
    folder, suffix = KINDS["baseline"]
    return ROOT / folder / (name if name.endswith(suffix) else f"{name}{suffix}")


def shipped_tolerances() -> Path:
    """The gate's shipped tolerances file."""
    return ROOT / TOLERANCES


def shipped_config(name: str) -> Path:
    """A shipped config by `<kind>/<name>`, e.g. `accelerate/ddp` or `demo/cpu`."""
    kind, _, rest = name.removesuffix(".yaml").partition("/")
    if kind in ("accelerate", "demo") and rest in shipped_names(kind):
        return shipped_path(kind, rest)
    raise ShippedError(f"no shipped config of that name{_hint(name, all_configs())}", where=name)


def all_configs() -> list[str]:
    """Every shipped config as `<kind>/<name>`."""
    return [f"{k}/{n}" for k in ("accelerate", "demo") for n in shipped_names(k)]


def resolve_suite(value: str | Path) -> Path:
    """A `--suite` value: an existing folder (relative to the working directory) wins, else
    a shipped suite name; one error naming both when neither exists.

    A folder without suite.yaml does not hide a shipped suite of its name: `gen --out commerce`
    makes a data folder that a later `--suite commerce` must not be read as."""
    path = Path(value)
    names = shipped_names("suite")
    if path.is_dir() and ((path / "suite.yaml").exists() or str(value) not in names):
        return path
    if str(value) in names:
        return shipped_suite(str(value))
    what = "not a folder" if path.exists() else "no such folder"
    raise ShippedError(
        f"{what}, and no shipped suite of that name{_hint(path.name, names)}",
        file=str(value),
    )


def _hint(name: str, names: list[str]) -> str:
    """`; did you mean X? (shipped: a, b, c)`, or just the list when nothing is close."""
    close = difflib.get_close_matches(name, names, n=1)
    guess = f"; did you mean {close[0]}?" if close else ""
    return f"{guess} (shipped: {', '.join(names) or 'none'})"
