"""Reading a training config: a YAML file, its per-stage sections and the CLI's options.

Every error names the file (or the option), the field as the user wrote it
(`stages.2.lora_r`, `--lr`) and the bad value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolsft.train.config import FIELDS, ConfigError, TrainConfig

MAX_CONFIG_BYTES = 1 << 20
"""A training config is a page of YAML; anything larger is not one (and is not read whole)."""


def _coerce(name: str, value: Any, file: str | None, where: str) -> Any:
    """Check a YAML value against the field's declared type (YAML has no float for 2e-4 etc.)."""
    kind = FIELDS[name].type
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError("must not be null", file=file, where=where, value=value)
    for prefix, accepts, want in _KINDS:
        if kind.startswith(prefix):
            try:
                return accepts(value)
            except (TypeError, ValueError, OverflowError):
                raise ConfigError(f"expected {want}", file=file, where=where, value=value) from None
    return value


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError
    return list(value)


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def _as_float(value: Any) -> float:
    # A quoted number ("2e-4": YAML 1.1 reads an exponent without a dot as a string) counts.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError
    return float(value)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


_KINDS = (
    ("list", _as_list, "a list of strings"),
    ("bool", _as_bool, "true or false"),
    ("int", _as_int, "an integer"),
    ("float", _as_float, "a number"),
    ("str", _as_str, "a string"),
)


def overrides_from_mapping(
    data: dict[str, Any], where: str, *, file: str | None = None, prefix: str = ""
) -> dict[str, Any]:
    """Validate keys and types of a flat mapping of config fields.

    Errors name `file` and `prefix + key`; without `file`, `where` names the source.
    """
    file = where if file is None else file
    out = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in FIELDS:
            raise ConfigError(f"unknown key{_did_you_mean(str(key))}", file=file, where=path)
        out[key] = _coerce(key, value, file, path)
    return out


def _did_you_mean(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, FIELDS, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else " (toolsft train --help lists the fields)"


def load_config(
    path: Path | None,
    stage: int | None = None,
    overrides: dict[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> TrainConfig:
    """Defaults, then the YAML file and its `stages.<N>` section, then explicit overrides.

    `labels` names how the user gave each override (`{"learning_rate": "--lr"}`), so a bad
    value is reported as the option they typed. Every stage section of the file is checked,
    not only `stage`'s: a typo in stage 3 fails before stage 1 trains for an hour.
    """
    base: Sourced = {}
    sections: dict[int, Sourced] = {}
    if path is not None:
        base, sections = _read_yaml(Path(path))
    given: Sourced = {
        k: (v, (None, (labels or {}).get(k, k)))
        for k, v in (overrides or {}).items()
        if v is not None
    }
    where = str(path) if path else "options"
    configs = {
        s: _build({**base, **sections.get(s, {}), **given}, where) for s in {*sections, stage}
    }
    return configs[stage]


Sourced = dict[str, tuple[Any, tuple[str | None, str]]]
"""Field -> (value, (file, path)): a value and where the user wrote it."""


def _build(values: Sourced, where: str) -> TrainConfig:
    cfg = TrainConfig(**{k: v for k, (v, _) in values.items()})
    return cfg.validate(where, {k: source for k, (_, source) in values.items()})


def _read_yaml(path: Path) -> tuple[Sourced, dict[int, Sourced]]:
    """The fields the file sets, and those of each `stages.<N>` section."""
    file = str(path)
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(
            "top level must be a mapping of config fields", file=file, value=type(data).__name__
        )
    if isinstance(data.get("train"), dict):  # a demo budget file: its train section (and model)
        data = {**({"model": data["model"]} if "model" in data else {}), **data["train"]}
    stages = data.pop("stages", {}) or {}
    if not isinstance(stages, dict):
        raise ConfigError(
            "must be a mapping of stage number to settings", file=file, where="stages"
        )
    base = {k: (v, (file, k)) for k, v in overrides_from_mapping(data, file).items()}
    sections: dict[int, Sourced] = {}
    for key, section in stages.items():
        if str(key) not in ("1", "2", "3") or not isinstance(section, dict):
            raise ConfigError(
                "expected stage 1, 2 or 3 with a mapping", file=file, where=f"stages.{key}"
            )
        prefix = f"stages.{key}."
        found = overrides_from_mapping(section, file, prefix=prefix)
        sections[int(key)] = {k: (v, (file, prefix + k)) for k, v in found.items()}
    return base, sections


def load_yaml_file(path: Path) -> Any:
    """The parsed file, or a ConfigError for a file that is missing, not a regular file (a
    FIFO would block), too large, not UTF-8 or not YAML."""
    import yaml

    file = str(path)
    try:
        if not path.is_file():
            what = "not found" if not path.exists() else "not a regular file"
            raise ConfigError(what, file=file)
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=file) from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"larger than {MAX_CONFIG_BYTES // 1024} KiB; not a config", file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (a bad byte at offset {exc.start})", file=file) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", file=file, where=line) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=file) from None
