"""Click parameter types shared by the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

SUITE_HELP = "Suite: a shipped name (commerce, finance, travel) or a folder."


class SuiteParam(click.ParamType):
    """A `--suite` value as a folder: an existing folder (relative to the working directory)
    wins, else a shipped suite by name."""

    name = "suite"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        from toolsft.shipped import ShippedError, resolve_suite

        try:
            return resolve_suite(value)
        except ShippedError as exc:
            self.fail(str(exc), param, ctx)


SUITE = SuiteParam()
