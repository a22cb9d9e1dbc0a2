"""Load the rows an eval runs on, and the hashes that make two runs comparable.

`datasets/<suite>/stage{1,2,3}/{split}.jsonl` plus `manifest.json` (written by `toolsft gen`).
The data hash covers exactly the rows evaluated (after `--limit`), so the gate can refuse to
compare runs over different rows even when the manifest is the same.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.types import STAGES, Example


class DataError(ValueError):
    """Eval data that cannot be used; the message names the file, field and bad value."""


@dataclass(frozen=True)
class EvalData:
    examples: list[Example]
    data_hash: str
    """SHA-256 over the canonical JSON of the selected rows, in order."""
    manifest_hash: str | None
    """SHA-256 of manifest.json's bytes (None when there is no manifest)."""
    manifest: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def load_eval_data(
    path: str | Path,
    split: str = "test",
    stages: Sequence[int] = STAGES,
    limit: int | None = None,
    seed: int = 0,
    suite_hash: str | None = None,
) -> EvalData:
    """Rows of `split` for `stages`; `limit` rows per stage, a seeded sample (not the first n)."""
    root = Path(path)
    if root.is_file():
        files = [root]
        manifest_file = root.parent / "manifest.json"
    else:
        files = [root / f"stage{s}" / f"{split}.jsonl" for s in stages]
        files = [f for f in files if f.is_file()]
        manifest_file = root / "manifest.json"
        if not files:
            raise DataError(
                f"{root}: no stage*/{split}.jsonl for stages {list(stages)} "
                "(run `toolsft gen` first)"
            )
    manifest, manifest_hash = _manifest(manifest_file, suite_hash)
    examples: list[Example] = []
    for file in files:
        rows = read_rows(file)
        if limit is not None and len(rows) > limit:
            picked = sorted(
                random.Random(f"{seed}:{file.parent.name}").sample(range(len(rows)), limit)
            )
            rows = [rows[i] for i in picked]
        examples.extend(rows)
    return EvalData(examples, rows_hash(examples), manifest_hash, manifest, [str(f) for f in files])


def read_rows(file: Path) -> list[Example]:
    out: list[Example] = []
    with open(file, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                ex = Example.from_row(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(
                    f"{file}:{n}: not a toolsft row ({exc.__class__.__name__}: {exc})"
                ) from exc
            if "id" not in ex.meta:
                ex = Example(ex.messages, ex.tools, {**ex.meta, "id": f"{file.parent.name}-{n}"})
            out.append(ex)
    return out


def rows_hash(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.to_row(), sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


def _manifest(file: Path, suite_hash: str | None) -> tuple[dict[str, Any], str | None]:
    if not file.is_file():
        return {}, None
    raw = file.read_bytes()
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    got = manifest.get("suite_hash")
    if suite_hash and got and got != suite_hash:
        raise DataError(
            f"{file}: field suite_hash = {got[:12]}… but the suite's hash is "
            f"{suite_hash[:12]}…: the data was generated from another version of the "
            "suite; run `toolsft gen` again"
        )
    return manifest, hashlib.sha256(raw).hexdigest()
