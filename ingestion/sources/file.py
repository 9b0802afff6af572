"""A local CSV with the Online Retail header: a store's own export."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ingestion.sources import Produced, Progress
from retail_core.errors import InputError


@dataclass(frozen=True)
class FileSource:
    path: Path
    name: str = "file"

    def describe(self) -> str:
        return f"local file {self.path}"

    def check(self) -> None:
        """Fail fast, before anything is written, when the file cannot be read."""
        if not self.path.exists():
            raise InputError("input file not found", str(self.path), "check the --path argument")
        if not self.path.is_file():
            raise InputError("input path is not a file", str(self.path), "pass the CSV file itself")

    def expected_bytes(self) -> int | None:
        return self.path.stat().st_size if self.path.is_file() else None

    def produce(self, dest: Path, progress: Progress | None = None) -> Produced:
        self.check()
        shutil.copyfile(self.path, dest)
        return Produced(details={"path": str(self.path.resolve())})
