"""Pick the chat template a stage trains with, and the one saved for serving.

- toolsft's template (`toolsft.chat.template.CHAT_TEMPLATE`) has generation markers and matches
  our parser; the aliases ship with it.
- A model that brings its own tool-aware template keeps it for serving. If that template lacks
  `{% generation %}` markers, TRL's patched training twin is used for training when TRL knows
  the template (Qwen2.5/3, Llama 3, ...); the mask and parity checks then prove it matches.
- A model whose template ignores tools (SmolLM2's own) gets toolsft's template.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from toolsft.chat.template import CHAT_TEMPLATE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemplateChoice:
    train: str
    serve: str
    origin: str  # "toolsft", "model", or "model+trl-training"


def choose_template(tokenizer: Any, mode: str) -> TemplateChoice:
    own = tokenizer.chat_template
    if isinstance(own, dict):
        own = own.get("default")
    if mode == "toolsft" or own == CHAT_TEMPLATE:
        return TemplateChoice(CHAT_TEMPLATE, CHAT_TEMPLATE, "toolsft")
    if mode == "auto" and (not own or not _renders_tools(tokenizer)):
        logger.warning("the model's chat template ignores tools; using toolsft's tool template")
        return TemplateChoice(CHAT_TEMPLATE, CHAT_TEMPLATE, "toolsft")
    if not own:
        # mode == "model" with no template: the mask check will explain the failure.
        return TemplateChoice("", "", "model")
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(own):
        return TemplateChoice(own, own, "model")
    try:
        patched = get_training_chat_template(tokenizer)
    except Exception as exc:  # TRL raises for templates it does not know
        logger.debug("no TRL training template: %s", exc)
        patched = None
    if patched:
        logger.info("training with TRL's marker-patched twin of the model's template")
        return TemplateChoice(patched, own, "model+trl-training")
    return TemplateChoice(own, own, "model")


def _renders_tools(tokenizer: Any) -> bool:
    from trl.chat_template_utils import supports_tool_calling

    try:
        return bool(supports_tool_calling(tokenizer))
    except Exception:  # a template that crashes on tools does not support them
        return False
