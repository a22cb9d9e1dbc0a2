"""The `toolsft` command. Subcommands are imported lazily so `toolsft --help` is instant."""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import sys
import traceback
from typing import Any

import click

from toolsft.errors import ToolsftError

# name -> "module:attribute"; each module holds one thin click command.
COMMANDS: dict[str, str] = {
    "gen": "toolsft.cli.gen:gen",
    "export-bfcl": "toolsft.cli.bfcl:export_bfcl",
    "train": "toolsft.cli.train:train",
    "export": "toolsft.cli.train:export",
    "prepare-model": "toolsft.cli.model:prepare_model",
    "eval": "toolsft.cli.eval:eval_cmd",
    "report": "toolsft.cli.eval:report",
    "bfcl-score": "toolsft.cli.bfcl:bfcl_score",
    "gate": "toolsft.cli.gate:gate",
    "demo": "toolsft.cli.demo:demo",
    "curve": "toolsft.cli.curve:curve",
    "configs": "toolsft.cli.configs:configs",
}

HELP = {
    "gen": "Generate staged, verified SFT data from a tool suite.",
    "export-bfcl": "Write a generated test split as BFCL question + possible_answer files.",
    "train": "Train one curriculum stage (or --all) as a LoRA adapter.",
    "export": "Merge a trained adapter into its base model for serving.",
    "prepare-model": "Build a model alias's local folder once (GGUF -> safetensors).",
    "eval": "Run a model through test episodes and score every part of the job.",
    "report": "Render an HTML report from one or more results.json.",
    "bfcl-score": "Score BFCL predictions made elsewhere with BFCL's AST rules.",
    "gate": "Compare a run with a baseline; exit 1 on regression.",
    "demo": "The whole loop on the embedded default model, with the gain measured.",
    "curve": "Learning curve: snapshots at geometric steps, scored on one fixed episode set.",
    "configs": "List the shipped configs by name, or print one's path (accelerate/ddp, ...).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise

            @click.command(cmd_name, help=HELP[cmd_name] + " (not available in this build)")
            def missing() -> None:
                raise click.ClickException(f"'{cmd_name}' is not implemented yet")

            return missing
        return getattr(module, attr)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # The group's own options (`toolsft --bogus`) answer on the same terms as a command's.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc, exc.ctx or click.Context(self, info_name=info_name)) from exc

    def invoke(self, ctx: click.Context) -> Any:
        # The error contract, in one place: a user error is one line and exit 2; exit 1 is
        # kept for the gate's "regression"; --debug (or TOOLSFT_DEBUG=1) shows the traceback.
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException as exc:
            raise _one_line(exc, ctx) from exc
        except BrokenPipeError:
            # `toolsft ... | head`: the reader left; nothing more to say, and no traceback.
            _silence_stdout()
            raise click.exceptions.Exit(141) from None
        except SystemExit as exc:
            # rich answers a broken pipe with exit 1 itself, which reads as "regression".
            if exc.code == 1 and isinstance(exc.__context__, BrokenPipeError):
                raise click.exceptions.Exit(141) from None
            raise
        except (KeyboardInterrupt, click.Abort):
            _show_traceback(ctx)
            raise Interrupted("interrupted") from None
        except Exception as exc:
            message = _user_error(exc)
            if message is None:
                # A bug: keep its traceback, and an exit code that no user error or gate
                # verdict uses, so CI never reads a crash as "regression".
                traceback.print_exc()
                name = type(exc).__name__
                raise InternalError(f"a bug in toolsft ({name}); please report it") from exc
            _show_traceback(ctx)
            raise UserError(message) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from a static table: listing commands must not import them.
        with formatter.section("Commands"):
            formatter.write_dl([(n, HELP[n]) for n in sorted(COMMANDS)])


class UserError(click.ClickException):
    """What the CLI prints for a `ToolsftError`: `Error: <one line>`, exit 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(_flat(message))


class InternalError(click.ClickException):
    """A bug in toolsft: its traceback is printed above this line."""

    exit_code = 3


class Interrupted(click.ClickException):
    """Ctrl-C: the shell's convention, 128 + SIGINT."""

    exit_code = 130


# errno values that describe the user's machine or paths, not a bug, even without a file name.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOENT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EMFILE,
    errno.ENAMETOOLONG,
}


def _user_error(exc: BaseException) -> str | None:
    """The one-line message of an exception that is the user's error, None for a bug.

    Library code raises `ToolsftError` at the source; the rest is a net for errors about the
    user's files and machine that escape without one.
    """
    if isinstance(exc, ToolsftError):
        return str(exc)
    if isinstance(exc, OSError) and (exc.filename is not None or exc.errno in _ENVIRONMENT_ERRNOS):
        where = "" if exc.filename is None else f"{exc.filename}: "
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, OSError) and _raised_in(exc, ("transformers.", "huggingface_hub.")):
        # How transformers says a model or tokenizer named by the user cannot be loaded (no
        # such hub id, no network, a folder missing a file).
        return f"cannot load the model: {_flat(str(exc))[:300]}"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); --debug shows which"
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}: invalid JSON: {exc.msg}; --debug shows which file"
    if type(exc).__module__.startswith("yaml"):
        return f"invalid YAML: {exc}"
    return None


def _raised_in(exc: BaseException, prefixes: tuple[str, ...]) -> bool:
    """Whether the innermost frame of `exc`'s traceback belongs to one of these packages."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = "" if tb is None else str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.startswith(prefixes)


def _one_line(exc: click.ClickException, ctx: click.Context) -> click.ClickException:
    """Click's own errors on the contract's terms: exit 2 (never 1, the gate's regression) and
    one line; a usage error keeps click's message and says where the help is."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return exc  # the help text itself, as click prints it
    if isinstance(exc, click.UsageError):
        sub = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
        return UserError(f"{exc.format_message()} (see `{sub} --help`)")
    if exc.exit_code in (0, 2, 3, 130):
        # click types `message` Final, but set in place it keeps exc's class and exit code.
        exc.message = _flat(exc.message)  # type: ignore[misc]
        return exc
    return UserError(exc.format_message())


def _flat(message: str) -> str:
    """One line: a message that spans lines (a YAML error, a wrapped hint) is joined."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's buffer): nothing to flush
        pass


def _show_traceback(ctx: click.Context) -> None:
    if _debug(ctx):
        traceback.print_exc()


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or os.environ.get("TOOLSFT_DEBUG", "") not in ("", "0")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="toolsft")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--debug",
    is_flag=True,
    help="Show the Python traceback of an error instead of its one-line message "
    "(also TOOLSFT_DEBUG=1).",
)
def cli(verbose: int, debug: bool) -> None:
    """toolsft: schema-driven data, a LoRA curriculum, an eval harness and a CI gate
    for small tool-calling models.

    The loop: gen -> train --stage 1..3 -> eval -> gate. `toolsft demo` runs all of it.

    Exit codes: 0 success; 1 the gate found a regression; 2 a user error (bad file, value,
    path or option), printed as one line `Error: <file>:<field>: <what> (<value>)`; 3 a bug in
    toolsft (its traceback is printed); 130 interrupted; 141 the reader of the output left.
    --debug shows the traceback of an error.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    from rich.logging import RichHandler

    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)])
