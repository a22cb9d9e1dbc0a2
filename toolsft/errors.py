"""The one exception base of toolsft, and how a user error reads.

A `ToolsftError` is a user error: a bad file, field, value, missing path or an unsupported
combination of options. The CLI turns it, in one place (`toolsft.cli.main`), into one line,
`Error: <file>:<json path or line>: <what is wrong> (<the bad value>)`, and exit code 2.
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_UNSET: Any = object()
VALUE_LIMIT = 80


def short_repr(value: Any, limit: int = VALUE_LIMIT) -> str:
    """`repr(value)` cut to `limit` characters, so a 50 kB value never floods a message."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not hide the error it belongs to
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_line(
    message: str,
    file: str | Path | None = None,
    where: str | int | None = None,
    value: Any = _UNSET,
) -> str:
    """`<file>:<where>: <message> (<value>)`, leaving out the parts that are not known."""
    head = ":".join(str(p) for p in (file, where) if p is not None and p != "")
    text = f"{head}: {message}" if head else message
    return text if value is _UNSET else f"{text} ({short_repr(value)})"


class ToolsftError(Exception):
    """A user error (exit code 2 in the CLI). Subclasses add the stage's own meaning."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        where: str | int | None = None,
        value: Any = _UNSET,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.where = where
        self.value = None if value is _UNSET else value
        super().__init__(error_line(message, file, where, value))
