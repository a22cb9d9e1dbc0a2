"""Every engine by name: what it is, which options it takes, and how it is built.

Each backend registers a name, a one-line description, the options it takes (with their
defaults and help) and a builder; the CLI asks here by name and holds no per-engine code.
Builders import their backend (torch, vLLM, httpx) only when called, so listing engines and
checking options stay light.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from toolsft.engines.base import Engine, EngineError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOption:
    """An option only some engines take; `name` is its key in an options mapping (the CLI's
    parameter name) and its flag is `--name` with dashes."""

    name: str
    default: Any
    help: str
    needed: str = ""
    """What a missing value reads as when an engine needs it (empty: it has a default)."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: dict[str, EngineOption] = {
    o.name: o
    for o in (
        EngineOption(
            "predictions",
            None,
            "predictions.jsonl.",
            needed="--predictions FILE",
        ),
        EngineOption(
            "base_url",
            None,
            "server URL, e.g. http://localhost:8000/v1.",
            needed="--base-url (e.g. http://localhost:8000/v1)",
        ),
        EngineOption("concurrency", 8, "requests in flight."),
        EngineOption("timeout", 120.0, "seconds one request may take; past it, it is retried."),
        EngineOption(
            "retries",
            4,
            "retries of a transient failure (refused, 429, 5xx, timeout), backing off.",
        ),
        EngineOption("batch_size", 16, "prompts per generate()."),
        EngineOption("dtype", "auto", "dtype the weights are served in."),
        EngineOption("max_model_len", 4096, "context length."),
        EngineOption("kv_cache_gib", 1.0, "KV cache size."),
        EngineOption("enforce_eager", False, "skip torch.compile (faster start)."),
    )
}
"""Engine-specific options. Run settings every engine may use (seed, deadline, samples) are
fields of `Serve` instead."""


@dataclass(frozen=True)
class Serve:
    """What an engine serves, and the run settings some engines take."""

    model: str | Path | None = None
    adapter: str | Path | None = None
    examples: Sequence[Any] = ()
    """The rows whose targets a scripted engine replays (gold)."""
    samples: int = 1
    seed: int = 0
    deadline_s: float | None = None


Builder = Callable[[Serve, Mapping[str, Any]], Engine]


@dataclass(frozen=True)
class EngineSpec:
    name: str
    description: str
    options: tuple[str, ...]
    builder: Builder
    """Builds the engine from what it serves and its options (each present, defaults filled)."""
    load: Callable[[], Callable[..., Engine]]
    """The engine class, imported on demand (`make_engine` passes constructor arguments)."""
    serves: Literal["weights", "server", "script"]
    """weights: a local model folder (+ adapter), whose identity results.json records;
    server: a model name at a server; script: replayed text, no model."""
    swaps: bool = False
    """Serves a sequence of adapters from one running engine (`toolsft curve`)."""
    needs_rows: bool = False
    """Replays the evaluated rows' own targets, so it needs them (and has none for BFCL)."""

    def required(self) -> tuple[str, ...]:
        return tuple(n for n in self.options if OPTIONS[n].needed)


_REGISTRY: dict[str, EngineSpec] = {}


def register(
    name: str,
    description: str,
    options: Iterable[str],
    load: Callable[[], Callable[..., Engine]],
    serves: Literal["weights", "server", "script"],
    *,
    swaps: bool = False,
    needs_rows: bool = False,
) -> Callable[[Builder], Builder]:
    """Decorator: register `builder` as the engine `name`."""
    opts = tuple(options)
    if name in _REGISTRY:
        raise ValueError(f"engine {name!r} is already registered")
    unknown = [o for o in opts if o not in OPTIONS]
    if unknown:  # an option is declared once, in OPTIONS, with its default and help
        raise ValueError(f"engine {name!r}: unknown options {unknown}")

    def decorate(builder: Builder) -> Builder:
        _REGISTRY[name] = EngineSpec(
            name, description, opts, builder, load, serves, swaps, needs_rows
        )
        return builder

    return decorate


def engine_names(*, swaps: bool | None = None, serves: str | None = None) -> tuple[str, ...]:
    """Registered names in registration order, optionally only those with `swaps` (a curve can
    use them) or that serve `serves` (e.g. "weights": local models)."""
    return tuple(
        n
        for n, s in _REGISTRY.items()
        if (swaps is None or s.swaps == swaps) and (serves is None or s.serves == serves)
    )


def get_engine(name: str) -> EngineSpec:
    spec = _REGISTRY.get(name)
    if spec is None:
        names = list(_REGISTRY)
        close = difflib.get_close_matches(str(name), names, n=1)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        raise EngineError(f"--engine {name!r}: unknown engine{guess} (engines: {', '.join(names)})")
    return spec


