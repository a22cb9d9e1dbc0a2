"""The engine `toolsft eval` runs on, built from its options, and the model identity that
results.json records. Heavy engines (vLLM, transformers) import only when built."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from toolsft.cli.home import toolsft_home


def build_engine(
    engine: str,
    model: str,
    adapter: Path | None,
    opts: dict[str, Any],
    examples: list[Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The engine and the model identity recorded in results.json."""
    from toolsft.engines import make_engine

    if engine in ("replay", "gold"):
        if engine == "replay" and not opts.get("predictions"):
            raise click.UsageError("--engine replay needs --predictions FILE")
        kw = (
            {"predictions": opts["predictions"]}
            if engine == "replay"
            else {"examples": examples or [], "samples": opts.get("samples", 1)}
        )
        return make_engine(engine, **kw), {"name": engine}
    if engine == "openai":
        if not opts.get("base_url"):
            raise click.UsageError(
                "--engine openai needs --base-url (e.g. http://localhost:8000/v1)"
            )
        return make_engine(
            "openai",
            base_url=opts["base_url"],
            model=model,
            api_key=os.environ.get("OPENAI_API_KEY"),
            concurrency=opts["concurrency"],
            timeout_s=opts["timeout"],
            retries=opts["retries"],
            deadline_s=opts["deadline"],
        ), {"name": model}
    from toolsft.models import model_identity, resolve_model

    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        if not (adapter / "config.json").is_file():
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

        ident["adapter"] = {"path": str(adapter), "sha256": weights_sha256(adapter)}
    if engine == "hf":
        return make_engine(
            "hf",
            model=resolved,
            adapter=adapter,
            batch_size=opts["batch_size"],
            dtype=opts["dtype"],
        ), ident
    return make_engine(
        "vllm",
        model=resolved,
        adapter=adapter,
        seed=opts["seed"],
        max_model_len=opts["max_model_len"],
        kv_cache_gib=opts["kv_cache_gib"],
        dtype=opts["dtype"],
        enforce_eager=opts["enforce_eager"],
    ), ident
