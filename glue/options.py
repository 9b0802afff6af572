"""The transform job's parameters, with their defaults (no Spark import: the CLI builds its help from here)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from retail_core import contract, layout
from retail_core.errors import InputError

T = TypeVar("T")
D = TypeVar("D")

ENCODING_CHOICES: tuple[str, ...] = ("auto", "utf-8", "iso-8859-1")
DEFAULT_OUTPUT_FILES = 4  # a multiple of 2 and 4: the slice counts of the small Redshift node types
DEFAULT_MAX_QUARANTINE_RATIO = 0.05  # the scale-1 twin (the real file's profile) quarantines 1.44%
DEFAULT_DRIVER_MEMORY = "auto"  # sized from the raw file: glue.local.driver_memory_for
# Spark refuses a heap under 450 MiB x 1.5 of "system memory" (its reserved memory), and a smaller -Xmx fails with
# a Java stack trace: the floor is checked with the flag, in one line.
MIN_DRIVER_MEMORY_MIB = 1024


@dataclass(frozen=True)
class TransformOptions:
    """CLI flags locally, job arguments on Glue."""

    encoding: str = "auto"
    output_files: int = DEFAULT_OUTPUT_FILES
    max_quarantine_ratio: float = DEFAULT_MAX_QUARANTINE_RATIO
    shuffle_partitions: int | None = None  # None: sized from the input
    driver_memory: str = DEFAULT_DRIVER_MEMORY  # "auto" or e.g. "3g"; local mode only (Glue: the worker type)
    # The accepted invoice dates, ISO (``2000-01-01`` or ``2000-01-01 00:00:00``), both ends included; a row
    # outside is quarantined as invoice_date_out_of_range. Empty: contract.invoice_date_window's defaults
    # (2000-01-01 to the run's start plus one day).
    earliest_invoice_date: str = ""
    latest_invoice_date: str = ""

    @classmethod
    def from_job_args(cls, args: Mapping[str, str]) -> TransformOptions:
        """The options from Glue-style job arguments (all strings; absent or empty ones take the defaults)."""
        return cls(
            encoding=args.get("encoding") or "auto",
            output_files=_job_arg(args, "output_files", int, DEFAULT_OUTPUT_FILES),
            max_quarantine_ratio=_job_arg(args, "max_quarantine_ratio", float, DEFAULT_MAX_QUARANTINE_RATIO),
            shuffle_partitions=_job_arg(args, "shuffle_partitions", int, None),
            earliest_invoice_date=args.get("earliest_invoice_date", ""),
            latest_invoice_date=args.get("latest_invoice_date", ""),
        )

    def check(self) -> None:
        """InputError for a value the job cannot use."""
        if self.encoding not in ENCODING_CHOICES:
            raise InputError(
                f"unknown encoding {self.encoding!r}",
                _where("encoding", self.encoding),
                f"use one of {', '.join(ENCODING_CHOICES)}",
            )
        if self.output_files < 1:
            raise InputError("output files must be at least 1", _where("output_files", self.output_files))
        if self.shuffle_partitions is not None and self.shuffle_partitions < 1:
            raise InputError(
                "shuffle partitions must be at least 1", _where("shuffle_partitions", self.shuffle_partitions)
            )
        if self.driver_memory != "auto" and not re.fullmatch(r"[1-9][0-9]*[mMgG]", self.driver_memory):
            raise InputError(
                "driver memory is a size",
                _where("driver_memory", self.driver_memory),
                "use e.g. 3g, 2048m or auto",
            )
        if self.driver_memory != "auto" and _mebibytes(self.driver_memory) < MIN_DRIVER_MEMORY_MIB:
            raise InputError(
                f"driver memory below {MIN_DRIVER_MEMORY_MIB}m",
                _where("driver_memory", self.driver_memory),
                "Spark's driver cannot start in less: use 1g or more, or auto",
            )
        self.date_window(dt.datetime.now(dt.UTC))
        if not 0.0 <= self.max_quarantine_ratio <= 1.0:
            raise InputError(
                "the quarantine ratio is a fraction",
                _where("max_quarantine_ratio", self.max_quarantine_ratio),
                "use a number from 0 to 1, e.g. 0.05",
            )

    def date_window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The accepted invoice dates for a run started at ``now``; InputError for a bad or empty window."""
        ends = []
        names = ("earliest_invoice_date", "latest_invoice_date")
        for name, text in zip(names, (self.earliest_invoice_date, self.latest_invoice_date), strict=True):
            try:
                ends.append(dt.datetime.fromisoformat(text.strip()) if text.strip() else None)
            except ValueError:
                raise InputError(
                    f"the {name.replace('_', ' ')} is not a date",
                    _where(name, repr(text)),
                    "use e.g. 2000-01-01 or 2000-01-01 00:00:00",
                ) from None
        for name, end in zip(names, ends, strict=True):
            if end is not None and end.date() < layout.EARLIEST_DATE:
                raise InputError(
                    f"the {name.replace('_', ' ')} is before {layout.EARLIEST_DATE.isoformat()}",
                    _where(name, end.date().isoformat()),
                    "a typo in the year? The contract's default is 2000-01-01",
                )
        earliest, latest = contract.invoice_date_window(now, earliest=ends[0], latest=ends[1])
        if earliest.tzinfo or latest.tzinfo or earliest > latest:  # `or` keeps aware and naive uncompared
            raise InputError(
                "the invoice date window is empty or has a time zone",
                f"{earliest.isoformat()} to {latest.isoformat()}",
                "give naive UTC dates, the earliest first",
            )
        return earliest, latest


# The options from_job_args reads: the others (driver memory) are CLI flags only.
_JOB_ARGS = frozenset(
    (
        "encoding",
        "output_files",
        "max_quarantine_ratio",
        "shuffle_partitions",
        "earliest_invoice_date",
        "latest_invoice_date",
    )
)


def _where(name: str, value: object) -> str:
    """Where a bad option was given: an option comes from a CLI flag (``--output-files``) locally and, when Glue
    takes it (:data:`_JOB_ARGS`), from the job argument of the same name (``--output_files``): both are named."""
    flag = f"--{name.replace('_', '-')}"
    return f"{flag} or the job argument --{name}: {value}" if name in _JOB_ARGS else f"{flag} {value}"


def _job_arg(args: Mapping[str, str], name: str, convert: Callable[[str], T], default: D) -> T | D:
    """A Glue job argument converted, or ``default`` when it is absent or empty; InputError naming it."""
    text = args.get(name, "").strip()
    if not text:
        return default
    try:
        return convert(text)
    except ValueError:
        kind = "a whole number" if convert is int else "a number"
        raise InputError(
            f"the job argument --{name} is not {kind}", f"--{name} {text!r}", "check the job's parameters"
        ) from None


def _mebibytes(size: str) -> int:
    """A checked size (``2048m``, ``3g``) in MiB."""
    number, unit = int(size[:-1]), size[-1].lower()
    return number * 1024 if unit == "g" else number
