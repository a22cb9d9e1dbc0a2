"""The manifest that proves a dataset folder whole.

`manifest.json` is written last into a dataset folder (`toolsft gen` builds the folder aside
and swaps it in, `toolsft.io.swap_dir`) and records the sha256 of every other file in it, so
a reader can tell a finished, untouched dataset from a changed, mixed or unfinished one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from toolsft.io import DataError, atomic_write, sha256_file

MANIFEST = "manifest.json"
MANIFEST_LIMIT = 64 << 20


def data_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every entry under `folder` that is not a folder,
    manifest.json excepted, in sorted order. Links are listed, never followed."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        links = [d for d in dirs if (here / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d not in links)
        for name in sorted(files + links):
            path = here / name
            rel = path.relative_to(folder).as_posix()
            if rel != MANIFEST:
                yield rel, path


def count_rows(path: Path) -> int | None:
    """Rows in a data file: non-blank lines of a .jsonl, items of a .json list; else None."""
    if path.suffix == ".jsonl":
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    if path.suffix == ".json":
        try:
            obj = json.loads(path.read_bytes())
        except ValueError:
            return None
        return len(obj) if isinstance(obj, list) else None
    return None


def write_manifest(
    folder: Path, manifest: Mapping[str, Any], rows: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Hash every file in `folder` and write `manifest.json` (last) with
    `"files": {"<relative path>": {"sha256": ..., "rows": N}}`; returns the manifest written.
    `rows` gives known row counts; other files are counted by `count_rows`."""
    rows = rows or {}
    files = {
        rel: {"sha256": sha256_file(path), "rows": rows[rel] if rel in rows else count_rows(path)}
        for rel, path in data_files(folder)
    }
    out = {**manifest, "files": files}
    atomic_write(folder / MANIFEST, json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    return out


def read_manifest(file: Path) -> dict[str, Any]:
    """Parse and check a manifest.json: a JSON object whose `files` name safe relative paths
    with a sha256 each. Errors name the file and the JSON path."""
    if not file.is_file():
        raise DataError("not a regular file", file=file)
    if file.stat().st_size > MANIFEST_LIMIT:
        raise DataError(f"larger than {MANIFEST_LIMIT >> 20} MiB", file=file)
    try:
        manifest = json.loads(file.read_bytes())
    except UnicodeDecodeError as exc:
        raise DataError("not UTF-8 text", file=file) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"not JSON: {exc.msg}", file=file, where=f"line {exc.lineno}") from exc
    except RecursionError as exc:
        raise DataError("JSON nested too deeply", file=file) from exc
    if not isinstance(manifest, dict):
        raise DataError(
            "must be a JSON object", file=file, where="$", value=type(manifest).__name__
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise DataError(
            "must map each data file to its sha256 (write the dataset with `toolsft gen`)",
            file=file,
            where="$.files",
            value=files,
        )
    for rel, entry in files.items():
        _check_entry(file, rel, entry)
    return manifest


def _check_entry(file: Path, rel: str, entry: Any) -> None:
    where = f"$.files[{json.dumps(rel, ensure_ascii=False)}]"
    parts = PurePosixPath(rel).parts
    if not rel or rel.startswith("/") or "\\" in rel or ".." in parts or rel == MANIFEST:
        raise DataError("not a path inside the dataset folder", file=file, where=where, value=rel)
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(sha, str) or len(sha) != 64 or set(sha) - set("0123456789abcdef"):
        raise DataError("needs a hex sha256", file=file, where=f"{where}.sha256", value=sha)


def verify_dataset(folder: str | Path, required: bool = True) -> dict[str, Any] | None:
    """Check `folder` against its manifest.json: every listed file present with its sha256, and
    no file that is not listed. Returns the manifest, or None when there is none and it is not
    `required`. A failure names the file: the dataset was changed, mixed or never finished."""
    folder = Path(folder)
    file = folder / MANIFEST
    if not file.exists() and not file.is_symlink():
        if not required:
            return None
        raise DataError(
            "no manifest.json: not a finished `toolsft gen` dataset (pass --no-manifest to "
            "use it anyway)",
            file=folder,
        )
    manifest = read_manifest(file)
    listed: dict[str, dict[str, Any]] = manifest["files"]
    for rel, path in data_files(folder):
        if rel not in listed:
            raise DataError(
                "not listed in manifest.json: the dataset was changed or mixed after "
                "`toolsft gen` wrote it",
                file=path,
            )
    for rel, entry in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            what = "missing" if not path.exists() else "not a regular file"
            raise DataError(f"listed in manifest.json but {what}", file=path)
        got = sha256_file(path)
        if got != entry["sha256"]:
            raise DataError(
                f"changed after `toolsft gen` wrote it: sha256 {got[:12]}... differs from "
                f"manifest.json's {entry['sha256'][:12]}...",
                file=path,
            )
    return manifest


def find_manifest_root(path: Path) -> Path | None:
    """The dataset folder a data file belongs to: the nearest of its parent and grandparent
    (`<data>/stage1/test.jsonl`) that holds a manifest.json."""
    for folder in (path.parent, path.parent.parent):
        if (folder / MANIFEST).exists():
            return folder
    return None
