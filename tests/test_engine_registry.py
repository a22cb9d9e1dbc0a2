"""The engine registry: names, descriptions, option specs, builders, and the CLI asking it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import DEFAULT_SUITE, make_dataset

from toolsft.cli.main import cli
from toolsft.engines import EngineError, engine_names, get_engine, make_engine
from toolsft.engines.registry import (
    OPTIONS,
    Serve,
    check_options,
    engine_from_options,
    engine_options,
    engines_taking,
    register,
)
from toolsft.engines.replay import GoldEngine, ReplayEngine
from toolsft.engines.swap import AdapterServer


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), per_stage=10)


def _eval(*args: str) -> object:
    return CliRunner().invoke(cli, ["eval", "--suite", str(DEFAULT_SUITE), *args])


def test_every_engine_has_a_description_known_options_and_its_class() -> None:
    names = engine_names()
    assert {"vllm", "hf", "openai", "replay", "gold"} <= set(names)
    for name in names:
        spec = get_engine(name)
        assert spec.name == name and spec.description.endswith(".")
        assert set(spec.options) <= set(OPTIONS)
        assert spec.load().name == name  # the class it builds answers to the same name
    assert set(engine_names(swaps=True)) == {"vllm", "hf", "gold"}
    assert set(engine_names(serves="weights")) == {"vllm", "hf"}


@pytest.mark.parametrize(
    ("typo", "guess"), [("vlm", "vllm"), ("openia", "openai"), ("Gold", "gold")]
)
def test_an_unknown_name_gets_did_you_mean_and_the_list(typo: str, guess: str) -> None:
    with pytest.raises(EngineError) as exc:
        get_engine(typo)
    text = str(exc.value)
    assert f"did you mean {guess!r}?" in text
    assert all(n in text for n in engine_names())


def test_a_name_close_to_nothing_gets_only_the_list() -> None:
    with pytest.raises(EngineError, match="unknown engine") as exc:
        make_engine("zzzz")
    assert "did you mean" not in str(exc.value) and "replay" in str(exc.value)


def test_options_apply_to_their_engines_only() -> None:
    assert engines_taking("base_url") == ("openai",)
    assert engines_taking("predictions") == ("replay",)
    assert set(engines_taking("dtype")) == {"vllm", "hf"}
    check_options("openai", ["base_url", "timeout", "seed", "model"])  # run settings pass
    with pytest.raises(EngineError, match="--base-url: applies to --engine openai, not hf"):
        check_options("hf", ["base_url"])
    with pytest.raises(EngineError, match="--predictions: applies to --engine replay, not gold"):
        check_options("gold", ["predictions"])


def test_an_option_for_an_engine_not_chosen_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="toolsft.engines.registry"):
        check_options("hf", ["enforce_eager"], strict=False)
    assert "--enforce-eager applies to --engine vllm, not hf: ignored" in caplog.text


def test_engine_options_fill_defaults_and_need_what_has_none() -> None:
    assert engine_options("hf", {"batch_size": 3, "base_url": "x"}) == {
        "batch_size": 3,
        "dtype": "auto",
    }
    assert engine_options("gold", {"batch_size": 3}) == {}
    with pytest.raises(EngineError, match="--engine openai needs --base-url"):
        engine_options("openai", {"base_url": None})
    with pytest.raises(EngineError, match="--engine replay needs --predictions FILE"):
        engine_options("replay", {})


def test_builders_take_what_they_serve(tmp_path: Path) -> None:
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"key": "a#0@0", "text": "hi"}) + "\n")
    replay = engine_from_options("replay", Serve(), {"predictions": preds})
    assert isinstance(replay, ReplayEngine) and replay.info()["model"] == str(preds)
    gold = engine_from_options("gold", Serve(examples=(), samples=2), {"predictions": preds})
    assert isinstance(gold, GoldEngine) and gold.script == {}
    served = engine_from_options(
        "openai", Serve(model="m", deadline_s=5.0), {"base_url": "http://h/v1", "retries": 1}
    )
    assert (served.model, served.retries, served.deadline_s) == ("m", 1, 5.0)  # type: ignore[attr-defined]
    assert served.timeout_s == OPTIONS["timeout"].default  # type: ignore[attr-defined]
    served.close()


def test_a_second_registration_of_a_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register("gold", "again.", (), lambda: GoldEngine, "script")
    with pytest.raises(ValueError, match="unknown options"):
        register("new", "x.", ("no_such_option",), lambda: GoldEngine, "script")
    assert "new" not in engine_names()


def test_a_curve_refuses_an_engine_that_cannot_swap(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="vllm, hf, gold"):
        AdapterServer("openai", tmp_path, tmp_path / "scratch", base_url="http://h/v1")
    server = AdapterServer("gold", tmp_path, tmp_path / "scratch", examples=[], seed=3)
    assert isinstance(server.serve(None), GoldEngine)
    server.close()


def test_the_registry_imports_no_backend() -> None:
    code = (
        "import sys; from toolsft.engines.registry import get_engine, engine_options;"
        "[get_engine(n) for n in ('vllm', 'hf', 'openai')]; engine_options('vllm', {});"
        "import toolsft.cli.eval, toolsft.cli.curve;"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the CLI asks the registry ------------------------------------------------------------------


def test_eval_help_takes_choices_and_option_help_from_the_registry() -> None:
    text = CliRunner().invoke(cli, ["eval", "--help"], terminal_width=200).output
    assert "[" + "|".join(engine_names()) + "]" in text
    assert "openai: " + OPTIONS["base_url"].help in text
    assert "vllm, hf: " + OPTIONS["dtype"].help in text
    curve = CliRunner().invoke(cli, ["curve", "--help"], terminal_width=200).output
    assert "[" + "|".join(engine_names(swaps=True)) + "]" in curve


def test_eval_refuses_an_option_the_chosen_engine_does_not_take(data: Path) -> None:
    res = _eval("--data", str(data), "--engine", "gold", "--base-url", "http://h/v1")
    assert res.exit_code == 2  # type: ignore[attr-defined]
    assert "--base-url: applies to --engine openai, not gold" in res.output  # type: ignore[attr-defined]
    res = _eval("--data", str(data), "--engine", "hf", "--predictions", str(data / "manifest.json"))
    assert "--predictions: applies to --engine replay, not hf" in res.output  # type: ignore[attr-defined]


def test_eval_says_what_an_engine_needs_before_reading_data(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-data")
    res = _eval("--data", missing, "--engine", "replay", "--out", str(tmp_path / "r"))
    assert res.exit_code == 2  # type: ignore[attr-defined]
    assert "--engine replay needs --predictions FILE" in res.output  # type: ignore[attr-defined]
    res = _eval("--data", missing, "--engine", "openai", "--out", str(tmp_path / "o"))
    assert "--engine openai needs --base-url" in res.output  # type: ignore[attr-defined]
    assert not (tmp_path / "r").exists() and not (tmp_path / "o").exists()


def test_the_default_engine_ignores_options_of_another_with_a_warning(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without --engine the default may fall back (vllm to hf): a vllm-only flag in a
    documented command must not then fail the run."""
    monkeypatch.setattr("toolsft.engines.default_engine", lambda: "gold")
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="toolsft.engines.registry"):
        res = _eval("--data", str(data), "--enforce-eager", "--out", str(out), "--quiet")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "--enforce-eager applies to --engine vllm, not gold: ignored" in caplog.text
    run = json.loads((out / "results.json").read_text())
    assert run["run"]["model"] == {"name": "gold"}
