"""`toolsft eval --jobs`: several models scored in one call, each into its own folder."""

from __future__ import annotations

import json
from pathlib import Path

import fixtures_train
import pytest
from click.testing import CliRunner
from helpers import DEFAULT_SUITE, make_dataset

from toolsft.cli.main import cli

tiny_home = fixtures_train.tiny_home


def _eval(jobs: Path, data: Path, *extra: str) -> object:
    return CliRunner().invoke(
        cli,
        [
            "eval",
            *("--suite", str(DEFAULT_SUITE), "--data", str(data), "--engine", "hf"),
            *("--limit", "2", "--stages", "1", "--max-tokens", "8", "--jobs", str(jobs)),
            *extra,
        ],
    )


def test_each_job_gets_its_own_results(
    tiny_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLSFT_HOME", str(tiny_home))
    data = make_dataset(tmp_path / "data", per_stage=20)
    jobs = tmp_path / "jobs.json"
    jobs.write_text(
        json.dumps(
            [
                {"model": "tiny-random", "out": str(tmp_path / "a"), "name": "first"},
                {"model": "tiny-random", "out": str(tmp_path / "b")},
            ]
        )
    )
    res = _eval(jobs, data)
    assert res.exit_code == 0, res.output
    first = json.loads((tmp_path / "a" / "results.json").read_text())
    second = json.loads((tmp_path / "b" / "results.json").read_text())
    assert first["run"]["name"] == "first" and second["run"]["name"] == "tiny-random"
    assert first["perf"]["requests"] == second["perf"]["requests"] > 0
    for folder, res in ((tmp_path / "a", first), (tmp_path / "b", second)):
        # each job keeps its predictions as it makes them, ready for --resume
        lines = (folder / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == res["perf"]["requests"] and (folder / "resume.json").is_file()


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ([{"model": "tiny-random"}], "jobs.json:[0].out: must be a string (None)"),
        ([{"model": "m", "out": "o"}, 3], "jobs.json:[1]: a job is a JSON object (3)"),
        ([{"model": "m", "out": "o", "name": 5}], "jobs.json:[0].name: must be a string (5)"),
        (
            [{"model": "m", "out": "o", "constrained": "yes"}],
            "jobs.json:[0].constrained: must be a boolean ('yes')",
        ),
        ([], "jobs.json: must be a non-empty JSON list ([])"),
        ("{oops", "jobs.json: the --jobs file is not JSON"),
    ],
)
def test_a_bad_jobs_file_names_the_field(tmp_path: Path, content: object, where: str) -> None:
    jobs = tmp_path / "jobs.json"
    jobs.write_text(content if isinstance(content, str) else json.dumps(content))
    res = _eval(jobs, tmp_path)
    assert res.exit_code == 2 and where in res.output, res.output
    assert "Traceback" not in res.output
