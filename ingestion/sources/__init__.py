"""Where raw CSV comes from. A source writes the CSV's bytes to a local path; it knows nothing of the lake."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Produced:
    """What a source reports about the bytes it wrote.

    rows: the data row count when the source knows it (the generator does), else None and ingest counts.
    details: source-specific facts for the manifest (seed and scale, Kaggle dataset, original path).
    """

    rows: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    name: str

    def describe(self) -> str:
        """One line for the user: what this source will fetch."""
        ...

    def produce(self, dest: Path, progress: Progress | None = None) -> Produced:
        """Write the raw CSV to ``dest`` (which does not exist yet)."""
        ...

    def expected_bytes(self) -> int | None:
        """About how many bytes ``produce`` will write, known before it runs, else None. ``retail-pipeline run``
        sizes the Spark it starts while the ingest runs from it (and starts it again if the guess was wrong)."""
        ...
