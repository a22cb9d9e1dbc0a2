"""Reading a training config: a YAML file, its per-stage sections and the CLI's options.

Every error names the file (or the option), the field as the user wrote it
(`stages.2.lora_r`, `train.learning_rate` in a demo budget, `--lr`) and the bad value. Keys and
values are checked against TrainConfig's field declarations (`toolsft.options.from_mapping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolsft.options import from_mapping, load_yaml_file
from toolsft.train.config import ConfigError, TrainConfig

STAGES = ("1", "2", "3")
HELP = "toolsft train --help"
"""Where an unknown key's reader finds the fields."""

Sourced = dict[str, tuple[Any, tuple[str | None, str]]]
"""Field -> (value, (file, path)): a value and where the user wrote it."""


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
    sections: dict[int | None, Sourced] = {}
    if path is not None:
        base, sections = _read_yaml(Path(path))
    given: Sourced = {
        k: (v, (None, (labels or {}).get(k, k)))
        for k, v in (overrides or {}).items()
        if v is not None
    }
    where = str(path) if path else None
    configs = {
        s: _build({**base, **sections.get(s, {}), **given}, where) for s in {*sections, stage}
    }
    return configs[stage]


def _build(values: Sourced, where: str | None) -> TrainConfig:
    cfg = TrainConfig(**{k: v for k, (v, _) in values.items()})
    return cfg.validate(where, {k: source for k, (_, source) in values.items()})


def _read_yaml(path: Path) -> tuple[Sourced, dict[int | None, Sourced]]:
    """The fields the file sets, and those of each `stages.<N>` section. A demo budget
    (`configs/demo/*.yaml`) keeps them in its `train` section, beside a top-level `model`."""
    file = str(path)
    data = load_yaml_file(path, ConfigError)
    if not isinstance(data, Mapping):
        raise ConfigError(
            "top level must be a mapping of config fields", file=file, value=type(data).__name__
        )
    prefix = ""
    if "train" in data:  # a budget: TrainConfig has no `train` field
        if not isinstance(data["train"], Mapping):
            raise ConfigError("must be a mapping of train settings", file=file, where="train")
        top = {"model": data["model"]} if "model" in data else {}
        data, prefix = {**data["train"]}, "train."
        base = _section(top, file, "")
    else:
        data, base = {**data}, {}
    stages = data.pop("stages", None) or {}
    if not isinstance(stages, Mapping):
        raise ConfigError(
            "must be a mapping of stage number to settings", file=file, where=f"{prefix}stages"
        )
    base |= _section(data, file, prefix)
    sections: dict[int | None, Sourced] = {}
    for key, section in stages.items():
        where = f"{prefix}stages.{key}"
        if str(key) not in STAGES or not isinstance(section, Mapping):
            raise ConfigError("expected stage 1, 2 or 3 with a mapping", file=file, where=where)
        sections[int(key)] = _section(section, file, f"{where}.")
    return base, sections


def _section(data: Mapping[str, Any], file: str, prefix: str) -> Sourced:
    found = from_mapping(
        TrainConfig, data, file=file, prefix=prefix, error=ConfigError, command=HELP
    )
    return {k: (v, (file, prefix + k)) for k, v in found.items()}
