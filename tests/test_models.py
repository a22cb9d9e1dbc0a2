"""Model resolution: aliases built once and atomically, everything else passed through."""

from __future__ import annotations

import json
from pathlib import Path

import fixtures_train
import pytest

from toolsft.chat.template import CHAT_TEMPLATE
from toolsft.models import (
    BUILDERS,
    MARKER,
    ModelError,
    ensure_alias,
    model_identity,
    resolve_model,
)

# Shared fixtures (defined once in tests/fixtures_train.py).
tiny_home = fixtures_train.tiny_home


def test_tiny_random_has_our_template_and_two_layers(tiny_home: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_model("tiny-random", tiny_home)
    assert path == tiny_home / "models" / "tiny-random"
    assert (path / MARKER).is_file() and (path / "model.safetensors").is_file()
    assert AutoConfig.from_pretrained(path).num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.chat_template == CHAT_TEMPLATE
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None


def test_alias_is_built_once(tiny_home: Path) -> None:
    path = resolve_model("tiny-random", tiny_home)
    before = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-random", tiny_home) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == before


def test_cached_alias_gets_the_current_template(tiny_home: Path) -> None:
    """A cache built by an older toolsft (older template) is updated, its weights untouched."""
    path = resolve_model("tiny-random", tiny_home)
    (path / "chat_template.jinja").write_text("{{ old }}", encoding="utf-8")
    before = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-random", tiny_home) == path
    assert (path / "chat_template.jinja").read_text(encoding="utf-8") == CHAT_TEMPLATE
    assert (path / "model.safetensors").stat().st_mtime_ns == before


def test_tiny_random_is_deterministic(tiny_home: Path, tmp_path: Path) -> None:
    other = resolve_model("tiny-random", tmp_path / "home2")
    ours = json.loads((tiny_home / "models" / "tiny-random" / MARKER).read_text())
    theirs = json.loads((other / MARKER).read_text())
    assert ours["sha256"] == theirs["sha256"]


def test_crash_while_building_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(out: Path) -> dict:
        (out / "config.json").write_text("{}")  # half a model, then the crash
        raise RuntimeError("killed")

    monkeypatch.setitem(BUILDERS, "tiny-random", boom)
    with pytest.raises(RuntimeError, match="killed"):
        ensure_alias("tiny-random", tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_folder_without_marker_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    partial = tmp_path / "models" / "tiny-random"
    partial.mkdir(parents=True)
    (partial / "config.json").write_text("{}")
    calls = []

    def fake(out: Path) -> dict:
        calls.append(out)
        (out / "config.json").write_text("{}")
        return {"source": "fake"}

    monkeypatch.setitem(BUILDERS, "tiny-random", fake)
    path = ensure_alias("tiny-random", tmp_path)
    assert calls and (path / MARKER).is_file()


def test_paths_and_hub_ids_pass_through(tiny_home: Path, tmp_path: Path) -> None:
    folder = tiny_home / "models" / "tiny-random"
    assert resolve_model(str(folder), tmp_path) == folder
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct", tmp_path) == "Qwen/Qwen2.5-0.5B-Instruct"
    with pytest.raises(ModelError, match="no such folder"):
        resolve_model("./does/not/exist", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(str(tmp_path / "empty"), tmp_path)


def test_model_identity(tiny_home: Path) -> None:
    ident = model_identity(tiny_home / "models" / "tiny-random")
    assert ident["name"] == "tiny-random" and len(ident["sha256"]) == 64
    assert model_identity("org/model")["sha256"] is None


@pytest.mark.slow
def test_smollm2_conversion(tmp_path: Path) -> None:
    """The embedded GGUF becomes a plain safetensors model that loads fast and still talks."""
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("smollm2-135m", tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["num_hidden_layers"] == 30
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert time.perf_counter() - t < 5
    assert tok.chat_template == CHAT_TEMPLATE
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(
        msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0][enc["input_ids"].shape[1] :])


def test_prepare_model_prints_the_built_folder(
    tiny_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from toolsft.cli.main import cli

    monkeypatch.setenv("TOOLSFT_HOME", str(tiny_home))
    out = CliRunner().invoke(cli, ["prepare-model", "tiny-random"])
    assert out.exit_code == 0, out.output
    folder = Path(out.output.strip())
    assert folder == tiny_home / "models" / "tiny-random"
    assert (folder / MARKER).is_file() and (folder / "config.json").is_file()
    bad = CliRunner().invoke(cli, ["prepare-model", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and "no such folder" in bad.output


def _copy_model(src: Path, dst: Path, marker: bool = False) -> Path:
    import shutil

    skip = () if marker else (MARKER,)
    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip)))


def test_identity_is_the_weights_not_the_transformers_version(
    tiny_home: Path, tmp_path: Path
) -> None:
    """An adapter trained under one transformers must export under another: config.json's
    `transformers_version` (rewritten by every save) is no part of the base's identity."""
    src = tiny_home / "models" / "tiny-random"
    a, b = _copy_model(src, tmp_path / "a"), _copy_model(src, tmp_path / "b")
    config = json.loads((b / "config.json").read_text())
    config["transformers_version"] = "4.57.0"
    (b / "config.json").write_text(json.dumps(config))
    assert model_identity(a)["sha256"] == model_identity(b)["sha256"]
    assert model_identity(a)["sha256"] == model_identity(src)["sha256"]  # built or copied
    weights = bytearray((b / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (b / "model.safetensors").write_bytes(bytes(weights))
    assert model_identity(a)["sha256"] != model_identity(b)["sha256"]


def test_a_marker_from_an_older_toolsft_is_rehashed(tiny_home: Path, tmp_path: Path) -> None:
    """Markers written before the identity left config.json out hold another hash: it is
    recomputed (and recorded), so old and fresh caches of one alias agree."""
    from toolsft.models import weights_sha256

    old = _copy_model(tiny_home / "models" / "tiny-random", tmp_path / "old", marker=True)
    info = json.loads((old / MARKER).read_text())
    info.pop("sha256_of", None)
    info["sha256"] = "0" * 64  # what config.json made of it then
    (old / MARKER).write_text(json.dumps(info))
    assert model_identity(old)["sha256"] == weights_sha256(old)
    assert json.loads((old / MARKER).read_text())["sha256"] == weights_sha256(old)
    assert (
        model_identity(old)["sha256"]
        == model_identity(tiny_home / "models" / "tiny-random")["sha256"]
    )
