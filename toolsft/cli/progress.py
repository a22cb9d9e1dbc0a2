"""One progress display for every long step of the CLI.

On a terminal it is a rich bar: label, bar, done/total and unit, any extra fields, time
elapsed and ETA. A log file or CI gets no live bar, so there it prints a line instead whenever
the label changes (a new step, point or turn) or another tenth of the work is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


def clock(seconds: float | None) -> str:
    """`m:ss` (`h:mm:ss` past an hour); `-:--` when not known."""
    if seconds is None:
        return "-:--"
    s = max(0, int(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class StepBar:
    """`with StepBar(console, "scoring", total=7, unit="points") as bar: bar.update(...)`.

    `unit=None` hides the done/total column (a total in estimated seconds, say); `fields` are
    extra `name value` columns set by `update(**fields)`; `width` pads the label so the bars
    of successive labels line up. `per_label` makes a log's tenths those of each label's own
    `fraction` (a run of steps of very different lengths: a line per tenth of each step).
    """

    def __init__(
        self,
        console: Console,
        label: str,
        total: float | None = None,
        *,
        unit: str | None = "",
        fields: Sequence[str] = (),
        transient: bool = False,
        width: int = 0,
        per_label: bool = False,
    ) -> None:
        self.console, self.unit, self.fields = console, unit, tuple(fields)
        self._label, self._tenth, self.per_label = label, 0, per_label
        label_column = TextColumn(
            f"[bold]{{task.description:<{width}}}" if width else "[bold]{task.description}"
        )
        columns: list[Any] = [label_column, BarColumn()]
        if unit is not None:
            columns.append(TextColumn("{task.fields[count]}"))
        columns += [TextColumn(f"{f} {{task.fields[{f}]}}") for f in self.fields]
        columns += [TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}")]
        self._bar = Progress(*columns, console=console, transient=transient)
        blank: dict[str, Any] = dict.fromkeys(self.fields, "-")
        self._task: TaskID = self._bar.add_task(label, total=total, eta="-:--", count="", **blank)
        self._bar.update(self._task, count=self._count())

    def __enter__(self) -> StepBar:
        if self.console.is_terminal:  # elsewhere the lines tell it all: no frames of a bar
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar.live.is_started:
            self._bar.stop()

    @property
    def completed(self) -> float:
        return self._bar.tasks[0].completed

    def update(
        self,
        completed: float | None = None,
        *,
        advance: float = 0.0,
        total: float | None = None,
        label: str | None = None,
        eta_s: float | None = None,
        fraction: float | None = None,
        **fields: Any,
    ) -> None:
        """Move the bar. Where the caller knows better (a time budget that ends the work before
        its total), `eta_s` replaces rich's estimate and `fraction` (0-1) the share done that
        a log's tenths count."""
        self._bar.update(self._task, completed=completed, total=total, advance=advance or None)
        task = self._bar.tasks[0]
        eta = eta_s if eta_s is not None else task.time_remaining
        new_label = label is not None and label != self._label
        self._label = label or self._label
        values: dict[str, Any] = {k: str(v) for k, v in fields.items()}
        self._bar.update(
            self._task, description=self._label, count=self._count(), eta=clock(eta), **values
        )
        self._log_line(new_label, fraction)

    def print(self, *objects: Any) -> None:
        """A line above the bar (a step's result)."""
        self._bar.console.print(*objects)

    def _count(self) -> str:
        task = self._bar.tasks[0]
        if self.unit is None:
            return ""
        total = "?" if task.total is None else f"{task.total:g}"
        return f"{task.completed:g}/{total} {self.unit}".rstrip()

    def _log_line(self, new_label: bool, fraction: float | None) -> None:
        if self.console.is_terminal:
            return
        task = self._bar.tasks[0]
        if self.per_label:
            if new_label:
                self._tenth = -1
            if fraction is None and not new_label:
                return
            fraction = fraction or 0.0
        elif fraction is None:
            fraction = task.completed / task.total if task.total else 0.0
        tenth = int(10 * fraction)
        if not new_label and tenth <= self._tenth:
            return
        self._tenth = max(self._tenth, tenth)
        if self.per_label:
            done = f"{100 * fraction:.0f}%"
        else:
            done = self._count() or (
                f"{100 * task.completed / task.total:.0f}%" if task.total else ""
            )
        parts = [p for p in (done, *(f"{f} {task.fields[f]}" for f in self.fields)) if p]
        self.console.print(f"{self._label}: {', '.join(parts)}" if parts else self._label)
