"""Progress bars for long provider commands (alignment, first start)."""

from __future__ import annotations

from collections.abc import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def rich_progress() -> Callable[[str, int, int], None]:
    """A (phase, done, total) callback drawing one rich progress bar per phase."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar.start()
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            for other in tasks.values():  # a new phase means the previous ones are done
                bar.update(other, completed=bar.tasks[other].total)
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    return update
