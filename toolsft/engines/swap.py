"""Serve a base model and a sequence of its LoRA adapters from one running engine.

A learning curve scores many snapshots of one training run; starting an engine for each costs
more than scoring on CPU. transformers merges each adapter into base weights it keeps in
memory; vLLM reloads merged weights in place (`VLLMEngine.use_weights`), written to two
alternating scratch folders because the engine skips a reload of the path it serves.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

from toolsft.engines.base import Engine, EngineError
from toolsft.engines.registry import Serve, engine_from_options, engine_names, get_engine

logger = logging.getLogger(__name__)


class AdapterServer:
    """`serve(adapter)` returns the engine, now answering as base + that adapter."""

    def __init__(self, engine: str, base: str | Path, scratch: Path, **opts: Any) -> None:
        """`opts`: the engine's options and `Serve`'s run settings (seed, examples, ...)."""
        if not get_engine(engine).swaps:
            raise EngineError(
                f"--engine {engine!r}: a curve swaps adapters in one engine "
                f"({', '.join(engine_names(swaps=True))})",
                value=engine,
            )
        self.kind, self.base, self.scratch = engine, Path(base), Path(scratch)
        self._flip = 0
        self._merger: Any = None
        settings = {f.name for f in fields(Serve)}
        serve = Serve(**{"model": self.base, **{k: v for k, v in opts.items() if k in settings}})
        values = {k: v for k, v in opts.items() if k not in settings}
        self.engine: Engine = engine_from_options(engine, serve, values)

    def serve(self, adapter: Path | None) -> Engine:
        if self.kind == "hf":
            self.engine.use_adapter(adapter)  # type: ignore[attr-defined]
        elif self.kind == "vllm":
            target = self.base if adapter is None else self._merged(adapter)
            self.engine.use_weights(target)  # type: ignore[attr-defined]
        return self.engine

    def _merged(self, adapter: Path) -> Path:
        if self._merger is None:
            self._merger = _Merger(self.base)
        self._flip ^= 1
        out = self.scratch / f"merged-{self._flip}"
        self._merger.write(adapter, out)
        return out

    def close(self) -> None:
        self.engine.close()
        shutil.rmtree(self.scratch / "merged-0", ignore_errors=True)
        shutil.rmtree(self.scratch / "merged-1", ignore_errors=True)


class _Merger:
    """The base model in memory, in its checkpoint's dtype (so the embedding and output layer
    stay byte-identical and vLLM can reload in place); each adapter merged into a fresh
    copy of its weights."""

    def __init__(self, base: Path) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(str(base), dtype="auto")
        self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def write(self, adapter: Path, out: Path) -> None:
        from peft import PeftModel
        from transformers import AutoTokenizer

        if not (adapter / "adapter_config.json").is_file():
            raise EngineError("not a peft adapter (adapter_config.json missing)", file=adapter)
        self.model.load_state_dict(self.state)
        merged = PeftModel.from_pretrained(self.model, str(adapter)).merge_and_unload()
        self.model = merged
        shutil.rmtree(out, ignore_errors=True)
        merged.save_pretrained(str(out), safe_serialization=True)
        AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(str(out))
        logger.info("merged %s into %s", adapter, out)
