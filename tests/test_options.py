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

from toolsft.cli.main import cli
from toolsft.cli.options import given, labels
from toolsft.gen.pipeline import GenConfig, load_gen_config
from toolsft.options import fields_of, flag_name, kind

COMMANDS = [("gen", GenConfig)]
"""Each command whose options are a config dataclass's fields."""


def _error_line(res: Any) -> str:
    """The CLI's one-line user error (exit 2, no traceback)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, res.output
    return lines[0]


def _gen(tmp_path: Path, *args: str) -> Any:
    out = tmp_path / "data"
    return CliRunner().invoke(cli, ["gen", "--suite", "commerce", "--out", str(out), *args])


def _other_value(f: dataclasses.Field[Any]) -> Any:
    """A valid value of the field that is not its default."""
    k, meta = kind(f), f.metadata
    if k == "bool":
        return not f.default
    if k in ("list", "ints"):
        return tuple(meta["choices"][1:])  # a strict, non-empty subset of the choices
    if k == "int":
        return min(f.default + 1, meta["high"] or f.default + 1)
    if k == "float":
        return (f.default + (meta["high"] if meta["high"] is not None else 2 * f.default)) / 2
    raise AssertionError(f"no test value for {f.name} ({k})")


def _cli_args(f: dataclasses.Field[Any], value: Any) -> list[str]:
    flag = flag_name(f)
    if kind(f) == "bool":
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, tuple):
        return [flag, ",".join(map(str, value))]
    return [flag, str(value)]


@pytest.mark.parametrize(("command", "cls"), COMMANDS)
def test_every_field_has_help_and_an_option(command: str, cls: type) -> None:
    res = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    listed = {word.rstrip(",") for line in res.output.splitlines() for word in line.split()}
    for name, f in fields_of(cls).items():
        assert f.metadata.get("help"), name
        assert flag_name(f) in listed, (name, flag_name(f))
        if kind(f) == "bool":
            assert "--no-" + flag_name(f)[2:] in listed, name


def test_a_yaml_key_and_its_option_set_the_same_value(tmp_path: Path) -> None:
    """For every GenConfig field: `gen: {key: value}` in a file and the option on the command
    line give the same config, and it differs from the default there."""
    from toolsft.cli.gen import gen

    default = GenConfig()
    for name, f in fields_of(GenConfig).items():
        value = _other_value(f)
        with_all = {"show_all": True} if name == "suite_order" else {}  # suite_order needs it
        file = tmp_path / f"{name}.yaml"
        as_yaml = list(value) if isinstance(value, tuple) else value
        file.write_text(yaml.safe_dump({"gen": {name: as_yaml, **with_all}}))
        from_file = load_gen_config(file)
        argv = ["--suite", "commerce", "--out", "x", *_cli_args(f, value)]
        argv += ["--show-all"] if with_all else []
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
    from toolsft.train.config import load_config

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
