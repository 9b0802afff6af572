"""The transform job's parameters, with their defaults (no Spark import: the CLI builds its help from here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from retail_core.errors import InputError

ENCODING_CHOICES: tuple[str, ...] = ("auto", "utf-8", "iso-8859-1")
DEFAULT_OUTPUT_FILES = 4  # a multiple of 2 and 4: the slice counts of the small Redshift node types
DEFAULT_MAX_QUARANTINE_RATIO = 0.05  # the real data quarantines ~3.2% (duplicates, cancellations, price 0)
DEFAULT_DRIVER_MEMORY = "auto"  # sized from the raw file: glue.local.driver_memory_for


@dataclass(frozen=True)
class TransformOptions:
    """CLI flags locally, job arguments on Glue."""

    encoding: str = "auto"
    output_files: int = DEFAULT_OUTPUT_FILES
    max_quarantine_ratio: float = DEFAULT_MAX_QUARANTINE_RATIO
    shuffle_partitions: int | None = None  # None: sized from the input
    driver_memory: str = DEFAULT_DRIVER_MEMORY  # "auto" or e.g. "3g"; local mode only (Glue: the worker type)

    @classmethod
    def from_job_args(cls, args: Mapping[str, str]) -> TransformOptions:
        """The options from Glue-style job arguments (all strings; absent ones take the defaults)."""
        try:
            return cls(
                encoding=args.get("encoding", "auto"),
                output_files=int(args.get("output_files", DEFAULT_OUTPUT_FILES)),
                max_quarantine_ratio=float(args.get("max_quarantine_ratio", DEFAULT_MAX_QUARANTINE_RATIO)),
                shuffle_partitions=int(args["shuffle_partitions"])
                if args.get("shuffle_partitions")
                else None,
            )
        except ValueError as exc:
            raise InputError("bad job argument", str(exc), "check the job's parameters") from None

    def check(self) -> None:
        """InputError for a value the job cannot use."""
        if self.encoding not in ENCODING_CHOICES:
            raise InputError(
                f"unknown encoding {self.encoding!r}",
                "--encoding",
                f"use one of {', '.join(ENCODING_CHOICES)}",
            )
        if self.output_files < 1:
            raise InputError("output files must be at least 1", f"--output-files {self.output_files}")
        if self.shuffle_partitions is not None and self.shuffle_partitions < 1:
            raise InputError(
                "shuffle partitions must be at least 1", f"--shuffle-partitions {self.shuffle_partitions}"
            )
        if self.driver_memory != "auto" and not re.fullmatch(r"[1-9][0-9]*[mMgG]", self.driver_memory):
            raise InputError(
                "driver memory is a size",
                f"--driver-memory {self.driver_memory}",
                "use e.g. 3g, 2048m or auto",
            )
        if not 0.0 <= self.max_quarantine_ratio <= 1.0:
            raise InputError(
                "the quarantine ratio is a fraction",
                f"--max-quarantine-ratio {self.max_quarantine_ratio}",
                "use a number from 0 to 1, e.g. 0.05",
            )
