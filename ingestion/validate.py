"""Facts about a raw CSV, read in streaming passes: checksum, size, header and data row count."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from retail_core.dialect import RAW_COLUMNS
from retail_core.errors import InputError

_CHUNK = 8 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class CsvFacts:
    sha256: str
    bytes: int
    header: tuple[str, ...]
    rows: int


def read_header(path: Path, *, where: str | None = None) -> tuple[str, ...]:
    """The header fields, with a UTF-8 BOM removed; InputError if the file is empty or the header is wrong."""
    where = where or str(path)
    with path.open("rb") as handle:
        first = handle.readline(1 << 16)
    if not first.strip():
        raise InputError("the CSV is empty", where, "export the data again, header included")
    if first.startswith(_BOM):
        first = first[len(_BOM) :]
    # Latin-1 decodes any byte, and the header is ASCII in every encoding we accept.
    header = tuple(next(csv.reader([first.decode("latin-1").rstrip("\r\n")])))
    if tuple(h.strip() for h in header) != RAW_COLUMNS:
        raise InputError(
            "wrong CSV header",
            where,
            f"expected {','.join(RAW_COLUMNS)} but found {','.join(header)[:200]}",
        )
    return RAW_COLUMNS


def inspect_csv(path: Path, *, rows: int | None = None, where: str | None = None) -> CsvFacts:
    """Checksum and size in one pass; the data row count in a second unless the producer already knows it.

    Rows are counted as CSV records (a quoted field may hold a newline), not lines.
    """
    header = read_header(path, where=where)
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if rows is None:
        rows = count_records(path)
    if rows == 0:
        raise InputError("the CSV has a header but no data rows", where or str(path), "check the export")
    return CsvFacts(sha256=digest.hexdigest(), bytes=size, header=header, rows=rows)


def count_records(path: Path) -> int:
    """Data records after the header. Latin-1 keeps the record structure of UTF-8 input intact."""
    with open(path, encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return sum(1 for _ in reader)
