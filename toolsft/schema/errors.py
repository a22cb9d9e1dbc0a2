"""The one error type of suite loading: it names the file, the JSON path and the bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SuiteError(ValueError):
    def __init__(self, file: Path | str, path: str, message: str, value: Any = None) -> None:
        self.file, self.path, self.message, self.value = str(file), path, message, value
        shown = "" if value is None else f" (got {_short(value)})"
        super().__init__(f"{file}: {path}: {message}{shown}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
