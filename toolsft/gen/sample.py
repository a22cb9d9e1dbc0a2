"""Sample argument values for a template's slots, and say them in the request's language.

`SlotSampler` knows one tool's schema and slot settings; it returns each slot's value (what
goes in the call) and surface (what goes in the utterance) plus the augmentations used.
Each slot is resolved once (its schema, settings, pool entries and how each is said) into a
`_Slot`; drawing a value is then a dispatch on its kind and one or two RNG draws.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolsft.gen.swap import Vocab, swap_value
from toolsft.gen.words import say_date, say_number
from toolsft.schema.checks import param_schema
from toolsft.schema.executor import code_parts
from toolsft.schema.params import drawn_kind
from toolsft.schema.pools import entry_aliases, entry_say, entry_value, resolve_pool

JOIN = {"zh": ("、", "和"), "en": (", ", " and ")}

Entry = tuple[Any, str, tuple[str, ...]]
"""A pool entry in one language: (value, surface, aliases)."""


@dataclass
class Draw:
    """The values drawn for one utterance."""

    args: dict[str, Any] = field(default_factory=dict)
    surfaces: dict[str, str] = field(default_factory=dict)
    entities: list[str] = field(default_factory=list)
    """Pool values used (the test split must use none that train used)."""
    augmentations: list[str] = field(default_factory=list)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    used: dict[int, list[Any]] = field(default_factory=dict)
    """Values drawn so far per pool: one request never says the same city (or product) twice."""


@dataclass(frozen=True)
class Context:
    lang: str
    holdout: bool
    today: dt.date
    rng: random.Random
    noise: float = 0.0
    order: tuple[str, ...] = ()
    """When set, every row shows exactly these tools in this order (`GenConfig.show_all`)."""
    swap: float = 0.0
    """Share of free-text pool draws replaced by a new value (`toolsft.gen.swap`); never in
    held-out (test) rows."""


@dataclass
class _Slot:
    """One slot, resolved: `kind` picks the sampler; the rest is what that sampler needs."""

    kind: str
    schema: Mapping[str, Any]
    cfg: Mapping[str, Any]
    pool: Mapping[str, Any] | None
    entries: dict[tuple[str, bool], tuple[Entry, ...]] = field(default_factory=dict)
    said: dict[str, tuple[tuple[Any, str], ...]] = field(default_factory=dict)
    """enum/boolean: per language, each value with how it is said."""
    item: _Slot | None = None
    """array of scalars: the items' slot."""


