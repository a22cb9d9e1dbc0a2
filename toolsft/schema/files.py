"""Read a suite's files as hostile input: bounded, regular files inside the suite, plain data.

A suite folder may come from anyone. Before a byte is parsed, the file must resolve inside
the suite folder (no `..`, absolute or symlinked way out) and be a regular file (a FIFO would
block `open`, a device never ends) no larger than `MAX_FILE_BYTES`. YAML anchors may not
expand past `MAX_ALIAS_NODES` values (the "billion laughs" bomb), nesting is capped at
`MAX_DEPTH`, and what is parsed must be plain JSON-like data: no NaN, no huge integers, no
binary or set tags, no lone surrogates. Every refusal is a `SuiteError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from toolsft.schema.errors import SuiteError

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_NODES = 100_000
MAX_INT = 2**63
_MAX_INT_DIGITS = 40
_SURROGATE = re.compile("[\ud800-\udfff]")
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _BigInt(str):
    """An integer literal too long to convert: reported with its JSON path by `check_plain`."""


class _Loader(_BaseLoader):
    """Safe YAML with JSON's data model: dates stay text; duplicate keys are an error."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        text = self.construct_scalar(node)
        if len(text) > _MAX_INT_DIGITS:  # int() of thousands of digits is slow, then refused
            return _BigInt(text)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        # A key's resolved tag and text identify it without building it: `1` and "1" differ.
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                line = f"line {key_node.start_mark.line + 1}"
                raise SuiteError("", line, "duplicate key", key_node.value)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


class SuiteFiles:
    """The files of one suite folder, read safely; their bytes make the suite's hash."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            self.real = root.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise SuiteError(root, "$", "no such suite folder") from exc
        if not self.real.is_dir():
            raise SuiteError(root, "$", "not a suite folder (not a directory)")
        self.read: dict[Path, bytes] = {}

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.root / rel)

    def load(self, rel: str) -> Any:
        """Parse `rel` (YAML, or JSON for `.json`) into checked plain data."""
        file = self.root / rel
        text = decode(file, self.read_bytes(rel))
        data = parse_json(file, text) if file.suffix == ".json" else parse_yaml(file, text)
        check_plain(file, "$", data)
        return data

    def read_bytes(self, rel: str) -> bytes:
        file = self.root / rel
        real = self.inside(file)
        data = read_regular(file, real)
        self.read[Path(rel)] = data
        return data

    def inside(self, file: Path) -> Path:
        """`file` resolved; refused unless it stays inside the suite folder."""
        try:
            real = file.resolve(strict=True)
        except FileNotFoundError as exc:
            raise SuiteError(file, "$", "missing file") from exc
        except (OSError, RuntimeError) as exc:  # a symlink loop, a path too long
            raise SuiteError(file, "$", f"cannot resolve: {exc}") from exc
        if not real.is_relative_to(self.real):
            raise SuiteError(file, "$", "leaves the suite folder (a symlink or ..)", str(real))
        return real

    def hash(self) -> str:
        """SHA-256 over the files read, in path order; the same bytes that were parsed."""
        h = hashlib.sha256()
        for rel in sorted(self.read):
            h.update(rel.as_posix().encode() + b"\0")
            h.update(self.read[rel] + b"\0")
        return h.hexdigest()


def read_regular(file: Path, real: Path) -> bytes:
    """The bytes of a regular file of at most `MAX_FILE_BYTES`, never blocking on a FIFO."""
    try:
        info = os.stat(real)
    except OSError as exc:
        raise SuiteError(file, "$", f"cannot read: {exc.strerror}") from exc
    _check_regular(file, info)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise SuiteError(file, "$", f"cannot read: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        _check_regular(file, os.fstat(fd))  # it may have been swapped since the stat
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise SuiteError(file, "$", f"larger than the {_limit()} limit for a suite file")
    return data


def _check_regular(file: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise SuiteError(file, "$", f"not a regular file ({_kind(info.st_mode)})")
    if info.st_size > MAX_FILE_BYTES:
        raise SuiteError(
            file, "$", f"larger than the {_limit()} limit for a suite file", info.st_size
        )


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def _limit() -> str:
    return f"{MAX_FILE_BYTES // (1024 * 1024)} MiB"


def decode(file: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SuiteError(
            file, f"line {line}", "not UTF-8 text", data[exc.start : exc.start + 4]
        ) from exc


def parse_json(file: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise SuiteError(file, f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise SuiteError(file, "$", f"nested deeper than {MAX_DEPTH} levels") from exc
    except _DuplicateKey as exc:
        raise SuiteError(file, "$", "duplicate key in a JSON object", exc.args[0]) from exc


class _DuplicateKey(Exception):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _json_int(text: str) -> int | _BigInt:
    return _BigInt(text) if len(text) > _MAX_INT_DIGITS else int(text)


def parse_yaml(file: Path, text: str) -> Any:
    try:
        scan_yaml(file, text)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader, see _Loader
    except SuiteError as exc:
        if exc.file:
            raise
        raise SuiteError(file, str(exc.where), exc.message, exc.value) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "$"
        raise SuiteError(file, where, f"invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    except (RecursionError, ValueError, TypeError) as exc:  # a constructor refused a scalar
        raise SuiteError(file, "$", f"invalid YAML: {exc}") from exc


def scan_yaml(file: Path, text: str) -> None:
    """Refuse deep nesting and alias bombs from the event stream, before anything is built.

    The size of every anchored node is counted with its own aliases expanded, so the values
    aliases add are known exactly without expanding them."""
    sizes: dict[str | None, int] = {}  # an alias's anchor is typed optional, never None
    stack: list[list[Any]] = []  # [anchor, expanded size] per open collection
    added = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        mark = event.start_mark  # typed optional; the parser marks every event
        line = f"line {mark.line + 1}" if mark is not None else "$"
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) > MAX_DEPTH:
                raise SuiteError(file, line, f"nested deeper than {MAX_DEPTH} levels")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, size = None, sizes.get(event.anchor, 1)
            added += size
            if added > MAX_ALIAS_NODES:
                raise SuiteError(
                    file,
                    line,
                    f"YAML aliases expand to more than {MAX_ALIAS_NODES} values",
                    f"*{event.anchor}",
                )
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if stack:
            stack[-1][1] += size


def check_plain(file: Path, where: str, value: Any, depth: int = 0) -> None:
    """Refuse what is not JSON-like data: a suite is data, and all of it must be writable."""
    if depth > MAX_DEPTH:
        raise SuiteError(file, where, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, _BigInt):
        raise SuiteError(file, where, "integer out of range (|n| < 2**63)", str(value))
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise SuiteError(file, where, "text with a lone surrogate (not Unicode)", value)
    elif isinstance(value, int):
        if abs(value) >= MAX_INT:
            raise SuiteError(file, where, "integer out of range (|n| < 2**63)", value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise SuiteError(file, where, "not a finite number", value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool):
                raise SuiteError(file, where, "a key must be text or a number", key)
            check_plain(file, f"{where}.{key}", key, depth + 1)
            check_plain(file, f"{where}.{key}", item, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_plain(file, f"{where}[{i}]", item, depth + 1)
    else:
        raise SuiteError(file, where, f"not JSON data (a {type(value).__name__})", value)
