"""Stage 1 -> 2 -> 3 on tiny-random: weights, lineage, replay, resume, export, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fixtures_train
import pytest
from fixtures_train import tiny_config
from safetensors.torch import load_file

from toolsft.train.callbacks import Interrupted, Progress, StopAfterStep
from toolsft.train.curriculum import CurriculumError
from toolsft.train.runner import train_stage

# Shared fixtures (defined once in tests/fixtures_train.py).
tiny_data = fixtures_train.tiny_data
tiny_home = fixtures_train.tiny_home


@pytest.fixture(scope="module")
def curriculum(tiny_home: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("run")
    events: list[Progress] = []
    results = {
        s: train_stage(s, tiny_data, out, tiny_config(), tiny_home, progress=events.append)
        for s in (1, 2, 3)
    }
    return {"out": out, "results": results, "events": events}


def _lora(stage_dir: Path) -> dict[str, Any]:
    return load_file(stage_dir / "adapter_model.safetensors")


def test_each_stage_writes_its_folder(curriculum: dict) -> None:
    for s in (1, 2, 3):
        d = curriculum["out"] / f"stage{s}"
        for name in (
            "adapter_config.json",
            "adapter_model.safetensors",
            "chat_template.jinja",
            "tokenizer.json",
            "config.yaml",
            "metrics.json",
            "data.json",
            "run.json",
        ):
            assert (d / name).is_file(), d / name
        assert not (d / "checkpoints").exists()
        assert curriculum["results"][s].metrics["global_step"] == 4


def test_lora_weights_change_and_base_weights_do_not(curriculum: dict, tiny_home: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = curriculum["out"]
    w1, w2, w3 = (_lora(out / f"stage{s}") for s in (1, 2, 3))
    assert all("lora_" in k for k in w1)  # the adapter holds no base weights
    assert all(w.abs().sum() > 0 for k, w in w1.items() if "lora_B" in k)  # B starts at zero
    assert w1.keys() == w2.keys() == w3.keys()  # one adapter, continued
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)
    assert any(not torch.equal(w2[k], w3[k]) for k in w2)
    base_dir = tiny_home / "models" / "tiny-random"
    base = AutoModelForCausalLM.from_pretrained(base_dir).state_dict()
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), out / "stage3"
    )
    for name, p in tuned.get_base_model().named_parameters():
        if "lora_" not in name:
            assert torch.equal(p, base[name.replace(".base_layer", "")]), name


def test_run_json_records_lineage(curriculum: dict, tiny_home: Path) -> None:
    from toolsft.models import model_identity
    from toolsft.train.artifacts import weights_sha256

    out = curriculum["out"]
    runs = {s: json.loads((out / f"stage{s}" / "run.json").read_text()) for s in (1, 2, 3)}
    base = model_identity(tiny_home / "models" / "tiny-random")
    for s, run in runs.items():
        assert run["stage"] == s and run["status"] == "complete"
        assert run["base_model"]["sha256"] == base["sha256"]
        assert run["data"]["suite_hash"] == "fixture-suite-hash"
        assert len(run["data"]["manifest_sha256"]) == 64
        assert run["toolsft_version"] and run["versions"]["trl"]
        assert run["template"]["origin"] == "toolsft"
    assert runs[1]["parent"] is None
    for s in (2, 3):
        parent = runs[s]["parent"]
        assert parent["stage"] == s - 1 and parent["run_sha256"] == runs[s - 1]["run_sha256"]
        assert parent["weights_sha256"] == weights_sha256(out / f"stage{s - 1}")


def test_replay_rows_are_mixed_in(curriculum: dict) -> None:
    out = curriculum["out"]
    data = {s: json.loads((out / f"stage{s}" / "data.json").read_text()) for s in (1, 2, 3)}
    assert data[1]["train_rows"] == {"stage1": 24}
    assert data[2]["train_rows"]["stage2"] == 24 and data[2]["train_rows"]["stage1"] == 6
    assert set(data[3]["train_rows"]) == {"stage1", "stage2", "stage3"}
    assert sum(data[3]["train_rows"].values()) == 30
    assert any(i.startswith("stage1:s1-train-") for i in data[3]["train_ids"])


def test_progress_events_reach_the_sink(curriculum: dict) -> None:
    events = curriculum["events"]
    kinds = {e.event for e in events}
    assert {"begin", "step", "log", "end"} <= kinds
    last = [e for e in events if e.stage == 1 and e.event == "step"][-1]
    assert last.step == last.total_steps == 4 and last.tokens_per_s > 0 and last.loss is not None


def test_stage_needs_its_parent(tiny_home: Path, tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(CurriculumError, match="stage 1 is not complete"):
        train_stage(2, tiny_data, tmp_path, tiny_config(), tiny_home)


def test_complete_stage_is_skipped_on_resume_and_refused_otherwise(
    curriculum: dict, tiny_home: Path, tiny_data: Path
) -> None:
    out = curriculum["out"]
    assert train_stage(1, tiny_data, out, tiny_config(), tiny_home, resume=True).skipped
    with pytest.raises(CurriculumError, match="already complete"):
        train_stage(1, tiny_data, out, tiny_config(), tiny_home)


def test_resume_after_interruption(
    curriculum: dict, tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    with pytest.raises(Interrupted):
        train_stage(1, tiny_data, tmp_path, tiny_config(), tiny_home, callbacks=[StopAfterStep(3)])
    stage = tmp_path / "stage1"
    assert not (stage / "run.json").exists()
    assert (stage / "checkpoints" / "checkpoint-2").is_dir()
    with pytest.raises(CurriculumError, match="--resume"):
        train_stage(1, tiny_data, tmp_path, tiny_config(), tiny_home)
    done = train_stage(1, tiny_data, tmp_path, tiny_config(), tiny_home, resume=True)
    steps = [h["step"] for h in done.metrics["log_history"] if "loss" in h]
    assert steps == [3, 4]  # continued from checkpoint-2, not from scratch
    uninterrupted = curriculum["results"][1].metrics["global_step"]
    assert done.metrics["global_step"] == uninterrupted == 4


def test_export_merge_loads_and_matches_the_adapter(
    curriculum: dict, tiny_home: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolsft.chat.template import CHAT_TEMPLATE
    from toolsft.train.export import export_merged

    stage3 = curriculum["out"] / "stage3"
    merged = export_merged(curriculum["out"], 3, tmp_path / "merged", tiny_home)
    assert (merged / "model.safetensors").is_file() and not (
        merged / "adapter_config.json"
    ).exists()
    assert AutoTokenizer.from_pretrained(merged).chat_template == CHAT_TEMPLATE
    x = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 2]])
    base_dir = tiny_home / "models" / "tiny-random"
    want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), stage3)
    got = AutoModelForCausalLM.from_pretrained(merged)
    with torch.no_grad():
        assert torch.allclose(want.eval()(x).logits, got.eval()(x).logits, atol=1e-4)
    with pytest.raises(CurriculumError, match="not empty"):
        export_merged(curriculum["out"], 3, merged, tiny_home)
    # --overwrite replaces an earlier export (here stage 3 by stage 1) ...
    again = export_merged(curriculum["out"], 1, merged, tiny_home, overwrite=True)
    assert json.loads((again / "toolsft-export.json").read_text())["stage"] == 1
    assert sorted(p.name for p in merged.parent.iterdir() if p.name.startswith(".")) == []
    # ... and nothing else
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(CurriculumError, match="not an earlier export"):
        export_merged(curriculum["out"], 3, other, tiny_home, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_export_refuses_unmergeable_adapter_without_merge(
    curriculum: dict, tiny_home: Path, tmp_path: Path
) -> None:
    import shutil

    from toolsft.train.export import export_merged

    run = tmp_path / "run"
    shutil.copytree(curriculum["out"] / "stage1", run / "stage1")
    record = json.loads((run / "stage1" / "run.json").read_text())
    (run / "stage1" / "run.json").write_text(json.dumps({**record, "serve_requires_merge": True}))
    with pytest.raises(CurriculumError, match="--merge"):
        export_merged(run, 1, tmp_path / "adapter", tiny_home, merge=False)
    plain = export_merged(curriculum["out"], 1, tmp_path / "plain", tiny_home, merge=False)
    assert (plain / "adapter_config.json").is_file()


def test_cli_train_and_export(tiny_home: Path, tiny_data: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from toolsft.cli.main import cli

    env = {"TOOLSFT_HOME": str(tiny_home)}
    run = tmp_path / "run"
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "bf16: false\nmax_val_rows: 2\nnum_threads: 1\nstages:\n  1: {learning_rate: 1e-3}\n"
    )
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--stage",
            "1",
            "--data",
            str(tiny_data),
            "--out",
            str(run),
            "--model",
            "tiny-random",
            "--config",
            str(cfg),
            "--max-steps",
            "2",
            "--max-rows",
            "8",
            "--batch-size",
            "2",
            "--grad-accum",
            "1",
            "--lora-r",
            "4",
        ],
        env=env,
    )
    assert res.exit_code == 0, res.output
    assert res.output.count("stage 1: 2/2 steps, loss") == 1  # no terminal: plain lines, once
    saved = (run / "stage1" / "config.yaml").read_text()
    assert "learning_rate: 0.001" in saved and "lora_r: 4" in saved and "max_train_rows: 8" in saved
    res = CliRunner().invoke(
        cli,
        ["export", "--run", str(run), "--stage", "1", "--merge", "--out", str(tmp_path / "merged")],
        env=env,
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    res = CliRunner().invoke(cli, ["train", "--data", str(tiny_data), "--out", str(run)], env=env)
    assert res.exit_code != 0 and "--stage N or --all" in res.output


@pytest.mark.slow
def test_a_few_steps_on_smollm2(tiny_data: Path, tmp_path: Path) -> None:
    """The embedded default itself: converts, passes the checks, trains, loss stays finite."""
    import math

    from toolsft.train.config import TrainConfig

    cfg = TrainConfig(
        max_steps=3,
        save_steps=2,
        batch_size=1,
        grad_accum=2,
        max_train_rows=8,
        max_val_rows=2,
        early_stopping_patience=0,
    )
    result = train_stage(1, tiny_data, tmp_path / "run", cfg, tmp_path / "home")
    assert result.metrics["global_step"] == 3 and math.isfinite(result.metrics["train_loss"])
    assert result.metrics["peak_memory_gb"] < 8
    assert result.run["base_model"]["name"] == "smollm2-135m"


def test_full_fine_tuning_continues_the_parent_model(
    tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """--method full: each stage folder is a whole model, and the next stage starts from it."""
    from transformers import AutoModelForCausalLM

    from toolsft.train.export import export_merged

    cfg = tiny_config(method="full", max_steps=1, max_val_rows=0)
    for s in (1, 2):
        train_stage(s, tiny_data, tmp_path / "run", cfg, tiny_home)
    s2 = tmp_path / "run" / "stage2"
    assert (s2 / "model.safetensors").is_file() and not (s2 / "adapter_config.json").exists()
    run = json.loads((s2 / "run.json").read_text())
    assert run["method"] == "full" and run["parent"]["stage"] == 1
    AutoModelForCausalLM.from_pretrained(s2)
    out = export_merged(tmp_path / "run", 2, tmp_path / "export", tiny_home)
    assert (out / "model.safetensors").is_file()


def test_dora_and_rslora_train(tiny_home: Path, tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config(use_dora=True, use_rslora=True, max_steps=1, max_val_rows=0)
    train_stage(1, tiny_data, tmp_path, cfg, tiny_home)
    adapter = json.loads((tmp_path / "stage1" / "adapter_config.json").read_text())
    assert adapter["use_dora"] and adapter["use_rslora"]
    assert any("lora_magnitude_vector" in k for k in _lora(tmp_path / "stage1"))


def test_early_stopping_is_wired_to_val_loss(
    tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from transformers import EarlyStoppingCallback

    from toolsft.chat.template import CHAT_TEMPLATE
    from toolsft.train.curriculum import StagePlan
    from toolsft.train.device import detect, resolve_auto
    from toolsft.train.runner import _load_tokenizer, _make_trainer, prepare_data

    cfg = resolve_auto(tiny_config(early_stopping_patience=2, save_steps=3), detect())
    base = tiny_home / "models" / "tiny-random"
    tok = _load_tokenizer(base)
    plan = StagePlan(1, tmp_path / "stage1", None, ())
    prepared = prepare_data(plan, tiny_data, cfg, tok, CHAT_TEMPLATE)
    trainer, _ = _make_trainer(plan, cfg, detect(), base, tok, prepared, None, [])
    stops = [c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStoppingCallback)]
    assert stops and stops[0].early_stopping_patience == 2
    assert trainer.args.metric_for_best_model == "eval_loss" and trainer.args.eval_steps == 3


def test_plain_progress_lines_every_tenth_of_the_run() -> None:
    """A log gets a line at each new tenth of a stage: by steps, or by time under --max-time
    (where 400 steps only cap, so step tenths would print nothing)."""
    import dataclasses
    import io

    from rich.console import Console

    from toolsft.cli.train import _done, _run
    from toolsft.train.callbacks import Progress

    def lines(updates: list[Progress]) -> list[int]:
        """The steps at which the CLI's bar prints a line to a log (no terminal); each step
        is followed by its log event, which must not print again."""
        log = io.StringIO()
        console = Console(file=log, force_terminal=False, width=200)

        def call(sink: Any) -> None:
            for p in updates:
                sink(p)
                sink(dataclasses.replace(p, event="log", loss=1.5))

        _run(console, call)
        printed = [line for line in log.getvalue().splitlines() if line.strip()]
        assert all(line.startswith("stage 1: ") for line in printed), printed
        return [int(line.split()[2].split("/")[0]) for line in printed]

    by_steps = [Progress(1, s, 100, elapsed_s=s, eta_s=100.0 - s) for s in range(1, 101)]
    assert lines(by_steps) == list(range(10, 101, 10))
    short = [Progress(1, s, 4, elapsed_s=s, eta_s=4.0 - s) for s in range(1, 5)]
    assert lines(short) == [1, 2, 3, 4]
    # --max-time 300 with steps of 4 s: 75 steps of a 400-step cap, a line every ~30 s
    timed = [
        Progress(1, s, 400, elapsed_s=4.0 * s, eta_s=max(0.0, 300 - 4.0 * s)) for s in range(1, 76)
    ]
    got = lines(timed)
    assert len(got) == 10 and got[-1] == 75 and got[0] in (7, 8)
    assert _done(Progress(1, 0, 10)) == 0 and _done(Progress(1, 3, None)) == 0  # type: ignore[arg-type]
