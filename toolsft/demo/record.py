"""The demo's record of finished steps, which `toolsft demo --resume` continues from.

A 150-minute CPU run that dies in its last stage should not start again from the base model's
evaluation. After each step that lets the run go on, the runner rewrites `<logs>/done.json`:
the plan's identity (`plan_key`) and, in order, each finished step's name, seconds and exit
code. A resumed run skips the longest prefix of its steps that the record lists under the
same key; everything after the first step it runs is run again, since its inputs may differ.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.io import atomic_write

RECORD = "done.json"


@dataclass(frozen=True)
class Finished:
    """A step an earlier run finished: what it took and how it exited."""

    name: str
    seconds: float
    returncode: int


def plan_key(steps_argv: list[tuple[str, ...]], files: list[Path]) -> str:
    """The identity of a demo run: every step's command line, and the bytes of the files they
    read that the command lines do not show (the budget file, the suite's files)."""
    h = hashlib.sha256(json.dumps(steps_argv).encode())
    for path in sorted(files):
        h.update(str(path).encode() + b"\0")
        h.update(path.read_bytes() if path.is_file() else b"(missing)")
    return h.hexdigest()


def read_record(logs: Path, key: str) -> list[Finished]:
    """The finished steps recorded under `key`, in order; none for another plan or no record."""
    try:
        doc: Any = json.loads((logs / RECORD).read_text(encoding="utf-8"))
        if doc.get("key") != key:
            return []
        return [Finished(str(d["name"]), float(d["seconds"]), int(d["rc"])) for d in doc["done"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []  # a missing or damaged record resumes nothing: every step runs


def write_record(logs: Path, key: str, done: list[Finished]) -> None:
    doc = {
        "key": key,
        "done": [
            {"name": f.name, "seconds": round(f.seconds, 3), "rc": f.returncode} for f in done
        ],
    }
    atomic_write(logs / RECORD, json.dumps(doc, indent=1) + "\n")


def clear_record(logs: Path) -> None:
    (logs / RECORD).unlink(missing_ok=True)
