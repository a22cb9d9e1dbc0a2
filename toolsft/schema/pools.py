"""Value pools: entries, their values per language and how they are said."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LANG_KEYS = ("zh", "en")


def entry_value(entry: Any, lang: str) -> Any:
    """The argument value of a pool entry in a request of language `lang`."""
    if isinstance(entry, Mapping):
        if "value" in entry:
            return entry["value"]
        if lang in entry:
            return entry[lang]
        return next(entry[k] for k in LANG_KEYS if k in entry)
    return entry


def entry_say(entry: Any, lang: str) -> str:
    """How a pool entry is said in a request of language `lang`."""
    if isinstance(entry, Mapping):
        say = entry.get("say")
        if isinstance(say, Mapping):
            return str(say.get(lang, next(iter(say.values()))))
        if say is not None:
            return str(say)
    value = entry_value(entry, lang)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "220元", not "220.0元"
    return str(value)


def entry_aliases(entry: Any) -> tuple[str, ...]:
    if isinstance(entry, Mapping):
        return tuple(str(a) for a in entry.get("alias", ()) or ())
    return ()


def entry_values(entry: Any) -> list[Any]:
    """Every value an entry can produce (one per language for {zh, en} entries)."""
    if isinstance(entry, Mapping) and "value" not in entry:
        return [entry[k] for k in LANG_KEYS if k in entry]
    return [entry_value(entry, "en")]


def resolve_pool(slot_cfg: Any, pools: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pool a slot draws from: `"@name"`, `{pool: name}` or inline `{values, holdout}`."""
    if isinstance(slot_cfg, str) and slot_cfg.startswith("@"):
        return pools.get(slot_cfg[1:])
    if isinstance(slot_cfg, Mapping):
        if "pool" in slot_cfg:
            return pools.get(str(slot_cfg["pool"]).lstrip("@"))
        if "values" in slot_cfg:
            return slot_cfg
    return None