class SlotSampler:
    def __init__(
        self,
        parameters: Mapping[str, Any],
        slots: Mapping[str, Any],
        pools: Mapping[str, Any],
        vocab: Vocab | None = None,
    ) -> None:
        self.parameters, self.slots, self.pools = parameters, slots, pools
        self.vocab = vocab
        """What entity swaps are made of (None: no swaps)."""
        self._resolved: dict[str, _Slot] = {}

    def draw(self, slot_names: list[str], ctx: Context) -> Draw:
        draw = Draw()
        for slot in slot_names:
            value, surface = self.sample(slot, ctx, draw)
            _assign(draw.args, slot, value)
            draw.surfaces[slot] = surface
        return draw

    def sample(self, slot: str, ctx: Context, draw: Draw) -> tuple[Any, str]:
        s = self._resolved.get(slot) or self._resolve(slot)
        if s.kind == "array":
            return self._array(slot, s, ctx, draw)
        if s.kind == "pool":
            return self._from_pool(s, ctx, draw)
        return self._scalar(s, ctx, draw)

    def _resolve(self, slot: str) -> _Slot:
        raw = self.slots.get(slot, {})
        s = self._resolved[slot] = _make_slot(
            param_schema(self.parameters, slot) or {}, raw, resolve_pool(raw, self.pools)
        )
        return s

    def _entries(self, s: _Slot, ctx: Context) -> tuple[Entry, ...]:
        key = (ctx.lang, ctx.holdout)
        hit = s.entries.get(key)
        if hit is None:
            assert s.pool is not None
            raw = (s.pool.get("holdout") or s.pool["values"]) if ctx.holdout else s.pool["values"]
            hit = s.entries[key] = tuple(
                (entry_value(e, ctx.lang), entry_say(e, ctx.lang), entry_aliases(e)) for e in raw
            )
        return hit

    def _from_pool(
        self, s: _Slot, ctx: Context, draw: Draw, exclude: list[Any] | None = None
    ) -> tuple[Any, str]:
        entries = self._entries(s, ctx)
        used = draw.used.setdefault(id(s.pool), [])
        avoid = used + list(exclude or ())
        if avoid:
            entries = tuple(e for e in entries if e[0] not in avoid) or entries
        value, surface, aliases = ctx.rng.choice(entries)
        if ctx.swap and not ctx.holdout and self.vocab is not None and value == surface:
            # a value said as it is sent (not an enum's spoken form): maybe say a new one
            new = swap_value(surface, ctx.rng, self.vocab) if ctx.rng.random() < ctx.swap else None
            if new is not None and new not in avoid:
                value, surface, aliases = new, new, ()
                draw.augmentations.append("swap:entity")
        used.append(value)
        draw.entities.append(str(value))
        if aliases and ctx.rng.random() < ctx.noise:
            surface = ctx.rng.choice(aliases)
            draw.augmentations.append("noise:alias")
        return value, surface

    def _scalar(self, s: _Slot, ctx: Context, draw: Draw) -> tuple[Any, str]:
        kind, rng = s.kind, ctx.rng
        if kind == "boolean":
            return rng.choice(s.said[ctx.lang])
        if kind == "enum":
            # from_currency/to_currency share an enum: never the same value twice in a request
            used = draw.used.setdefault(hash(tuple(map(str, s.schema["enum"]))), [])
            options = [o for o in s.said[ctx.lang] if o[0] not in used] or s.said[ctx.lang]
            pick = rng.choice(options)
            used.append(pick[0])
            return pick
        if kind == "date":
            return self._date(s.cfg, ctx, draw)
        if kind == "number":
            return self._number(s.schema, s.cfg, ctx, draw)
        if kind == "code":
            value = _code(str(s.cfg.get("pattern", s.schema.get("pattern"))), rng)
            draw.entities.append(value)
            return value, value
        if kind == "example":
            schema = s.schema
            value = rng.choice(list(schema.get("examples") or [schema.get("default")]))
            return value, str(value)
        value = _code("[a-z]{6}", rng)
        return value, value

    def _date(self, cfg: Mapping[str, Any], ctx: Context, draw: Draw) -> tuple[str, str]:
        relative = cfg.get("relative", True)
        offset = ctx.rng.randint(0, 13) if relative else ctx.rng.randint(1, 60)
        target = ctx.today + dt.timedelta(days=offset)
        if relative:
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

    def _array(self, slot: str, s: _Slot, ctx: Context, draw: Draw) -> tuple[list[Any], str]:
        items = s.schema.get("items") or {}
        lo = max(1, int(s.schema.get("minItems", 1)))
        hi = min(3, int(s.schema.get("maxItems", 3)))
        n = ctx.rng.randint(lo, max(lo, hi))
        values: list[Any] = []
        surfaces: list[str] = []
        item_cfg = s.cfg.get("item")
        for _ in range(n):
            if s.pool is not None:
                v, said = self._from_pool(s, ctx, draw, exclude=values)
            elif items.get("type") == "object" and item_cfg:
                v, said = self._object_item(slot, items, item_cfg, ctx, draw)
            else:
                assert s.item is not None  # every array slot has one
                v, said = self._scalar(s.item, ctx, draw)
            if v in values:
                continue
            values.append(v)
            surfaces.append(said)
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
        text = item_cfg[ctx.lang]
        required = items.get("required", [])
        for name in items.get("properties", {}):
            mark = "{" + name + "}"
            if name not in required and mark not in item_cfg[ctx.lang]:
                continue
            obj[name], said = self.sample(f"{slot}.{name}", ctx, draw)
            text = text.replace(mark, said)
        return obj, text


def _make_slot(schema: Mapping[str, Any], raw: Any, pool: Mapping[str, Any] | None) -> _Slot:
    cfg = raw if isinstance(raw, Mapping) else {}
    if schema.get("type") == "array":
        s = _Slot("array", schema, cfg, pool)
        s.item = _make_slot(schema.get("items") or {}, {}, None)
        return s
    if pool is not None:
        return _Slot("pool", schema, cfg, pool)
    s = _Slot(drawn_kind(schema, cfg), schema, cfg, None)
    if s.kind in ("enum", "boolean"):
        values = list(schema["enum"]) if s.kind == "enum" else [True, False]
        s.said.update({lang: tuple((v, _say_map(cfg, v, lang)) for v in values) for lang in JOIN})
    return s


def _code(pattern: str, rng: random.Random) -> str:
    """A string for a simple pattern, like the executor's `sample_code`, with one `choices`
    call per character class instead of one `choice` per character (the executor keeps its
    draws so that mock results never change; a request's values are free to)."""
    return "".join(
        [text if n == 0 else "".join(rng.choices(text, k=n)) for text, n in code_parts(pattern)]
    )


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
    if "." not in path:
        args[path] = value
        return
    parts = path.split(".")
    cur = args
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
