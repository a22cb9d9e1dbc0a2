"""Prompt rendering shared by the local engines (transformers and vLLM).

Both render with the tokenizer's own chat template (toolsft's tool-aware template for the
built-in aliases, set by `toolsft.models`) and tokenize with `add_special_tokens=False`, so the
token ids are exactly the ones training saw. A tokenizer without a chat template gets
toolsft's; a template that ignores `tools` would silently hide them, so that is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolsft.chat.template import CHAT_TEMPLATE
from toolsft.engines.base import STOP_STRINGS, EngineError, Request

logger = logging.getLogger(__name__)


def tokenizer_source(model: str, adapter: str | None) -> str:
    """Where to load the tokenizer: a trained stage folder carries its serving template."""
    if adapter and (Path(adapter) / "tokenizer_config.json").is_file():
        return adapter
    return model


class PromptRenderer:
    """Turns `Request`s into prompt text and token ids with one tokenizer."""

    def __init__(self, tokenizer: Any, where: str) -> None:
        self.tokenizer = tokenizer
        template = getattr(tokenizer, "chat_template", None)
        if not template:
            logger.info("%s has no chat template: using toolsft's", where)
            tokenizer.chat_template = CHAT_TEMPLATE
        elif "tools" not in template:
            raise EngineError(
                f"{where}: the tokenizer's chat_template never mentions `tools`, so prompts would "
                "not show the tools; use a model with a tool-aware template or a toolsft alias"
            )

    def text(self, request: Request) -> str:
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in request.messages],
            tools=[dict(t) for t in request.tools] or None,
            add_generation_prompt=True,
            tokenize=False,
        )

    def ids(self, request: Request) -> list[int]:
        return list(self.tokenizer(self.text(request), add_special_tokens=False)["input_ids"])

    def batch_ids(self, requests: Sequence[Request]) -> list[list[int]]:
        return [self.ids(r) for r in requests]

    def stop_token_ids(self) -> list[int]:
        """Token ids that end a turn: the tokenizer's EOS and the ChatML end markers."""
        ids: set[int] = set()
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        for stop in STOP_STRINGS:
            tid = self.tokenizer.convert_tokens_to_ids(stop)
            # An unknown token maps to unk's id: keep only ids that map back to the marker.
            if isinstance(tid, int) and self.tokenizer.convert_ids_to_tokens(tid) == stop:
                ids.add(tid)
        return sorted(ids)
