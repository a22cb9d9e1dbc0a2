"""Atomic files and folders, sha256, and the manifest that proves a dataset folder whole.

A file is written to a temporary name beside it and renamed into place; a folder is built as a
hidden sibling and swapped in at the end. A process killed at any point (even with SIGKILL)
therefore leaves the previous file or folder, or none, never half of one. `manifest.json` is
written last into a dataset folder and records the sha256 of every other file in it, so a
reader can tell a finished, untouched dataset from anything else.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from toolsft.errors import ToolsftError

MANIFEST = "manifest.json"
MANIFEST_LIMIT = 64 << 20
"""Largest manifest.json read (a real one is a few kB): a bigger one is refused, not loaded."""
_PARTIAL = ".partial-"


class DataError(ToolsftError, ValueError):
    """A dataset (or one of its files) that cannot be used; the message names the file."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(
    path: str | Path, *, folder: bool = False, option: str | None = None, special: bool = False
) -> Path:
    """Refuse, before anything is written, a target that cannot be what is written there: a
    folder where a file goes (or the reverse), a device or FIFO where a file is replaced
    (`special` allows one, for a file that is appended to), or a path under something that is
    not a folder. `option` names the flag the path came from."""
    path = Path(path)
    flag = f"{option} " if option else ""
    exists = path.exists()
    if exists or path.is_symlink():
        # A dangling link where a file goes is fine: the rename replaces the link itself.
        fits = path.is_dir() if folder else not exists or path.is_file() or special
        if not fits or (not folder and path.is_dir()):
            what = "a folder" if path.is_dir() else "a file" if path.is_file() else "a special file"
            want = "a folder" if folder else "a regular file"
            raise ToolsftError(f"{flag}must be {want}, and this is {what}", file=path)
    for parent in path.parents:
        if parent.is_dir():
            break
        if parent.exists() or parent.is_symlink():
            raise ToolsftError(
                f"not a folder, so {flag}{path} cannot be written in it", file=parent
            )
    return path


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename (text as UTF-8, `\\n`).
    A target that is a folder (or under a file) is refused, naming it, before anything is
    made; a write that fails names the target, not the temporary file."""
    path = check_writable(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ToolsftError(f"cannot write ({exc.strerror or exc})", file=path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ToolsftError(f"cannot write ({exc.strerror or exc})", file=path) from exc
        raise


def read_json_object(path: Path, error: type[ToolsftError] = ToolsftError) -> dict[str, Any]:
    """The JSON object in `path`, or `error` naming the file and what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", file=path) from exc
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (a bad byte at offset {exc.start})", file=path) from None
    except json.JSONDecodeError as exc:
        raise error(f"invalid JSON: {exc.msg}", file=path, where=exc.lineno) from None
    if not isinstance(data, dict):
        raise error("must be a JSON object", file=path, value=type(data).__name__)
    return data


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks (datasets and weights can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- folders ------------------------------------------------------------------------------


def partial_dir(target: Path) -> Path:
    """A new hidden folder beside `target` (same file system, so it can be renamed onto it).
    Its name carries this process's id, so a later run can tell a dead run's leftovers."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}{_PARTIAL}{os.getpid()}-"
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))


def clear_dead_partials(target: Path) -> list[Path]:
    """Remove the partial folders of `target` whose process is gone (killed runs); returns them.
    A live process's folder is kept: two runs may build the same target at once."""
    prefix = f".{target.name}{_PARTIAL}"
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for path in target.parent.iterdir():
        if not path.name.startswith(prefix) or path.is_symlink() or not path.is_dir():
            continue
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class Terminated(SystemExit):
    """SIGTERM received inside `sigterm_unwinds`: exit status 143 (128 + SIGTERM), as a shell
    reports a process the signal killed, but raised so that cleanup code runs first."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` instead of killing the process at once, so
    `with`/`finally` blocks remove partial folders and temporary files on the way out (Ctrl-C
    already unwinds as KeyboardInterrupt; SIGKILL cannot be caught, which is what
    `clear_dead_partials` is for). A handler someone else installed is left alone, and so is
    every thread but the main one, where Python cannot handle signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    raised = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal raised
        if not raised:  # a second SIGTERM must not interrupt the cleanup the first started
            raised = True
            raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def swap_dir(new: Path, target: Path, replace: bool = True) -> None:
    """Put folder `new` at `target`, replacing what is there as a whole; `new` is consumed.

    On Linux the two are exchanged in one step (renameat2), so `target` always holds either
    the old folder or the new one. Elsewhere the old folder is renamed aside first, leaving a
    moment with no `target` at all, still never a mix of the two. Without `replace`, only a
    missing or empty `target` is filled; a non-empty one raises OSError (ENOTEMPTY/EEXIST),
    even if another process filled it a moment ago.
    """
    new.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; a dataset is meant to be shared
    if not replace:
        os.rename(new, target)
    else:
        _replace_dir(new, target)
    _fsync_dir(target.parent)


def _replace_dir(new: Path, target: Path, tries: int = 5) -> None:
    """`swap_dir` with `replace`. Another writer may create or swap `target` between our look
    and our rename (two `gen --overwrite` into one folder): a rename that finds the folder
    filled, or an exchange that finds it gone, looks again instead of failing."""
    raced = (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST)
    for attempt in range(tries):
        try:
            if not target.exists() and not target.is_symlink():
                os.rename(new, target)
            elif _exchange(new, target):
                shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old folder
            else:
                old = new.with_name(new.name + ".old")
                os.rename(target, old)
                try:
                    os.rename(new, target)
                finally:
                    shutil.rmtree(old, ignore_errors=True)
            return
        except OSError as exc:
            if attempt == tries - 1 or exc.errno not in raced:
                raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # an old kernel or a file system without it: take the two-rename path
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or file system can sync a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- the manifest -------------------------------------------------------------------------


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
