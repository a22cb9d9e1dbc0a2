"""One declaration per option: a config field's help, CLI option and YAML key are one thing.

Each command's options and its config file's section are derived from the config dataclass
(`toolsft.options`), so these tests walk the dataclass's fields rather than a list of names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from helpers import error_line as _error_line

from toolsft.cli.main import cli
from toolsft.cli.options import given, labels
from toolsft.gen.pipeline import GenConfig, load_gen_config
from toolsft.options import fields_of, flag_name, kind
from toolsft.train.config import TrainConfig, load_config

COMMANDS = [("gen", GenConfig), ("train", TrainConfig)]
"""Each command whose options are a config dataclass's fields."""


def _gen(tmp_path: Path, *args: str) -> Any:
    out = tmp_path / "data"
    return CliRunner().invoke(cli, ["gen", "--suite", "commerce", "--out", str(out), *args])


def _other_value(f: dataclasses.Field[Any]) -> Any:
    """A valid value of the field that is not its default."""
    k, meta, default = kind(f), f.metadata, f.default
    if k == "bool":
        return not default
    if k in ("list", "ints"):
        if meta["choices"]:
            return tuple(meta["choices"][1:])  # a strict, non-empty subset of the choices
        return ("a_proj", "b_proj")
    if k == "str":
        return next(c for c in meta["choices"] or ("other",) if c != default)
    if k == "int":
        start = default if default is not None else meta["low"] or (meta["above"] or 0) + 1
        return min(start + 2, meta["high"] or start + 2)  # + 2: max_steps -1 -> 1, not 0
    if k == "float":
        if default is None:
            return 60.0
        top = next((meta[b] for b in ("high", "below") if meta[b] is not None), 2 * default)
        return (default + top) / 2
    raise AssertionError(f"no test value for {f.name} ({k})")


NEEDS: dict[str, dict[str, Any]] = {
    "suite_order": {"show_all": True},
    "decision_weight": {"share_prefix": True},
    "prefix_grad": {"share_prefix": True},
}
"""A field whose other value is valid only beside another field's (the rules between fields)."""


def _cli_args(f: dataclasses.Field[Any], value: Any) -> list[str]:
    flag = flag_name(f)
    if kind(f) == "bool":
        positive = "--" + flag[2:].removeprefix("no-")  # --no-prefix-grad's pair
        return [positive if value else "--no-" + positive[2:]]
    if isinstance(value, tuple | list):
        return [flag, ",".join(map(str, value))]
    return [flag, str(value)]


@pytest.mark.parametrize(("command", "cls"), COMMANDS)
def test_every_field_has_help_and_an_option(command: str, cls: type) -> None:
    res = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    listed = {word.rstrip(",") for line in res.output.splitlines() for word in line.split()}
    for name, f in fields_of(cls).items():
        assert f.metadata.get("help"), name
        if kind(f) == "bool":
            assert {*_cli_args(f, True), *_cli_args(f, False)} <= listed, name
        else:
            assert flag_name(f) in listed, (name, flag_name(f))


def test_a_yaml_key_and_its_option_set_the_same_value(tmp_path: Path) -> None:
    """For every GenConfig field: `gen: {key: value}` in a file and the option on the command
    line give the same config, and it differs from the default there."""
    from toolsft.cli.gen import gen

    default = GenConfig()
    for name, f in fields_of(GenConfig).items():
        value = _other_value(f)
        needs = NEEDS.get(name, {})
        file = tmp_path / f"{name}.yaml"
        as_yaml = list(value) if isinstance(value, tuple) else value
        file.write_text(yaml.safe_dump({"gen": {name: as_yaml, **needs}}))
        from_file = load_gen_config(file)
        argv = ["--suite", "commerce", "--out", "x", *_cli_args(f, value)]
        argv += [a for k, v in needs.items() for a in _cli_args(fields_of(GenConfig)[k], v)]
        params = gen.make_context("gen", argv).params
        from_cli = load_gen_config(None, given(GenConfig, params), labels(GenConfig))
        assert from_file == from_cli, name
        assert getattr(from_file, name) != getattr(default, name), name


def test_the_command_line_wins_over_the_file(tmp_path: Path) -> None:
    from toolsft.cli.gen import gen

    file = tmp_path / "budget.yaml"
    file.write_text("gen:\n  per_stage: 7\n  group: 3\n")
    argv = ["--suite", "commerce", "--out", "x", "--config", str(file), "--per-stage", "9"]
    params = gen.make_context("gen", argv).params
    cfg = load_gen_config(file, given(GenConfig, params), labels(GenConfig))
    assert (cfg.per_stage, cfg.group) == (9, 3)


