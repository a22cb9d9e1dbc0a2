"""The engine a command runs on, asked of the engine registry by name, and the model identity
that results.json records; the click options of engine-specific settings, declared from the
registry. Heavy engines (vLLM, transformers) import only when built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from toolsft.cli.home import toolsft_home
from toolsft.engines.registry import (
    OPTIONS,
    Serve,
    check_options,
    engine_options,
    engines_taking,
    get_engine,
)


def engine_option(name: str, **click_kw: Any) -> Callable[[Any], Any]:
    """A click option for the engine option `name`: default and help from the registry, the
    help prefixed with the engines that take it; `click_kw` adds the click type."""
    opt = OPTIONS[name]
    kw: dict[str, Any] = {
        "default": opt.default,
        "show_default": opt.default not in (None, False),
        "help": f"{', '.join(engines_taking(name))}: {opt.help}",
    }
    if isinstance(opt.default, bool):
        kw["is_flag"] = True
    return click.option(opt.flag, name, **{**kw, **click_kw})


def check_given_options(ctx: click.Context, engine: str, chosen: bool) -> None:
    """Refuse engine options the user set that `engine` does not take (when the engine was not
    chosen, the default may fall back from vllm to hf: they are ignored with a warning), and a
    missing option the engine needs, before any data is read or model loaded."""
    from click.core import ParameterSource

    unset = (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    given = [n for n in ctx.params if ctx.get_parameter_source(n) not in unset]
    check_options(engine, given, strict=chosen)
    engine_options(engine, ctx.params)


def build_engine(
    engine: str,
    model: str,
    adapter: Path | None,
    opts: dict[str, Any],
    examples: list[Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The engine and the model identity recorded in results.json."""
    spec = get_engine(engine)
    values = engine_options(engine, opts)  # a missing --base-url fails before a model load
    serve = Serve(
        model=model,
        adapter=adapter,
        examples=examples or (),
        samples=opts.get("samples", 1),
        seed=opts.get("seed", 0),
        deadline_s=opts.get("deadline"),
    )
    if spec.serves == "script":
        ident: dict[str, Any] = {"name": engine}
    elif spec.serves == "server":
        ident = {"name": model}
    else:
        serve, ident = _local(serve)
    return spec.builder(serve, values), ident


def _local(serve: Serve) -> tuple[Serve, dict[str, Any]]:
    """A local model resolved to its folder (downloaded once), with its identity."""
    from dataclasses import replace

    from toolsft.models import model_identity, resolve_model

    model, adapter = str(serve.model), serve.adapter
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        if not (Path(adapter) / "config.json").is_file():
            raise click.BadParameter(
                f"{adapter}: neither a peft adapter (adapter_config.json) "
                "nor a model folder (config.json)",
                param_hint="--adapter",
            )
        model, adapter = str(adapter), None  # a full fine-tune's stage folder is a model
    resolved = resolve_model(model, toolsft_home())
    ident = model_identity(resolved)
    if adapter is not None:
        from toolsft.models import weights_sha256

        ident["adapter"] = {"path": str(adapter), "sha256": weights_sha256(Path(adapter))}
    return replace(serve, model=resolved, adapter=adapter), ident
