"""Baseline documents: what a baseline keeps of a run, how it is written, what an update changes.

A baseline (`toolsft.baseline/2`) keeps a run's comparability info (suite and data hashes,
split, model, decoding), its overall metrics and, when it is one run, each episode's metric
values: what the gate's paired tests need, without texts. `toolsft.baseline/1` files (and
floors, which mix runs) keep no per-episode values; the gate tests them unpaired.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from toolsft.eval.metrics import METRICS

BASELINE_SCHEMA = "toolsft.baseline/2"
BASELINE_SCHEMAS = ("toolsft.baseline/1", BASELINE_SCHEMA)
"""/1 kept no per-episode outcomes (unpaired tests only); /2 keeps them when it is one run."""


def baseline_from_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """What a baseline keeps of a run: comparability info, overall metrics and each episode's
    metric values (what paired tests need; no texts)."""
    run = results["run"]
    keep = ("name", "suite", "data", "model", "adapter", "engine", "decoding", "samples", "seed")
    return {
        "schema": BASELINE_SCHEMA,
        "created": results.get("created"),
        "run": {k: run.get(k) for k in keep},
        "metrics": {
            k: {"value": s["value"], "ci": s.get("ci"), "n": s.get("n")}
            for k, s in (results.get("metrics") or {}).items()
        },
        "rows": [
            {"id": r["id"], "sample": r.get("sample", 0), "values": r["values"]}
            for r in results.get("rows") or []
        ],
    }


def portable(value: Any, root: PurePath) -> Any:
    """`value` with every absolute path under `root` made relative to it: a baseline is
    committed, and this machine's folders mean nothing on another one."""
    if isinstance(value, Mapping):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and value.startswith(str(root).rstrip("/") + "/"):
        return str(PurePath(value).relative_to(root))
    return value


def dump_baseline(doc: Mapping[str, Any]) -> str:
    """Indented JSON with one line per episode, so a baseline diff stays readable."""
    head = {k: v for k, v in doc.items() if k != "rows" and not k.startswith("_")}
    text = json.dumps(head, ensure_ascii=False, indent=1)
    if not doc.get("rows"):
        return text + "\n"
    rows = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in doc["rows"])
    return text[:-2] + ',\n "rows": [\n' + rows + "\n ]\n}\n"


def baseline_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What an update changes, one line each: `metric: old -> new`."""
    if old is None:
        return [f"{k}: {_fmt(k, s['value'])} (new)" for k, s in new["metrics"].items()]
    out = []
    for key, label in (("suite", "suite hash"), ("data", "data hash")):
        field_ = "hash" if key == "suite" else "data_hash"
        a, b = (old["run"].get(key) or {}).get(field_), (new["run"].get(key) or {}).get(field_)
        if a != b:
            out.append(f"{label}: {str(a)[:12]} -> {str(b)[:12]}")
    om, nm = old.get("metrics") or {}, new["metrics"]
    for name in [*nm, *(k for k in om if k not in nm)]:
        a = (om.get(name) or {}).get("value")
        b = (nm.get(name) or {}).get("value")
        if a != b:
            out.append(f"{name}: {_fmt(name, a)} -> {_fmt(name, b)}")
    return out


def _fmt(name: str, v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:g}" if METRICS[name].reduce == "sum" else f"{100 * v:.1f}%"
