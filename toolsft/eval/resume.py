"""predictions.jsonl written as the run goes, and `toolsft eval --resume` from it.

Each model turn is appended the moment it is made (one JSON line in the format of
`toolsft.engines.predictions`, flushed), under its replay key
(`toolsft.engines.replay.request_key`) with the engine's own numbers, so a killed run keeps
everything it paid for and `--engine replay` reads the file as is. Beside it,
`resume.json` records what identifies the run (suite, rows, model, options): `--resume`
continues only the same run, reads the turns already made and asks the engine for the rest.
A half-written last line (the process died mid-write) is dropped; anything else that does
not read is refused rather than guessed at.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from toolsft.engines.base import Generation
from toolsft.engines.predictions import parse_prediction, prediction_line
from toolsft.errors import ToolsftError, short_repr
from toolsft.io import atomic_write

logger = logging.getLogger(__name__)

RESUME_SCHEMA = "toolsft.eval.resume/1"
PREDICTIONS = "predictions.jsonl"
RESUME = "resume.json"
_SHOWN_DIFFS = 3


class ResumeError(ToolsftError, ValueError):
    """A run folder that `--resume` cannot continue; the message says what differs or broke."""


def read_log(data: bytes, file: Path) -> tuple[dict[str, Generation], int]:
    """The predictions in `data` and the byte length of its good part.

    Only the last line may be broken (a write cut by a kill); a broken line before it means
    the file was changed by something else, and resuming from it could mix runs.
    """
    lines = data.split(b"\n")
    last = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    done: dict[str, Generation] = {}
    pos = 0
    for i, raw in enumerate(lines):
        if raw.strip():
            try:
                key, gen = parse_prediction(raw)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                if i == last:
                    logger.warning("%s:%d: dropping a half-written last line", file, i + 1)
                    return done, pos
                raise ResumeError(
                    "not a prediction line; the file was changed after the run wrote it, "
                    "so --resume cannot trust it (start over without --resume)",
                    file=file,
                    where=i + 1,
                    value=_reason(exc),
                ) from exc
            done[key] = gen
        pos += len(raw) + (1 if i < len(lines) - 1 else 0)
    return done, pos


def differences(before: Any, now: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted field, value before, value now) for every field that differs."""
    if isinstance(before, Mapping) and isinstance(now, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for k in list(now) + [k for k in before if k not in now]:
            out += differences(before.get(k), now.get(k), f"{prefix}{k}.")
        return out
    return [] if before == now else [(prefix.rstrip("."), before, now)]


def check_identity(meta: Path, identity: Mapping[str, Any]) -> None:
    """Refuse to resume a run whose suite, rows, model or options differ from this one."""
    try:
        saved = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResumeError("cannot read the interrupted run's identity", file=meta) from exc
    if not isinstance(saved, dict) or saved.get("schema") != RESUME_SCHEMA:
        got = saved.get("schema") if isinstance(saved, dict) else type(saved).__name__
        raise ResumeError(
            f"not a toolsft resume file (expected {RESUME_SCHEMA})",
            file=meta,
            where="schema",
            value=got,
        )
    diffs = differences(saved.get("identity"), _plain(identity))
    if diffs:
        shown = "; ".join(
            f"{k}: {_short(a)} before, {_short(b)} now" for k, a, b in diffs[:_SHOWN_DIFFS]
        )
        more = f" and {len(diffs) - _SHOWN_DIFFS} more" if len(diffs) > _SHOWN_DIFFS else ""
        raise ResumeError(
            f"--resume would mix two different runs: {shown}{more}; use another --out, "
            "or drop --resume to start this folder over",
            file=meta,
            where=diffs[0][0],
        )


class PredictionLog:
    """predictions.jsonl of one run folder, open for appending and locked against a second
    writer; `done` holds the predictions a resumed run already has."""

    def __init__(self, folder: Path, identity: Mapping[str, Any], resume: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.file, self.meta = folder / PREDICTIONS, folder / RESUME
        self._fh: IO[bytes] = open(self.file, "a+b")  # noqa: SIM115 (held open for the run)
        try:
            _lock(self._fh, self.file)
            self.done = self._resume(identity) if resume else self._start(identity)
        except BaseException:
            self._fh.close()
            raise
        self.written = 0

    def _start(self, identity: Mapping[str, Any]) -> dict[str, Generation]:
        self._fh.seek(0)
        if self._fh.read(1) and _unfinished(self.meta):
            raise ResumeError(
                "holds the predictions of an unfinished run; add --resume to continue it, "
                "or delete the file (or use another --out) to start over",
                file=self.file,
            )
        self._fh.truncate(0)
        self._write_meta(identity, finished=False)
        return {}

    def _write_meta(self, identity: Mapping[str, Any], finished: bool) -> None:
        self.identity = _plain(identity)
        doc = {"schema": RESUME_SCHEMA, "finished": finished, "identity": self.identity}
        atomic_write(self.meta, json.dumps(doc, ensure_ascii=True, indent=1) + "\n")

    def finish(self) -> None:
        """Every prediction is made: a later run into this folder may start it over."""
        self.sync()
        self._write_meta(self.identity, finished=True)

    def _resume(self, identity: Mapping[str, Any]) -> dict[str, Generation]:
        self._fh.seek(0)
        data = self._fh.read()
        if not self.meta.is_file():
            if data.strip():
                raise ResumeError(
                    f"no {RESUME} beside it, so nothing says which run these predictions "
                    "belong to; drop --resume to start over",
                    file=self.file,
                )
            logger.info("--resume: nothing to resume in %s, starting the run", self.file.parent)
            return self._start(identity)
        check_identity(self.meta, identity)
        self.identity = _plain(identity)
        done, good = read_log(data, self.file)
        self._fh.truncate(good)
        if good and not data[:good].endswith(b"\n"):
            self._fh.write(b"\n")
        logger.info("--resume: %d predictions already made in %s", len(done), self.file)
        return done

    def append(self, key: str, gen: Generation) -> None:
        self._fh.write(prediction_line(key, gen).encode("ascii"))
        self._fh.flush()  # in the kernel's hands: a killed process loses nothing written
        self.written += 1

    def sync(self) -> None:
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _unfinished(meta: Path) -> bool:
    """Whether `meta` says its run stopped before every prediction was made."""
    try:
        saved = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # no identity: nothing a later --resume could use anyway
    return isinstance(saved, dict) and saved.get("finished") is False


def _lock(fh: IO[bytes], file: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks, one writer is the user's business
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise ResumeError(
            "another `toolsft eval` is writing into this folder; wait for it or use another --out",
            file=file,
        ) from exc


def _plain(identity: Mapping[str, Any]) -> Any:
    """The identity as JSON reads it back (tuples as lists), so saved and current compare."""
    return json.loads(json.dumps(identity, ensure_ascii=True, default=str))


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:  # a sha256: its head is enough
        return repr(value[:12] + "…")
    return short_repr(value, 40)


def _reason(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {str(exc)[:80]}"
