"""The one error type of suite loading: it names the file, the JSON path and the bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolsft.errors import _UNSET, ToolsftError, short_repr


class SuiteError(ToolsftError, ValueError):
    def __init__(self, file: Path | str, path: str, message: str, value: Any = None) -> None:
        super().__init__(message, file=file, where=path, value=_UNSET if value is None else value)
        self.path = path


def _short(value: Any, limit: int = 80) -> str:
    return short_repr(value, limit)
