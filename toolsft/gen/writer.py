"""Write a generated dataset: JSONL always, plus Hugging Face or ShareGPT (LLaMA-Factory) exports.

The dataset is built in a hidden folder beside the target and swapped in whole at the end, with
`manifest.json` (every file's sha256 and row count) written last. A run killed at any point
leaves the target as it was: absent, or the complete previous dataset.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from toolsft.fastjson import row_of
from toolsft.io import (
    DataError,
    atomic_write,
    clear_dead_partials,
    partial_dir,
    sigterm_unwinds,
    swap_dir,
)
from toolsft.manifest import MANIFEST, write_manifest
from toolsft.types import Example, dumps

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "hf", "sharegpt")
_DATASET_ENTRY = re.compile(r"stage\d+|sharegpt|manifest\.json")


def jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    # `dumps` is `json.dumps(r, ensure_ascii=False)`, byte for byte, with the encoder built once.
    return "".join(dumps(r) + "\n" for r in rows)


def check_target(out: Path, overwrite: bool, shown: Path | None = None) -> None:
    """Refuse an output path that gen must not fill: a file, a non-empty folder without
    `overwrite`, and (even with it) a non-empty folder that is not a dataset, which replacing
    whole would delete. Messages name `shown` (the path as the user gave it), else `out`."""
    name = out if shown is None else shown
    if out.exists() and not out.is_dir():
        raise DataError("--out must be a folder, not a file", file=name)
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not overwrite:
        raise DataError(
            "output folder is not empty; pass --overwrite to replace it whole, or choose "
            "another --out",
            file=name,
        )
    if MANIFEST not in entries and not all(_DATASET_ENTRY.fullmatch(e) for e in entries):
        raise DataError(
            "not a toolsft dataset (no manifest.json), so --overwrite will not delete it; "
            "remove it yourself or choose another --out",
            file=name,
            value=entries[0] if len(entries) == 1 else entries[:3],
        )


class DatasetWriter:
    """Collects a dataset's files in a hidden folder beside `out`; `commit` swaps it in.

    Use as a context manager: leaving it without `commit` (an error, Ctrl-C, SIGTERM) removes
    the partial folder and leaves `out` untouched.
    """

    def __init__(self, out: Path, fmt: str = "jsonl", overwrite: bool = False) -> None:
        if fmt not in FORMATS:
            raise DataError(
                f"unknown format (one of {', '.join(FORMATS)})", where="--format", value=fmt
            )
        self.out = Path(out)
        # Absolute, links followed: the partial folder goes beside the real target (`--out .`
        # included) and the swap renames the folder a symlinked --out points to.
        self.target = self.out.resolve()
        self.fmt = fmt
        self.overwrite = overwrite
        self.rows: dict[tuple[int, str], list[Example]] = {}
        self.counts: dict[str, int] = {}
        self.tmp: Path | None = None
        self._signals = contextlib.ExitStack()

    def __enter__(self) -> DatasetWriter:
        check_target(self.target, self.overwrite, self.out)
        for path in clear_dead_partials(self.target):
            logger.info("removed %s, left by a run that was killed", path)
        # SIGTERM (a CI timeout, `kill`) unwinds through __exit__ like Ctrl-C instead of
        # leaving the partial folder behind.
        self._signals.enter_context(sigterm_unwinds())
        try:
            self.tmp = partial_dir(self.target)
        except BaseException:
            self._signals.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.tmp is not None:
                if kind is not None and issubclass(kind, (KeyboardInterrupt, SystemExit)):
                    logger.warning("stopped: removing the unfinished dataset %s", self.tmp)
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.tmp = None
        finally:
            self._signals.close()

    def add(self, stage: int, split: str, examples: list[Example]) -> None:
        """Write `stage<N>/<split>.jsonl` now; the rows are kept for the exports of `commit`."""
        assert self.tmp is not None, "DatasetWriter.add outside `with`"
        rel = f"stage{stage}/{split}.jsonl"
        atomic_write(self.tmp / rel, jsonl(row_of(e) for e in examples))
        self.rows[(stage, split)] = examples
        self.counts[rel] = len(examples)

    def commit(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Write the exports, then manifest.json, then swap the folder in; returns the manifest."""
        assert self.tmp is not None, "DatasetWriter.commit outside `with`"
        if self.fmt == "sharegpt":
            self.counts.update(write_sharegpt(self.tmp, self.rows))
        if self.fmt == "hf":
            write_hf(self.tmp, self.rows)
        written = write_manifest(self.tmp, {**manifest, "format": self.fmt}, self.counts)
        # Checked again: another run may have filled the target while this one generated.
        check_target(self.target, self.overwrite, self.out)
        try:
            swap_dir(self.tmp, self.target, replace=self.overwrite)
        except OSError as exc:
            raise DataError(
                f"another run wrote this folder while gen was running ({exc.strerror})",
                file=self.out,
            ) from exc
        self.tmp = None
        return written