def test_an_unknown_yaml_key_says_which_was_meant(tmp_path: Path) -> None:
    file = tmp_path / "gen.yaml"
    file.write_text("gen:\n  per_stag: 5\n")
    line = _error_line(_gen(tmp_path, "--config", str(file)))
    assert line == f"Error: {file}:gen.per_stag: unknown key (did you mean 'per_stage'?)"
    file.write_text("gen:\n  colour: red\n")
    line = _error_line(_gen(tmp_path, "--config", str(file)))
    assert f"{file}:gen.colour: unknown key" in line and "gen --help" in line


@pytest.mark.parametrize(
    ("key", "yaml_value", "cli_value"),
    [
        ("per_stage", "0", "0"),
        ("entity_swap", "1.5", "1.5"),
        ("entity_swap", ".nan", "nan"),
        ("langs", "[zh, fr]", "zh,fr"),
        ("stages", "[1, 4]", "1,4"),
        ("stages", "[]", ","),
        ("max_tools", "-1", "-1"),
        ("seed", "x", "x"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_file_key_or_the_option(
    tmp_path: Path, key: str, yaml_value: str, cli_value: str
) -> None:
    file = tmp_path / "gen.yaml"
    file.write_text(f"gen:\n  {key}: {yaml_value}\n")
    line = _error_line(_gen(tmp_path, "--config", str(file)))
    assert line.startswith(f"Error: {file}:gen.{key}: "), line
    flag = flag_name(fields_of(GenConfig)[key])
    line = _error_line(_gen(tmp_path, flag, cli_value))
    assert flag in line, line
    assert not (tmp_path / "data").exists()


def test_a_rule_between_fields_names_where_each_was_set(tmp_path: Path) -> None:
    file = tmp_path / "gen.yaml"
    file.write_text("gen:\n  suite_order: true\n")
    line = _error_line(_gen(tmp_path, "--config", str(file)))
    assert line.startswith(f"Error: {file}:gen.suite_order: needs show_all"), line
    line = _error_line(_gen(tmp_path, "--suite-order"))
    assert line.startswith("Error: --suite-order: needs --show-all"), line
    ok = load_gen_config(file, {"show_all": True}, labels(GenConfig))
    assert ok.suite_order and ok.show_all


def test_stages_are_generated_once_each_in_order(tmp_path: Path) -> None:
    file = tmp_path / "gen.yaml"
    file.write_text("gen:\n  stages: [3, 1, 3]\n")
    assert load_gen_config(file).stages == (1, 3)


# --- train: TrainConfig's fields are its options and a config file's keys ----------------------


def _train(tmp_path: Path, *args: str) -> Any:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    argv = ["train", "--stage", "1", "--data", str(data), "--out", str(tmp_path / "run"), *args]
    return CliRunner().invoke(cli, argv)


def _train_params(tmp_path: Path, *args: str) -> dict[str, Any]:
    from toolsft.cli.train import train

    argv = ["--stage", "1", "--data", str(tmp_path), "--out", "x", *args]
    return train.make_context("train", argv).params


def test_a_train_yaml_key_and_its_option_set_the_same_value(tmp_path: Path) -> None:
    """For every TrainConfig field: `key: value` in a config file and the option on the
    command line give the same config, and it differs from the default there."""
    fields = fields_of(TrainConfig)
    for name, f in fields.items():
        value = _other_value(f)
        needs = NEEDS.get(name, {})
        file = tmp_path / f"{name}.yaml"
        as_yaml = list(value) if isinstance(value, tuple) else value
        file.write_text(yaml.safe_dump({name: as_yaml, **needs}))
        from_file = load_config(file, 1)
        argv = _cli_args(f, value)
        argv += [a for k, v in needs.items() for a in _cli_args(fields[k], v)]
        params = _train_params(tmp_path, *argv)
        from_cli = load_config(None, 1, given(TrainConfig, params), labels(TrainConfig))
        assert from_file == from_cli, name
        assert getattr(from_file, name) != getattr(TrainConfig(), name), name


def test_train_options_win_over_the_file_and_its_stage_section(tmp_path: Path) -> None:
    file = tmp_path / "train.yaml"
    file.write_text("learning_rate: 1e-3\nlora_r: 4\nstages: {1: {learning_rate: 5e-4}}\n")
    params = _train_params(tmp_path, "--config", str(file), "--lr", "3e-4")
    cfg = load_config(file, 1, given(TrainConfig, params), labels(TrainConfig))
    assert (cfg.learning_rate, cfg.lora_r) == (3e-4, 4)
    assert load_config(file, 1).learning_rate == 5e-4


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("lora_rank: 8", "lora_rank: unknown key (did you mean 'lora_r'?)"),
        ("lr: 0.1", "lr: unknown key (did you mean 'learning_rate'?)"),  # the option's name
        ("max_rows: 8", "max_rows: unknown key (did you mean 'max_train_rows'?)"),
        ("colour: red", "colour: unknown key (toolsft train --help lists them)"),
        ("stages: {2: {lora_rank: 8}}", "stages.2.lora_rank: unknown key (did you mean"),
    ],
)
def test_an_unknown_train_key_says_which_was_meant(tmp_path: Path, text: str, said: str) -> None:
    file = tmp_path / "train.yaml"
    file.write_text(text + "\n")
    line = _error_line(_train(tmp_path, "--config", str(file)))
    assert line.startswith(f"Error: {file}:{said}"), line


@pytest.mark.parametrize(
    ("key", "yaml_value", "cli_value"),
    [
        ("lora_r", "0", "0"),
        ("learning_rate", ".nan", "nan"),
        ("learning_rate", "-1e-4", "-1e-4"),
        ("lora_dropout", "1.0", "1"),
        ("method", "adapters", "adapters"),
        ("lr_scheduler", "cosine_decay", "cosine_decay"),
        ("target_modules", "[]", ","),
        ("max_train_rows", "0", "0"),
        ("seed", "-1", "-1"),
        ("max_steps", "0", "0"),
        ("epochs", "x", "x"),
    ],
)
def test_a_bad_train_value_is_one_line_naming_the_file_key_or_the_option(
    tmp_path: Path, key: str, yaml_value: str, cli_value: str
) -> None:
    file = tmp_path / "train.yaml"
    file.write_text(f"{key}: {yaml_value}\n")
    line = _error_line(_train(tmp_path, "--config", str(file)))
    assert line.startswith(f"Error: {file}:{key}: "), line
    flag = flag_name(fields_of(TrainConfig)[key])
    line = _error_line(_train(tmp_path, flag, cli_value))
    assert flag in line, line
    assert not (tmp_path / "run").exists()


def test_a_rule_between_train_fields_names_the_option_that_set_it(tmp_path: Path) -> None:
    line = _error_line(_train(tmp_path, "--no-prefix-grad"))
    assert line.startswith("Error: --no-prefix-grad: must be true without share_prefix"), line
    file = tmp_path / "train.yaml"
    file.write_text("share_prefix: true\nstages: {3: {decision_weight: 2}}\n")
    line = _error_line(_train(tmp_path, "--config", str(file), "--no-share-prefix"))
    assert line.startswith(f"Error: {file}:stages.3.decision_weight: must be 1 without"), line


# --- demo budgets: their sections are the commands' own configs ------------------------------


def _budget(tmp_path: Path, change: dict[str, Any]) -> Path:
    from toolsft.demo.budgets import CONFIG_DIR

    data = yaml.safe_load((CONFIG_DIR / "quick.yaml").read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = data
        for p in parents:
            node = node[int(p) if p.isdigit() else p]
        if value is None:
            del node[last]
        else:
            node[last] = value
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_budget_file_is_what_gen_and_train_read(tmp_path: Path) -> None:
    from toolsft.demo.budgets import load_budget

    path = _budget(tmp_path, {"gen.per_stage": 24, "train.stages.2.max_steps": 5})
    b = load_budget(path)
    assert b.gen == load_gen_config(path) and b.gen.per_stage == 24
    assert b.train == tuple(load_config(path, s) for s in (1, 2, 3))
    assert b.max_steps == (3, 5, 3)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"gen.per_stag": 5}, "gen.per_stag: unknown key (did you mean 'per_stage'?)"),
        ({"gen.langs": ["fr"]}, "gen.langs: must be one of zh, en ('fr')"),
        ({"eval.engine": "gold"}, "eval.engine: must be one of vllm, hf ('gold')"),
        ({"eval.rowz": 3}, "eval.rowz: unknown key (did you mean 'rows'?)"),
        ({"demo.step_s": 0}, "demo.step_s: must be more than 0 seconds (0.0)"),
        ({"demo.stage_shares": [1, 2]}, "demo.stage_shares: must be one share per stage"),
        ({"demo.minutes": "soon"}, "demo.minutes: expected a number ('soon')"),
        ({"device": "tpu"}, "device: must be one of cpu, cuda ('tpu')"),
        ({"trian": {}}, "trian: unknown key (did you mean 'train'?)"),
        ({"name": None}, "name: missing required key"),
        ({"train.stages.3.max_steps": None}, "train.stages.3.max_steps: must be set"),
        ({"train.learning_rate": 0}, "train.learning_rate: must be > 0 (0.0)"),
        ({"train.lr": 0.1}, "train.lr: unknown key (did you mean 'learning_rate'?)"),
        ({"train.stages.2.lora_r": 0}, "train.stages.2.lora_r: must be > 0 (0)"),
        ({"train": [1]}, "train: must be a mapping"),
    ],
)
def test_a_bad_budget_is_one_error_naming_file_and_key(
    tmp_path: Path, change: dict[str, Any], said: str
) -> None:
    from toolsft.demo.budgets import load_budget
    from toolsft.errors import ToolsftError

    path = _budget(tmp_path, change)
    with pytest.raises(ToolsftError) as err:
        load_budget(path)
    assert str(err.value).startswith(f"{path}:{said}"), str(err.value)
