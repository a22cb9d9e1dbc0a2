"""Generation backends behind one `Engine` protocol (see `toolsft.engines.base`), found by
name in `toolsft.engines.registry`.

Backends import their heavy dependencies (torch, transformers, vllm, httpx) only when built,
so scoring and the CLI's help stay light.
"""

from __future__ import annotations

from toolsft.engines.base import Decoding, Engine, EngineError, Generation, Request
from toolsft.engines.registry import default_engine, engine_names, get_engine, make_engine

__all__ = [
    "Decoding",
    "Engine",
    "EngineError",
    "Generation",
    "Request",
    "default_engine",
    "engine_names",
    "get_engine",
    "make_engine",
]
