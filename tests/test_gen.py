"""`toolsft gen`: determinism, splits, verification, formats, on the shipped suites."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import REPO, SHIPPED_SUITES
from helpers import error_line as _error_line

from toolsft import __version__
from toolsft.chat.parse import parse_assistant
from toolsft.chat.template import render_messages
from toolsft.cli.main import cli
from toolsft.eval.data import read_rows
from toolsft.gen.answers import facts_of
from toolsft.gen.pipeline import GenConfig, generate
from toolsft.gen.writer import write_dataset
from toolsft.manifest import verify_dataset
from toolsft.schema.suite import load_suite
from toolsft.schema.validate import call_errors
from toolsft.types import Example, ToolCall

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module", params=SHIPPED_SUITES)
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    suite = load_suite(REPO / "tool_schemas" / request.param)
    cfg = GenConfig(seed=3, per_stage=120)
    result = generate(suite, cfg)
    out = tmp_path_factory.mktemp(request.param)
    manifest = write_dataset(out, result.rows, result.manifest(suite, cfg))
    return suite, out, manifest


def _rows(out: Path, stage: int, split: str) -> list[Example]:
    return read_rows(out / f"stage{stage}" / f"{split}.jsonl")


def test_every_target_call_validates_and_executes(generated) -> None:  # type: ignore[no-untyped-def]
    suite, out, _ = generated
    n_calls = 0
    for stage in (1, 2, 3):
        for split in SPLITS:
            for ex in _rows(out, stage, split):
                shown = {t.name: t for t in ex.tools}
                for msg in ex.messages[ex.meta["prompt_len"] :]:
                    for tc in msg.get("tool_calls") or []:
                        call = ToolCall.from_openai(tc)
                        assert call_errors(shown, call) == [], (ex.meta["id"], call)
                        assert suite.executor.run(call).get("error") != "UNKNOWN_TOOL"
                        n_calls += 1
    assert n_calls > 100


def test_splits_are_disjoint(generated) -> None:  # type: ignore[no-untyped-def]
    _, out, manifest = generated
    assert manifest["overlap"] == {"templates": 0, "values": 0}
    seen: dict[str, set[str]] = {s: set() for s in SPLITS}
    for stage in (1, 2, 3):
        for split in SPLITS:
            for ex in _rows(out, stage, split):
                seen[split].update(ex.meta["templates"])
    assert seen["test"] and seen["train"]
    assert not (seen["test"] & (seen["train"] | seen["val"]))
    assert all(":h" in t for t in seen["test"])


def test_stage_kinds_cover_the_curriculum(generated) -> None:  # type: ignore[no-untyped-def]
    _, _, manifest = generated
    kinds = {s: set(manifest["counts"][f"stage{s}"]["train"]["kind"]) for s in (1, 2, 3)}
    assert {"select", "multi", "no_tool"} <= kinds[1]
    assert {"fill", "clarify", "parallel"} <= kinds[2]
    assert "result" in kinds[3]
    langs = manifest["counts"]["stage1"]["train"]["lang"]
    assert langs.get("zh", 0) > 20 and langs.get("en", 0) > 20


def test_stage3_answers_state_the_facts(generated) -> None:  # type: ignore[no-untyped-def]
    suite, out, _ = generated
    for ex in _rows(out, 3, "train"):
        answer = ex.messages[-1]["content"]
        assert ex.expected.facts, ex.meta["id"]
        assert all(f in answer for f in ex.expected.facts), (answer, ex.expected.facts)
        assert suite.policy.text_violations(answer) == []
        tool_msg = next(m for m in ex.messages if m["role"] == "tool")
        assert json.loads(tool_msg["content"]) == suite.executor.run(ex.expected.calls[0])


def test_rows_render_and_parse_back(generated) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = generated
    for ex in _rows(out, 2, "val")[:30]:
        text = render_messages(list(ex.messages), [t.to_openai() for t in ex.tools])
        last = text.rsplit("<|im_start|>assistant\n", 1)[1].split("<|im_end|>")[0]
        assert list(parse_assistant(last).calls) == list(ex.expected.calls) or not ex.expected.calls


def test_rows_load_with_datasets_without_null_filling(generated) -> None:  # type: ignore[no-untyped-def]
    import datasets

    _, out, _ = generated
    ds = datasets.load_dataset(
        "json", data_files=str(out / "stage2" / "train.jsonl"), split="train"
    )
    first = Example.from_row(ds[0])
    assert isinstance(ds[0]["tools"], str)
    assert all(v is not None for m in first.messages for v in m.values())
    raw = read_rows(out / "stage2" / "train.jsonl")[0]
    assert first.to_row() == raw.to_row()


def test_same_seed_is_byte_identical(tmp_path: Path) -> None:
    args = ["gen", "--suite", str(REPO / "tool_schemas" / SHIPPED_SUITES[0]), "--per-stage", "40"]
    for name in ("a", "b"):
        res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / name), "--seed", "7"])
        assert res.exit_code == 0, res.output
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "c"), "--seed", "8"])
    assert (tmp_path / "c" / "stage1" / "train.jsonl").read_bytes() != (
        tmp_path / "a" / "stage1" / "train.jsonl"
    ).read_bytes()
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files are left behind"


def test_manifest_counts_match_files(generated) -> None:  # type: ignore[no-untyped-def]
    suite, out, manifest = generated
    assert manifest["suite_hash"] == suite.hash and manifest["seed"] == 3
    for stage in (1, 2, 3):
        for split in SPLITS:
            rows = _rows(out, stage, split)
            c = manifest["counts"][f"stage{stage}"][split]
            assert c["total"] == len(rows)
            assert c["kind"] == dict(sorted(Counter(r.meta["kind"] for r in rows).items()))


def test_sharegpt_export(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli,
        [
            "gen",
            "--suite",
            str(REPO / "tool_schemas" / SHIPPED_SUITES[0]),
            "--out",
            str(tmp_path),
            "--per-stage",
            "20",
            "--format",
            "sharegpt",
        ],
    )
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "sharegpt" / "dataset_info.json").read_text())
    entry = info["toolsft_stage1_train"]
    assert entry["formatting"] == "sharegpt" and entry["columns"]["tools"] == "tools"
    data = json.loads((tmp_path / "sharegpt" / entry["file_name"]).read_text())
    roles = {t["from"] for row in data for t in row["conversations"]}
    assert {"human", "function_call"} <= roles
    assert isinstance(json.loads(data[0]["tools"]), list)


def test_clarify_and_no_tool_rows_expect_no_call(generated) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = generated
    rows = _rows(out, 1, "train") + _rows(out, 2, "train")
    for ex in rows:
        if ex.meta["kind"] in ("no_tool", "clarify", "confirm_ask"):
            assert ex.expected.calls == () and not ex.messages[-1].get("tool_calls")
            assert ex.messages[-1]["content"]


def test_entity_swap_says_new_values_in_training_rows_only() -> None:
    """Swapped values reach the call (the model must copy them), are never a pool or held-out
    value, and the test split is byte-for-byte what it is without swaps."""
    from toolsft.gen.plan import plan_for
    from toolsft.schema.pools import entry_values

    suite = load_suite(REPO / "tool_schemas" / "commerce")
    swapped = generate(suite, GenConfig(seed=5, per_stage=150, stages=(2,), entity_swap=1.0))
    plain = generate(suite, GenConfig(seed=5, per_stage=150, stages=(2,), entity_swap=0.0))
    test = [r.to_row() for r in swapped.rows[(2, "test")]]
    assert test == [r.to_row() for r in plain.rows[(2, "test")]]
    pools = suite.config["pools"]
    known = {
        str(v).lower()
        for p in pools.values()
        for part in ("values", "holdout")
        for e in p.get(part, ())
        for v in entry_values(e)
    }
    new_values = 0
    for ex in swapped.rows[(2, "train")]:
        if "swap:entity" not in ex.meta["augmentations"]:
            continue
        user = " ".join(m["content"] for m in ex.messages if m["role"] == "user")
        for msg in ex.messages:
            for tc in msg.get("tool_calls") or []:
                args = json.loads(tc["function"]["arguments"])
                for value in _strings(args):
                    if value in user and value.lower() not in known and not value.isdigit():
                        new_values += 1
    assert new_values > 20
    assert not any("swap:entity" in r.meta["augmentations"] for r in plain.rows[(2, "train")])
    # a swap may never say a held-out (test) value nor a pool value
    vocab = plan_for(suite).tools["check_inventory"].sampler.vocab
    assert vocab is not None and "xinxiang" in vocab.forbidden and "北京" in vocab.forbidden


def _strings(obj: object) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


# --- atomic datasets: manifest, refusal, --overwrite ------------------------------------------


def _gen(out: Path, *extra: str, per_stage: int = 20) -> Any:
    suite = str(REPO / "tool_schemas" / "commerce")
    args = ["gen", "--suite", suite, "--out", str(out), "--per-stage", str(per_stage), *extra]
    return CliRunner().invoke(cli, args)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_manifest_records_every_file_with_sha256_and_rows(generated) -> None:  # type: ignore[no-untyped-def]
    suite, out, manifest = generated
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {"manifest.json"}
    for rel, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((out / rel).read_bytes()).hexdigest(), rel
        assert entry["rows"] == len(read_rows(out / rel)), rel
    assert manifest["seed"] == 3 and manifest["suite_hash"] == suite.hash
    assert manifest["toolsft_version"] == __version__
    assert {t["function"]["name"] for t in manifest["suite_tools"]} == set(suite.tools_by_name)
    assert verify_dataset(out) == manifest


def test_gen_refuses_a_non_empty_folder_and_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert _gen(out, "--seed", "1").exit_code == 0
    before = _snapshot(out)
    res = _gen(out, "--seed", "2")
    line = _error_line(res)
    assert str(out) in line and "not empty" in line and "--overwrite" in line
    assert _snapshot(out) == before, "a refused gen changes nothing"
    assert [p.name for p in tmp_path.iterdir()] == ["data"], "and leaves no partial folder"


def test_overwrite_replaces_the_dataset_whole(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert _gen(out, "--seed", "1", "--format", "sharegpt").exit_code == 0
    (out / "stage1" / "notes.txt").write_text("mine")
    res = _gen(out, "--seed", "2", "--overwrite", "--stages", "1,2")
    assert res.exit_code == 0, res.output
    ref = tmp_path / "ref"
    assert _gen(ref, "--seed", "2", "--stages", "1,2").exit_code == 0
    assert _snapshot(out) == _snapshot(ref), "nothing of the first dataset is left"
    assert not (out / "sharegpt").exists() and not (out / "stage3").exists()
    assert verify_dataset(out)["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "ref"]


def test_overwrite_never_deletes_a_folder_gen_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "work"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    line = _error_line(_gen(out, "--overwrite"))
    assert str(out) in line and "not a toolsft dataset" in line and "thesis.tex" in line
    assert (out / "thesis.tex").read_text() == "months of work"
    file = tmp_path / "file"
    file.write_text("x")
    line = _error_line(_gen(file))
    assert str(file) in line and "not a file" in line


def test_gen_into_an_empty_folder_and_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "nested"):
        res = _gen(out, per_stage=5)
        assert res.exit_code == 0, res.output
        assert verify_dataset(out)["files"]["stage1/train.jsonl"]["rows"] == 5


def test_two_call_answers_carry_multi_and_parallel_rows_to_one_answer() -> None:
    """`two_call`: stage-3 multi/parallel rows show both results and one answer stating every
    fact of both, as the episodes of those kinds end; stages 1-2 stay byte-identical."""
    suite = load_suite(REPO / "tool_schemas" / SHIPPED_SUITES[0])
    plain = generate(suite, GenConfig(seed=5, per_stage=80))
    mixed = generate(suite, GenConfig(seed=5, per_stage=80, two_call=0.5))
    for key in [(s, sp) for s in (1, 2) for sp in SPLITS]:
        assert [e.to_row() for e in plain.rows[key]] == [e.to_row() for e in mixed.rows[key]]
    assert {e.meta["kind"] for e in plain.rows[(3, "train")]} <= {"result", "tool_error"}
    two = [e for e in mixed.rows[(3, "train")] if e.meta["kind"] in ("multi", "parallel")]
    assert {e.meta["kind"] for e in two} == {"multi", "parallel"}
    assert 20 <= len(two) <= 60
    for ex in two:
        calls = ex.expected.calls
        assert len(calls) == 2
        if ex.meta["kind"] == "parallel":
            assert calls[0].name == calls[1].name and calls[0] != calls[1]
        else:
            assert calls[0].name != calls[1].name
        results = [json.loads(m["content"]) for m in ex.messages if m["role"] == "tool"]
        assert results == [suite.executor.run(c) for c in calls]
        answer = ex.messages[-1]["content"]
        assert ex.messages[-1]["role"] == "assistant" and answer == ex.expected.answer
        facts = [
            f
            for c, r in zip(calls, results, strict=True)
            for f in facts_of(suite, c.name, r, ex.meta["lang"])
        ]
        assert list(ex.expected.facts) == facts and all(f in answer for f in facts), ex.meta["id"]


def test_no_tool_share_puts_no_tool_rows_in_stages_2_and_3() -> None:
    suite = load_suite(REPO / "tool_schemas" / SHIPPED_SUITES[0])
    plain = generate(suite, GenConfig(seed=5, per_stage=80))
    mixed = generate(suite, GenConfig(seed=5, per_stage=80, no_tool_share=0.3))
    assert [e.to_row() for e in plain.rows[(1, "train")]] == [
        e.to_row() for e in mixed.rows[(1, "train")]
    ]
    for stage in (2, 3):
        assert "no_tool" not in {e.meta["kind"] for e in plain.rows[(stage, "train")]}
        refusals = [e for e in mixed.rows[(stage, "train")] if e.meta["kind"] == "no_tool"]
        assert 10 <= len(refusals) <= 40, stage
        for ex in refusals:
            assert ex.meta["stage"] == stage and not ex.expected.calls
            assert ex.messages[-1]["role"] == "assistant" and ex.messages[-1]["content"]
            assert not any(m.get("tool_calls") for m in ex.messages)


def test_multi_share_turns_one_call_rows_into_two_call_rows() -> None:
    suite = load_suite(REPO / "tool_schemas" / SHIPPED_SUITES[0])
    plain = generate(suite, GenConfig(seed=5, per_stage=120))
    more = generate(suite, GenConfig(seed=5, per_stage=120, multi_share=0.4))
    assert [e.to_row() for e in plain.rows[(3, "train")]] == [
        e.to_row() for e in more.rows[(3, "train")]
    ]
    for stage, one, two, kept in (
        (1, "select", "multi", "no_tool"),
        (2, "fill", "parallel", "clarify"),
    ):

        def count(res: Any, kind: str, stage: int = stage) -> int:
            return sum(e.meta["kind"] == kind for e in res.rows[(stage, "train")])

        # 15% from the mix alone; with the share, 15% + 40% of the one-call rows' 55%
        assert count(plain, two) <= 30 and 30 <= count(more, two) <= 60, stage
        assert count(more, one) < count(plain, one)
        # the other kinds keep their rows: the share comes out of the one-call rows only
        kept_rows = [e.to_row() for e in plain.rows[(stage, "train")] if e.meta["kind"] == kept]
        assert kept_rows == [
            e.to_row() for e in more.rows[(stage, "train")] if e.meta["kind"] == kept
        ]
        for ex in (e for e in more.rows[(stage, "train")] if e.meta["kind"] == two):
            calls = ex.expected.calls
            assert len(calls) == 2 and len(ex.messages[-1]["tool_calls"]) == 2
            assert (calls[0].name == calls[1].name) == (two == "parallel")
