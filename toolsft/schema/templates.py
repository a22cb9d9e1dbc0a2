"""Utterance template syntax: `{slot}` inserts a parameter, `[...]` is an optional group.

Example: "帮我搜{keyword}[，价格不超过{max_price}元]" has a required part with `keyword` and an
optional group with `max_price`; dropping the group drops the parameter from the call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\{([A-Za-z_][\w.]*)\}|\[|\]|[^{}\[\]]+|[{}]")


@dataclass(frozen=True)
class Segment:
    text: str = ""
    slot: str | None = None


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[Segment | tuple[Segment, ...], ...]
    """Top-level segments; a tuple is an optional group."""

    @property
    def required_slots(self) -> tuple[str, ...]:
        return tuple(p.slot for p in self.parts if isinstance(p, Segment) and p.slot)

    @property
    def groups(self) -> tuple[tuple[Segment, ...], ...]:
        return tuple(p for p in self.parts if isinstance(p, tuple))

    @property
    def slots(self) -> tuple[str, ...]:
        out = list(self.required_slots)
        for g in self.groups:
            out.extend(s.slot for s in g if s.slot)
        return tuple(out)


def parse_template(text: str) -> Template:
    """Parse; raises ValueError naming the problem (unbalanced or nested brackets, stray braces)."""
    parts: list[Segment | tuple[Segment, ...]] = []
    group: list[Segment] | None = None
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if tok == "[":
            if group is not None:
                raise ValueError("nested optional groups '[...[...]...]' are not supported")
            group = []
        elif tok == "]":
            if group is None:
                raise ValueError("']' without a matching '['")
            if not any(s.slot for s in group):
                raise ValueError("an optional group '[...]' must contain a {slot}")
            parts.append(tuple(group))
            group = None
        elif tok in "{}":
            raise ValueError(f"stray {tok!r}: slots are written {{name}}")
        else:
            seg = Segment(slot=m.group(1)) if m.group(1) else Segment(text=tok)
            (group if group is not None else parts).append(seg)
    if group is not None:
        raise ValueError("'[' without a matching ']'")
    return Template(text, tuple(parts))