def write_dataset(
    out: Path,
    rows: Mapping[tuple[int, str], list[Example]],
    manifest: dict[str, Any],
    fmt: str = "jsonl",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write `stage<N>/<split>.jsonl` (+ the chosen export) and `manifest.json` into `out`,
    atomically as a whole; refuses a non-empty `out` unless `overwrite`."""
    with DatasetWriter(out, fmt, overwrite) as writer:
        for (stage, split), examples in sorted(rows.items()):
            writer.add(stage, split, examples)
        return writer.commit(manifest)


def write_hf(out: Path, rows: Mapping[tuple[int, str], list[Example]]) -> None:
    """`datasets.DatasetDict.save_to_disk` per stage (tools/meta stay JSON strings)."""
    import datasets

    for stage in sorted({s for s, _ in rows}):
        splits = {
            split: datasets.Dataset.from_list([row_of(e) for e in exs])
            for (s, split), exs in rows.items()
            if s == stage and exs
        }
        datasets.DatasetDict(splits).save_to_disk(str(out / f"stage{stage}" / "hf"))


def to_sharegpt(ex: Example) -> dict[str, Any]:
    """LLaMA-Factory's ShareGPT layout: human/gpt/function_call/observation turns."""
    conv: list[dict[str, str]] = []
    system = ""
    for msg in ex.messages:
        role = msg["role"]
        if role == "system":
            system = str(msg["content"])
        elif role == "user":
            conv.append({"from": "human", "value": str(msg["content"])})
        elif role == "tool":
            conv.append({"from": "observation", "value": str(msg["content"])})
        elif msg.get("tool_calls"):
            calls = [
                {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                for c in msg["tool_calls"]
            ]
            conv.append(
                {
                    "from": "function_call",
                    "value": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False),
                }
            )
        else:
            conv.append({"from": "gpt", "value": str(msg["content"])})
    tools = json.dumps([t.to_openai()["function"] for t in ex.tools], ensure_ascii=False)
    return {"conversations": conv, "system": system, "tools": tools}


def write_sharegpt(out: Path, rows: Mapping[tuple[int, str], list[Example]]) -> dict[str, int]:
    """LLaMA-Factory files plus their dataset_info.json; returns each file's row count."""
    info: dict[str, Any] = {}
    files: dict[str, int] = {}
    for (stage, split), examples in sorted(rows.items()):
        name = f"toolsft_stage{stage}_{split}"
        rel = f"sharegpt/{name}.json"
        text = json.dumps([to_sharegpt(e) for e in examples], ensure_ascii=False, indent=1) + "\n"
        atomic_write(out / rel, text)
        files[rel] = len(examples)
        info[name] = {
            "file_name": f"{name}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        }
    atomic_write(out / "sharegpt" / "dataset_info.json", json.dumps(info, indent=2) + "\n")
    return files
