"""Read and check the gate's tolerances file (evals/tolerances.yaml).

Every key, name and number is checked: a typo in a metric name, a negative, NaN or string
tolerance, a rate tolerance above 1 (points written as percent), an alpha outside (0, 0.5) are
refused with the file and the key, never read as "no tolerance" or "the default".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError
from toolsft.eval.metrics import METRICS

KEYS = ("default", "alpha", "metrics", "ignore")
MAX_BYTES = 1 << 20
"""A tolerances file is a few lines; anything larger is not one (and YAML can be slow)."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_tolerances(
    file: Path, defaults: Mapping[str, Any], error: type[ToolsftError]
) -> dict[str, Any]:
    """`defaults` overridden by `file`; raises `error` naming the file and key of a bad entry."""
    import yaml

    raw = _read(file, error)
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = None if line is None else f"line {line + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error(f"invalid YAML: {problem}", file=file, where=where) from exc
    except RecursionError as exc:
        raise error("YAML nested too deeply", file=file) from exc
    if doc is None:
        raise error(f"empty tolerances file (expected the keys {', '.join(KEYS)})", file=file)
    if not isinstance(doc, Mapping):
        raise error(f"must be a mapping with the keys {', '.join(KEYS)}", file=file, value=doc)
    for key in doc:
        if key not in KEYS:
            raise error(
                f"unknown key (allowed: {', '.join(KEYS)})", file=file, where=key, value=key
            )
    out = dict(defaults)
    if "default" in doc:
        out["default"] = _tolerance(doc["default"], None, file, "default", error)
    if "alpha" in doc:
        alpha = doc["alpha"]
        if not _number(alpha) or not 0 < alpha < 0.5:
            raise error(
                "alpha is a significance level in (0, 0.5)", file=file, where="alpha", value=alpha
            )
        out["alpha"] = float(alpha)
    out["metrics"] = _per_metric(doc.get("metrics"), file, error)
    out["ignore"] = _ignore(doc.get("ignore"), file, error)
    return out


def _read(file: Path, error: type[ToolsftError]) -> str:
    if not file.exists():
        raise error("no such tolerances file", file=file)
    if not file.is_file():  # a folder, or a FIFO that would hang the read
        raise error("tolerances file is not a regular file", file=file)
    if file.stat().st_size > MAX_BYTES:
        raise error(f"larger than {MAX_BYTES} bytes: not a tolerances file", file=file)
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("not UTF-8 text", file=file, where=f"byte {exc.start}") from exc


def _tolerance(
    value: Any, metric: str | None, file: Path, where: str, error: type[ToolsftError]
) -> float:
    if not _number(value) or value < 0:
        raise error("a tolerance is a finite number >= 0", file=file, where=where, value=value)
    is_count = metric is not None and METRICS[metric].reduce == "sum"
    if not is_count and value > 1:
        raise error(
            "a rate tolerance is a fraction in [0, 1] (0.03 = 3 points)",
            file=file,
            where=where,
            value=value,
        )
    return float(value)


def _per_metric(raw: Any, file: Path, error: type[ToolsftError]) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise error("must map metric names to tolerances", file=file, where="metrics", value=raw)
    out = {}
    for name, tol in raw.items():
        if name not in METRICS:
            raise error(
                f"unknown metric (known: {', '.join(METRICS)})",
                file=file,
                where=f"metrics.{name}",
                value=name,
            )
        out[name] = _tolerance(tol, name, file, f"metrics.{name}", error)
    return out


def _ignore(raw: Any, file: Path, error: type[ToolsftError]) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise error("must be a list of metric names", file=file, where="ignore", value=raw)
    for i, name in enumerate(raw):
        if not isinstance(name, str) or name not in METRICS:
            raise error(
                f"unknown metric (known: {', '.join(METRICS)})",
                file=file,
                where=f"ignore[{i}]",
                value=name,
            )
    return list(raw)
