"""The `toolsft` command. Subcommands are imported lazily so `toolsft --help` is instant."""

from __future__ import annotations

import importlib
import logging

import click

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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from a static table: listing commands must not import them.
        with formatter.section("Commands"):
            formatter.write_dl([(n, HELP[n]) for n in sorted(COMMANDS)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="toolsft")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """toolsft: schema-driven data, a LoRA curriculum, an eval harness and a CI gate
    for small tool-calling models.

    The loop: gen -> train --stage 1..3 -> eval -> gate. `toolsft demo` runs all of it.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    from rich.logging import RichHandler

    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)])
