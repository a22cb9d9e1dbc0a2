"""Puts the shipped files (suites, baselines, tolerances, configs) into the wheel.

They live at the repository root (the project's documented layout); a wheel carries them as
`toolsft/_shipped/<same path>`, where `toolsft.shipped` looks first. An editable install
reads them from the checkout, so nothing is copied for it. Everything else is in
pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Keep in step with MANIFEST.in (an sdist must carry them for its wheel).
SHIPPED = (
    "tool_schemas",
    "evals/baselines",
    "evals/tolerances.yaml",
    "configs/accelerate",
    "configs/demo",
)


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "toolsft" / "_shipped"
        shutil.rmtree(target, ignore_errors=True)  # a file removed here must leave the wheel
        for rel in SHIPPED:
            src, dst = here / rel, target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildPyWithShipped})
