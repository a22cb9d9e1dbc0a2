"""Atomic files and folders, and sha256.

A file is written to a temporary name beside it and renamed into place; a folder is built as a
hidden sibling and swapped in at the end. A process killed at any point (even with SIGKILL)
therefore leaves the previous file or folder, or none, never half of one. The manifest that
proves a dataset folder whole is `toolsft.manifest`.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError

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
