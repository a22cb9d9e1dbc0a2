"""One line of predictions.jsonl: a model turn under its replay key, with the engine's numbers.

`toolsft eval` appends these as it goes (`toolsft.eval.resume`), and `--engine replay` reads
them back (`toolsft.engines.replay`): both sides share this one format and its checks, so a
line that one side writes the other reads the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from toolsft.engines.base import Generation
from toolsft.errors import short_repr

GEN_FIELDS = ("prompt_tokens", "output_tokens", "ttft_s", "latency_s", "finish_reason")


def prediction_line(key: str, gen: Generation) -> str:
    """One line of predictions.jsonl. ASCII-escaped, so any text the engine returned (even a
    lone surrogate, which UTF-8 cannot encode) is written and reads back exactly."""
    obj: dict[str, Any] = {"key": key, "text": gen.text}
    obj.update((k, getattr(gen, k)) for k in GEN_FIELDS)
    return json.dumps(obj, ensure_ascii=True) + "\n"


def parse_prediction(raw: bytes) -> tuple[str, Generation]:
    """A predictions.jsonl line back into (key, Generation); ValueError when it is not one."""
    obj = json.loads(raw.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON {type(obj).__name__}, not an object")
    key, text = obj.get("key"), obj.get("text")
    if not isinstance(key, str) or not isinstance(text, str):
        raise ValueError("needs string fields key and text")
    return key, generation(obj, text)


def generation(obj: Mapping[str, Any], text: str) -> Generation:
    """The Generation a prediction object records; a missing count reads as 0, a missing time
    or finish_reason as None. ValueError names the first field of the wrong type."""
    gen = Generation(text=text)
    for name in ("prompt_tokens", "output_tokens"):
        value = obj.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} is not a count: {short_repr(value)}")
        setattr(gen, name, value)
    for name in ("ttft_s", "latency_s"):
        value = obj.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{name} is not a number: {short_repr(value)}")
        setattr(gen, name, None if value is None else float(value))
    finish = obj.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise ValueError(f"finish_reason is not a string: {short_repr(finish)}")
    gen.finish_reason = finish
    return gen
