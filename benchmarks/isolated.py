"""One arm of a benchmark in a fresh interpreter, read back from its RESULT line.

Each arm (toolsft, TRL) imports torch and its trainer alone, so neither warms the other's
caches or shares its memory peak. The parent runs `run_arm`; the child prints with `emit`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

RESULT = "RESULT "


def emit(result: dict[str, Any]) -> None:
    print(RESULT + json.dumps(result), flush=True)


def run_arm(script: str, argv: list[str], label: str) -> dict[str, Any]:
    """`python script *argv` in a child process; its last RESULT line, or exit with its stderr."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    cmd = [sys.executable, script, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    line = [x for x in proc.stdout.splitlines() if x.startswith(RESULT)]
    if proc.returncode or not line:
        sys.exit(f"{label} run failed:\n{proc.stderr[-4000:]}")
    return json.loads(line[-1][len(RESULT) :])
