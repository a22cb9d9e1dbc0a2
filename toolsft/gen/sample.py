"""Sample argument values for a template's slots, and say them in the request's language.

`SlotSampler` knows one tool's schema and slot settings; it returns each slot's value (what
goes in the call) and surface (what goes in the utterance) plus the augmentations used.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolsft.gen.words import say_date, say_number
from toolsft.schema.checks import param_schema
from toolsft.schema.executor import sample_code
from toolsft.schema.pools import entry_aliases, entry_say, entry_value, resolve_pool

JOIN = {"zh": ("、", "和"), "en": (", ", " and ")}


@dataclass
class Draw:
    """The values drawn for one utterance."""

    args: dict[str, Any] = field(default_factory=dict)
    surfaces: dict[str, str] = field(default_factory=dict)
    entities: list[str] = field(default_factory=list)
    """Pool values used (the test split must use none that train used)."""
    augmentations: list[str] = field(default_factory=list)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    lang: str
    holdout: bool
    today: dt.date
    rng: random.Random
    noise: float = 0.0


class SlotSampler:
    def __init__(
        self, parameters: Mapping[str, Any], slots: Mapping[str, Any], pools: Mapping[str, Any]
    ) -> None:
        self.parameters, self.slots, self.pools = parameters, slots, pools

    def draw(self, slot_names: list[str], ctx: Context) -> Draw:
        draw = Draw()
        for slot in slot_names:
            value, surface = self.sample(slot, ctx, draw)
            _assign(draw.args, slot, value)
            draw.surfaces[slot] = surface
        return draw

    def sample(self, slot: str, ctx: Context, draw: Draw) -> tuple[Any, str]:
        schema = param_schema(self.parameters, slot) or {}
        cfg = self.slots.get(slot, {})
        pool = resolve_pool(cfg, self.pools)
        if schema.get("type") == "array":
            return self._array(slot, schema, cfg, pool, ctx, draw)
        if pool is not None:
            return self._from_pool(slot, pool, ctx, draw)
        return self._scalar(slot, schema, cfg if isinstance(cfg, Mapping) else {}, ctx, draw)

    def _from_pool(
        self,
        slot: str,
        pool: Mapping[str, Any],
        ctx: Context,
        draw: Draw,
        exclude: tuple[Any, ...] = (),
    ) -> tuple[Any, str]:
        entries = (
            list(pool.get("holdout") or pool["values"]) if ctx.holdout else list(pool["values"])
        )
        choices = [e for e in entries if entry_value(e, ctx.lang) not in exclude] or entries
        entry = ctx.rng.choice(choices)
        value, surface = entry_value(entry, ctx.lang), entry_say(entry, ctx.lang)
        draw.entities.append(str(value))
        aliases = entry_aliases(entry)
        if aliases and ctx.rng.random() < ctx.noise:
            surface = ctx.rng.choice(aliases)
            draw.augmentations.append("noise:alias")
        return value, surface

    def _scalar(
        self, slot: str, schema: Mapping[str, Any], cfg: Mapping[str, Any], ctx: Context, draw: Draw
    ) -> tuple[Any, str]:
        rng, lang = ctx.rng, ctx.lang
        kind = schema.get("type")
        if "enum" in schema:
            value = rng.choice(list(schema["enum"]))
            return value, _say_map(cfg, value, lang)
        if kind == "boolean":
            value = rng.random() < 0.5
            return value, _say_map(cfg, value, lang)
        if schema.get("format") == "date":
            return self._date(cfg, ctx, draw)
        if kind in ("integer", "number"):
            return self._number(schema, cfg, ctx, draw)
        if "pattern" in cfg or "pattern" in schema:
            value = sample_code(str(cfg.get("pattern", schema.get("pattern"))), rng)
            draw.entities.append(value)
            return value, value
        examples = schema.get("examples") or ([schema["default"]] if "default" in schema else [])
        if examples:
            value = rng.choice(list(examples))
            return value, str(value)
        value = sample_code("[a-z]{6}", rng)
        return value, value

    def _date(self, cfg: Mapping[str, Any], ctx: Context, draw: Draw) -> tuple[str, str]:
        offset = ctx.rng.randint(0, 13) if cfg.get("relative", True) else ctx.rng.randint(1, 60)
        target = ctx.today + dt.timedelta(days=offset)
        if cfg.get("relative", True):
            surface, aug = say_date(target, ctx.today, ctx.lang, ctx.rng)
        else:
            surface, aug = target.isoformat(), "date:iso"
        draw.augmentations.append(aug)
        return target.isoformat(), surface

    def _number(
        self, schema: Mapping[str, Any], cfg: Mapping[str, Any], ctx: Context, draw: Draw
    ) -> tuple[Any, str]:
        lo, hi = cfg.get("range") or (schema.get("minimum", 1), schema.get("maximum", 100))
        lo = max(lo, schema.get("exclusiveMinimum", lo - 1) + 1)
        if schema.get("type") == "integer":
            value: Any = ctx.rng.randint(int(lo), int(hi))
            step = 100 if hi - lo >= 5000 else 1
            value = max(int(lo), value // step * step)
            if cfg.get("words") and ctx.rng.random() < 0.4:
                surface, aug = say_number(value, ctx.lang, ctx.rng)
                draw.augmentations.append(aug)
                return value, surface
            return value, str(value)
        decimals = int(cfg.get("decimals", 2))
        value = round(ctx.rng.uniform(float(lo), float(hi)), decimals)
        if value == int(value) and decimals == 0:
            value = int(value)
        return value, f"{value:g}" if decimals else str(value)

    def _array(
        self,
        slot: str,
        schema: Mapping[str, Any],
        cfg: Any,
        pool: Mapping | None,
        ctx: Context,
        draw: Draw,
    ) -> tuple[list[Any], str]:
        items = schema.get("items") or {}
        lo = max(1, int(schema.get("minItems", 1)))
        hi = min(3, int(schema.get("maxItems", 3)))
        n = ctx.rng.randint(lo, max(lo, hi))
        values: list[Any] = []
        surfaces: list[str] = []
        item_cfg = cfg.get("item") if isinstance(cfg, Mapping) else None
        for _ in range(n):
            if pool is not None:
                v, s = self._from_pool(slot, pool, ctx, draw, exclude=tuple(values))
            elif items.get("type") == "object" and item_cfg:
                v, s = self._object_item(slot, items, item_cfg, ctx, draw)
            else:
                v, s = self._scalar(slot, items, {}, ctx, draw)
            if v in values:
                continue
            values.append(v)
            surfaces.append(s)
        return values, join_words(surfaces, ctx.lang)

    def _object_item(
        self,
        slot: str,
        items: Mapping[str, Any],
        item_cfg: Mapping[str, str],
        ctx: Context,
        draw: Draw,
    ) -> tuple[dict[str, Any], str]:
        obj: dict[str, Any] = {}
        said: dict[str, str] = {}
        for name in items.get("properties", {}):
            if name not in items.get("required", []) and f"{{{name}}}" not in item_cfg[ctx.lang]:
                continue
            obj[name], said[name] = self.sample(f"{slot}.{name}", ctx, draw)
        text = item_cfg[ctx.lang]
        for name, s in said.items():
            text = text.replace(f"{{{name}}}", s)
        return obj, text


def join_words(words: list[str], lang: str) -> str:
    sep, last = JOIN[lang]
    if len(words) <= 1:
        return "".join(words)
    return sep.join(words[:-1]) + last + words[-1]


def _say_map(cfg: Mapping[str, Any], value: Any, lang: str) -> str:
    say = (cfg.get("say") or {}) if isinstance(cfg, Mapping) else {}
    for key in (value, str(value), str(value).lower()):
        if key in say:
            entry = say[key]
            return str(entry.get(lang, value)) if isinstance(entry, Mapping) else str(entry)
    return str(value)


def _assign(args: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur = args
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
