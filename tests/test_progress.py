"""The CLI's one progress display: a bar on a terminal, lines in a log."""

from __future__ import annotations

import io

from rich.console import Console

from toolsft.cli.progress import StepBar, clock


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100), out


def test_a_log_gets_a_line_per_label_and_per_tenth() -> None:
    console, out = _console(terminal=False)
    with StepBar(console, "scoring", total=20, unit="points", fields=("loss",)) as bar:
        for i in range(1, 21):
            bar.update(completed=i, loss=f"{1 / i:.2f}")  # a tenth every 2 points
        bar.update(label="scored")
    lines = out.getvalue().splitlines()
    assert lines[0] == "scoring: 2/20 points, loss 0.50"
    assert lines[9] == "scoring: 20/20 points, loss 0.05"
    assert lines[10:] == ["scored: 20/20 points, loss 0.05"]  # and no final frame of a bar


def test_labels_alone_make_lines_when_the_total_is_unknown_or_unitless() -> None:
    console, out = _console(terminal=False)
    with StepBar(console, "starting", total=100.0, unit=None, width=12) as bar:
        bar.update(label="train stage 1")
        bar.update(advance=55.0)
        bar.print("ok train stage 1")
    with StepBar(console, "waiting", unit=None) as bar:
        bar.update(label="still waiting")
    assert out.getvalue().splitlines() == [
        "train stage 1: 0%",
        "train stage 1: 55%",
        "ok train stage 1",
        "still waiting",
    ]


def test_a_time_budget_counts_tenths_by_its_own_fraction() -> None:
    """Under a time budget 30 of 1000 steps may be the whole run: the caller's fraction (and
    ETA) decide the log's tenths, not steps / total."""
    console, out = _console(terminal=False)
    with StepBar(console, "stage 1", total=1000, unit="steps") as bar:
        for step in range(1, 31):
            bar.update(completed=step, fraction=step / 30, eta_s=(30 - step) * 2.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1] == "stage 1: 30/1000 steps"


def test_a_terminal_gets_the_bar_and_no_log_lines() -> None:
    console, out = _console(terminal=True)
    with StepBar(console, "eval", total=4, unit="episodes") as bar:
        bar.update(completed=4, label="eval turn 2")
    text = out.getvalue()
    assert "4/4 episodes" in text and "eval turn 2" in text
    assert "eval turn 2: " not in text


def test_clock() -> None:
    assert clock(None) == "-:--"
    assert clock(-3) == "0:00"
    assert clock(75.9) == "1:15"
    assert clock(3 * 3600 + 62) == "3:01:02"
