"""Progress for long steps, on stderr, quiet when stderr is not a terminal (CI logs stay readable)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def row_progress(label: str) -> Iterator[Callable[[int], None]]:
    """Yield a callback taking rows done so far; shows a live counter while the block runs."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda rows: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(label, rows=0)
        yield lambda rows: progress.update(task, rows=rows)


@contextlib.contextmanager
def stage(label: str) -> Iterator[None]:
    """A spinner with the elapsed time while a stage runs, on a terminal only; it leaves no line behind (the
    stage logs its own result). Not inside another live display (the ingest's row counter is one)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        progress.add_task(label)
        yield
