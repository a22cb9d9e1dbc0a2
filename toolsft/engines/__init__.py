"""Generation backends behind one `Engine` protocol (see `toolsft.engines.base`).

Backends import their heavy dependencies (torch, transformers, vllm, httpx) only when built,
so scoring and the CLI's help stay light.
"""

from __future__ import annotations

from typing import Any

from toolsft.engines.base import Decoding, Engine, EngineError, Generation, Request

ENGINES = ("vllm", "hf", "openai", "replay", "gold")

__all__ = [
    "ENGINES",
    "Decoding",
    "Engine",
    "EngineError",
    "Generation",
    "Request",
    "default_engine",
    "make_engine",
]


def default_engine() -> str:
    """`vllm` where it imports, else `hf`."""
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def make_engine(name: str, **opts: Any) -> Engine:
    """Build an engine by name; `opts` are the backend's constructor arguments."""
    if name == "vllm":
        from toolsft.engines.vllm_engine import VLLMEngine

        return VLLMEngine(**opts)
    if name == "hf":
        from toolsft.engines.hf import HFEngine

        return HFEngine(**opts)
    if name == "openai":
        from toolsft.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(**opts)
    if name == "replay":
        from toolsft.engines.replay import ReplayEngine

        return ReplayEngine(**opts)
    if name == "gold":
        from toolsft.engines.replay import GoldEngine

        return GoldEngine(**opts)
    raise EngineError(f"--engine {name!r}: unknown (one of {', '.join(ENGINES)})")
