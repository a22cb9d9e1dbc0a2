"""Project layout guards."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_top_level_data_folders_never_shadow_packages() -> None:
    for folder in ("datasets", "evals"):
        assert not (REPO / folder / "__init__.py").exists(), (
            f"{folder}/__init__.py shadows a package"
        )


def test_import_datasets_from_repo_root_is_the_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import datasets; print(datasets.__file__)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in out.stdout, out.stdout


def test_gen_and_scoring_never_import_torch() -> None:
    code = (
        "import sys, toolsft.gen.pipeline, toolsft.gen.writer, toolsft.schema.suite, "
        "toolsft.chat.parse; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_cli_help_is_instant_and_light() -> None:
    code = "import sys; from toolsft.cli.main import cli; print(sorted(m for m in ('torch','transformers','vllm','trl') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
