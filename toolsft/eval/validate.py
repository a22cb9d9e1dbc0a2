"""Read and check results.json and baseline files before anything compares them.

A file the gate cannot trust is refused with the error contract's one line (file, JSON path,
what is wrong, the bad value), never compared: not JSON, empty, truncated, NaN or Infinity
anywhere, a metric out of range, n <= 0, a figure that disagrees with the per-episode rows it
summarises, duplicate episodes. The checks cover what the gate reads (`run`, `metrics`, `rows`);
group breakdowns (`by`) and timings are for reports and are not read here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from toolsft.errors import ToolsftError
from toolsft.eval.metrics import METRICS, Metric, reduce_values
from toolsft.eval.text import BLEU_STATS

SLACK = 1e-9
"""Rounding allowance on range checks (results store values rounded to 6 decimals)."""
MATCH = 2e-6
"""How far a stored value may sit from the value its rows give (both rounded to 6 decimals)."""


class _Constant:
    """Where a NaN or Infinity literal stood (Python's json accepts them; JSON does not)."""

    def __init__(self, name: str) -> None:
        self.name = name


def _find_constant(value: Any, path: str = "") -> tuple[str, str] | None:
    """The JSON path and literal of the first NaN/Infinity in a parsed document."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, _Constant):
            return where or "$", node.name
        if isinstance(node, dict):
            items = [(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()]
        elif isinstance(node, list):
            items = [(v, f"{where}[{i}]") for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(items))
    return None


def read_json(file: Path, error: type[ToolsftError], what: str) -> Any:
    """The parsed JSON of `file`, or `error` naming the file and why it cannot be read."""
    if not file.exists():
        raise error(f"no such {what}", file=file)
    if not file.is_file():  # a folder, a FIFO (reading it would hang) or a device
        raise error(f"{what} is not a regular file", file=file)
    raw = file.read_bytes()
    if not raw.strip():
        raise error(f"empty {what}", file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("not UTF-8 text", file=file, where=f"byte {exc.start}") from exc
    try:
        doc = json.loads(text, parse_constant=_Constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise error(f"not JSON: {exc.msg} (truncated?)", file=file, where=where) from exc
    except RecursionError as exc:
        raise error("JSON nested too deeply", file=file) from exc
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise error(f"not JSON: {exc}", file=file) from exc
    bad = _find_constant(doc)
    if bad is not None:
        raise error("must be a finite number", file=file, where=bad[0], value=bad[1])
    return doc


class _Doc:
    """One document under check: raises `error` with the file and a JSON path."""

    def __init__(self, file: str, error: type[ToolsftError]) -> None:
        self.file, self.error = file, error

    def fail(self, where: str, message: str, *value: Any) -> ToolsftError:
        if value:
            return self.error(message, file=self.file, where=where, value=value[0])
        return self.error(message, file=self.file, where=where)

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "must be an object", value)
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, "must be a non-empty string", value)
        return value

    def count(self, value: Any, where: str, least: int) -> int:
        if not _is_int(value) or value < least:
            raise self.fail(where, f"must be an integer >= {least}", value)
        return int(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def finite(value: Any) -> bool:
    """A JSON number that is a finite float (bools and 309-digit integers are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def validate_doc(
    doc: Any, file: str, error: type[ToolsftError], schemas: tuple[str, ...], rows_required: bool
) -> None:
    """Refuse (raise `error`) anything in a results or baseline document the gate cannot use."""
    d = _Doc(file, error)
    top = d.mapping(doc, "$")
    if top.get("schema") not in schemas:
        expected = " or ".join(repr(s) for s in schemas)
        raise d.fail("schema", f"unknown schema, expected {expected}", top.get("schema"))
    run = d.mapping(top.get("run"), "run")
    d.text(d.mapping(run.get("suite"), "run.suite").get("hash"), "run.suite.hash")
    data = d.mapping(run.get("data"), "run.data")
    d.text(data.get("data_hash"), "run.data.data_hash")
    for key in ("split",):
        if data.get(key) is not None:
            d.text(data[key], f"run.data.{key}")
    samples = d.count(run["samples"], "run.samples", 1) if run.get("samples") is not None else 1
    metrics = d.mapping(top.get("metrics"), "metrics")
    if not metrics:
        raise d.fail("metrics", "no metrics to compare")
    for name, stats in metrics.items():
        _check_summary(d, name, stats)
    if top.get("rows") is None:
        if rows_required:
            raise d.fail("rows", "missing: the per-episode outcomes are needed to compare runs")
        return
    rows = _check_rows(d, top["rows"])
    if _is_int(data.get("rows")) and len(rows) != data["rows"] * samples:
        raise d.fail(
            "rows",
            f"{len(rows)} episodes, but run.data.rows x run.samples = {data['rows'] * samples}",
        )
    _check_agreement(d, metrics, rows)


def _check_summary(d: _Doc, name: str, stats: Any) -> None:
    where = f"metrics.{name}"
    metric = METRICS.get(name)
    if metric is None:
        raise d.fail(where, f"unknown metric (known: {', '.join(METRICS)})", name)
    s = d.mapping(stats, where)
    _check_value(d, metric, s.get("value"), f"{where}.value")
    d.count(s.get("n"), f"{where}.n", 1)
    ci = s.get("ci")
    if ci is None:
        return
    if not isinstance(ci, list) or len(ci) != 2:
        raise d.fail(f"{where}.ci", "must be [low, high]", ci)
    for i, bound in enumerate(ci):
        _check_value(d, metric, bound, f"{where}.ci[{i}]", integer=False)
    if ci[0] > ci[1] + SLACK:
        raise d.fail(f"{where}.ci", "low end above high end", ci)


def _check_value(d: _Doc, metric: Metric, value: Any, where: str, integer: bool = True) -> None:
    if not finite(value):
        raise d.fail(where, "must be a finite number", value)
    if metric.reduce == "sum":  # an interval of a count may fall between integers
        if value < 0 or (integer and not float(value).is_integer()):
            raise d.fail(where, "a count must be an integer >= 0", value)
    elif not -SLACK <= value <= 1 + SLACK:
        raise d.fail(where, "a rate must lie in [0, 1]", value)


def _check_rows(d: _Doc, rows: Any) -> list[tuple[tuple[str, int], Mapping[str, Any]]]:
    """(episode key, values) of every row; refuses malformed rows and repeated episodes."""
    if not isinstance(rows, list) or not rows:
        raise d.fail("rows", "must be a non-empty list of episodes", rows)
    seen: set[tuple[str, int]] = set()
    out = []
    for i, row in enumerate(rows):
        r = d.mapping(row, f"rows[{i}]")
        key = (
            d.text(r.get("id"), f"rows[{i}].id"),
            d.count(r.get("sample", 0), f"rows[{i}].sample", 0),
        )
        if key in seen:
            raise d.fail(f"rows[{i}]", "the same episode twice (id, sample)", list(key))
        seen.add(key)
        values = d.mapping(r.get("values"), f"rows[{i}].values")
        for name, vec in values.items():
            _check_vector(d, name, vec, f"rows[{i}].values.{name}")
        out.append((key, values))
    return out


def _check_vector(d: _Doc, name: str, vec: Any, where: str) -> None:
    metric = METRICS.get(name)
    if metric is None:
        raise d.fail(where, "unknown metric", name)
    size = BLEU_STATS if metric.reduce == "bleu" else 2
    if not isinstance(vec, list) or len(vec) != size or not all(finite(x) for x in vec):
        raise d.fail(where, f"must be a list of {size} finite numbers", vec)
    if any(x < 0 for x in vec):
        raise d.fail(where, "negative statistic", vec)
    if metric.reduce == "rate" and not (vec[1] > 0 and vec[0] <= vec[1] + SLACK):
        raise d.fail(where, "a rate row is [hits, n] with 0 <= hits <= n and n > 0", vec)
    if metric.reduce == "sum" and not float(vec[0]).is_integer():
        raise d.fail(where, "a count must be an integer", vec)


def _check_agreement(
    d: _Doc, metrics: Mapping[str, Any], rows: list[tuple[tuple[str, int], Mapping[str, Any]]]
) -> None:
    """Every stored figure must be what its rows give: a file edited in one place (or cut
    short) is refused rather than gated on whichever half the gate happens to read."""
    names = {name for _, values in rows for name in values}
    for name in names - set(metrics):
        raise d.fail(f"metrics.{name}", "missing, though the rows score it")
    for name, stats in metrics.items():
        vecs = [values[name] for _, values in rows if name in values]
        if not vecs:
            raise d.fail(f"metrics.{name}", "no row scores this metric")
        if len(vecs) != stats["n"]:
            raise d.fail(f"metrics.{name}.n", f"the rows give n = {len(vecs)}", stats["n"])
        got = float(reduce_values(METRICS[name], np.asarray(vecs, dtype=float).sum(axis=0)))
        if not abs(got - stats["value"]) <= MATCH:
            raise d.fail(f"metrics.{name}.value", f"the rows give {round(got, 6)}", stats["value"])
