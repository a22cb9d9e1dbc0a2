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

from toolsft.io import DataError, sha256_file
from toolsft.manifest import MANIFEST, find_manifest_root, read_manifest, verify_dataset
from toolsft.types import STAGES, Example


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
    require_manifest: bool = True,
) -> EvalData:
    """Rows of `split` for `stages`; `limit` rows per stage, a seeded sample (not the first n).

    The dataset is checked against its manifest.json before a row is read (every file's
    sha256, no file missing or added); one without a manifest is refused unless
    `require_manifest` is off. `path` may also be one data file of a dataset."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError("must be a whole number of rows >= 1", where="--limit", value=limit)
    if not split or split.startswith(".") or "/" in split or "\\" in split:
        raise DataError("a split is a plain name such as test or val", where="--split", value=split)
    root = Path(path)
    if not root.exists():
        raise DataError("not found (run `toolsft gen` first)", file=root)
    dataset = (find_manifest_root(root) or root.parent) if root.is_file() else root
    manifest, manifest_hash = _manifest(dataset, suite_hash, require_manifest)
    if root.is_file():
        files = [root]
    else:
        files = [root / f"stage{s}" / f"{split}.jsonl" for s in stages]
        files = [f for f in files if f.is_file()]
        if not files:
            raise DataError(
                f"{root}: no stage*/{split}.jsonl for stages {list(stages)} "
                "(run `toolsft gen` first)"
            )
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
    """A split's rows as Examples; a row without an id gets `<stage folder>-<line>`."""
    from toolsft.rows import iter_jsonl

    out: list[Example] = []
    for n, obj in iter_jsonl(file):
        try:
            ex = Example.from_row(obj)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise DataError(
                f"not a toolsft row ({exc.__class__.__name__}: {exc})", file=file, where=n
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


def _manifest(
    folder: Path, suite_hash: str | None, required: bool
) -> tuple[dict[str, Any], str | None]:
    file = folder / MANIFEST
    if not file.exists() and not file.is_symlink():
        verify_dataset(folder, required)  # refuses, naming the folder, when required
        return {}, None
    manifest = read_manifest(file)
    # The suite comes first: data from another version of the suite is the likelier mistake.
    got = manifest.get("suite_hash")
    if suite_hash and got and got != suite_hash:
        raise DataError(
            f"{file}: field suite_hash = {str(got)[:12]}… but the suite's hash is "
            f"{suite_hash[:12]}…: the data was generated from another version of the "
            "suite; run `toolsft gen` again"
        )
    verify_dataset(folder)
    return manifest, sha256_file(file)
