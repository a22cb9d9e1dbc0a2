"""Where model aliases are built: one place for every command that loads a model."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "~/.cache/toolsft"


def toolsft_home() -> Path:
    """$TOOLSFT_HOME, or ~/.cache/toolsft: the models folder lives under it."""
    return Path(os.environ.get("TOOLSFT_HOME", DEFAULT_HOME)).expanduser()
