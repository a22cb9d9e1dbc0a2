"""`toolsft configs`: the shipped configs by name, and where they are installed."""

from __future__ import annotations

import click


@click.command("configs")
@click.argument("name", required=False)
def configs(name: str | None) -> None:
    """List the shipped configs (accelerate/*, demo/*) with their paths, or print the path of
    one, NAME, for a tool that wants a file.

    Example: accelerate launch --config_file "$(toolsft configs accelerate/ddp)" ...
    """
    from toolsft.shipped import all_configs, shipped_config

    if name is not None:
        click.echo(shipped_config(name))
        return
    names = all_configs()
    width = max((len(n) for n in names), default=0)
    for n in names:
        click.echo(f"{n:<{width}}  {shipped_config(n)}")