def default_engine() -> str:
    """`vllm` where it imports, else `hf`."""
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def engines_taking(option: str) -> tuple[str, ...]:
    """The engines that take `option`, in registration order."""
    return tuple(n for n, s in _REGISTRY.items() if option in s.options)


def check_options(name: str, given: Iterable[str], *, strict: bool = True) -> None:
    """Refuse options the user set that engine `name` does not take (strict), or log that they
    are ignored (an engine the user did not choose: the default may fall back to another)."""
    spec = get_engine(name)
    for option in given:
        if option in OPTIONS and option not in spec.options:
            users = ", ".join(engines_taking(option))
            message = f"applies to --engine {users}, not {name}"
            if strict:
                raise EngineError(message, where=OPTIONS[option].flag)
            logger.warning("%s %s: ignored", OPTIONS[option].flag, message)


def engine_options(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Engine `name`'s options from `values` (defaults where absent); a needed one missing is
    an error."""
    spec = get_engine(name)
    out = {n: values.get(n, OPTIONS[n].default) for n in spec.options}
    for n in spec.required():
        if out[n] in (None, ""):
            raise EngineError(f"--engine {name} needs {OPTIONS[n].needed}")
    return out


def engine_from_options(name: str, serve: Serve, values: Mapping[str, Any]) -> Engine:
    """The engine `name`, serving `serve`, with its options taken from `values`."""
    spec = get_engine(name)
    return spec.builder(serve, engine_options(name, values))


def make_engine(name: str, **kwargs: Any) -> Engine:
    """Build an engine by name; `kwargs` are the backend class's constructor arguments."""
    return get_engine(name).load()(**kwargs)


# --- the engines --------------------------------------------------------------------------------


def _vllm_class() -> Callable[..., Engine]:
    from toolsft.engines.vllm_engine import VLLMEngine

    return VLLMEngine


def _hf_class() -> Callable[..., Engine]:
    from toolsft.engines.hf import HFEngine

    return HFEngine


def _openai_class() -> Callable[..., Engine]:
    from toolsft.engines.openai_engine import OpenAIEngine

    return OpenAIEngine


def _replay_class() -> Callable[..., Engine]:
    from toolsft.engines.replay import ReplayEngine

    return ReplayEngine


def _gold_class() -> Callable[..., Engine]:
    from toolsft.engines.replay import GoldEngine

    return GoldEngine


@register(
    "vllm",
    "vLLM's offline engine on a local model (+ LoRA adapter); reloads weights in place.",
    ("dtype", "max_model_len", "kv_cache_gib", "enforce_eager"),
    _vllm_class,
    "weights",
    swaps=True,
)
def _vllm(serve: Serve, o: Mapping[str, Any]) -> Engine:
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM logs INFO per batch
    return _vllm_class()(
        model=serve.model,
        adapter=serve.adapter,
        seed=serve.seed,
        max_model_len=o["max_model_len"],
        kv_cache_gib=o["kv_cache_gib"],
        dtype=o["dtype"],
        enforce_eager=o["enforce_eager"],
    )


@register(
    "hf",
    "transformers' generate() on a local model (+ LoRA adapter), batched.",
    ("batch_size", "dtype"),
    _hf_class,
    "weights",
    swaps=True,
)
def _hf(serve: Serve, o: Mapping[str, Any]) -> Engine:
    return _hf_class()(
        model=serve.model, adapter=serve.adapter, batch_size=o["batch_size"], dtype=o["dtype"]
    )


@register(
    "openai",
    "An OpenAI-compatible chat-completions server (vLLM serve, llama.cpp, a hosted API).",
    ("base_url", "concurrency", "timeout", "retries"),
    _openai_class,
    "server",
)
def _openai(serve: Serve, o: Mapping[str, Any]) -> Engine:
    return _openai_class()(
        base_url=o["base_url"],
        model=str(serve.model),
        api_key=os.environ.get("OPENAI_API_KEY"),
        concurrency=o["concurrency"],
        timeout_s=o["timeout"],
        retries=o["retries"],
        deadline_s=serve.deadline_s,
    )


@register(
    "replay",
    "Replays the predictions.jsonl of an earlier run: rescoring without a model.",
    ("predictions",),
    _replay_class,
    "script",
)
def _replay(serve: Serve, o: Mapping[str, Any]) -> Engine:
    return _replay_class()(predictions=o["predictions"])


@register(
    "gold",
    "Replays the rows' own targets: a harness check (every metric at its best).",
    (),
    _gold_class,
    "script",
    swaps=True,
    needs_rows=True,
)
def _gold(serve: Serve, o: Mapping[str, Any]) -> Engine:
    return _gold_class()(examples=list(serve.examples), samples=serve.samples)
