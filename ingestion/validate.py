"""Facts about a raw CSV, read in streaming passes: checksum, size, encoding, header and data row count.

Hostile input ends here as a one-line InputError, never a traceback: UTF-16/UTF-32 (refused, with the command
that converts it), a field longer than the csv module's limit (the whole file is one field when a quote is never
closed), or any other record the csv module cannot read. CR-only and mixed line endings are read as line ends.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from retail_core.dialect import RAW_COLUMNS, first_line, refuse_wide_encoding
from retail_core.errors import InputError

_CHUNK = 8 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
# The longest field a record may hold (the csv module's default is 128 KiB). Spark reads any length; a longer
# value is quarantined by the cleaning (value_too_long). Beyond this, a quote is almost surely never closed.
MAX_FIELD_CHARS = 64 * 1024 * 1024


@dataclass(frozen=True)
class CsvFacts:
    sha256: str
    bytes: int
    header: tuple[str, ...]
    rows: int
    utf8: bool = False  # every byte is valid UTF-8 (so a U+FFFD in it is a character, not a decoding error)


def read_header(path: Path, *, where: str | None = None) -> tuple[str, ...]:
    """The header fields, with a UTF-8 BOM removed; InputError if the file is empty or the header is wrong."""
    where = where or str(path)
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    refuse_wide_encoding(head, where)
    first = first_line(head)
    if first.startswith(_BOM):
        first = first[len(_BOM) :]
    if not first.strip():
        raise InputError("the CSV is empty", where, "export the data again, header included")
    # Latin-1 decodes any byte, and the header is ASCII in every encoding we accept.
    try:
        header = tuple(next(csv.reader([first.decode("latin-1")])))
    except csv.Error as exc:
        raise InputError("the CSV header cannot be read", where, f"{exc}; export the data again") from None
    if tuple(h.strip() for h in header) != RAW_COLUMNS:
        raise InputError(
            "wrong CSV header",
            where,
            f"expected {','.join(RAW_COLUMNS)} but found {','.join(header)[:200]!r}",
        )
    return RAW_COLUMNS


def inspect_csv(path: Path, *, rows: int | None = None, where: str | None = None) -> CsvFacts:
    """Checksum, size and UTF-8 validity in one pass; the data row count in a second unless the producer
    already knows it.

    Rows are counted as CSV records (a quoted field may hold a newline), not lines.
    """
    where = where or str(path)
    header = read_header(path, where=where)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    if rows is None:
        rows = count_records(path, where=where)
    if rows == 0:
        raise InputError("the CSV has a header but no data rows", where, "check the export")
    return CsvFacts(sha256=digest.hexdigest(), bytes=size, header=header, rows=rows, utf8=utf8)


def count_records(path: Path, *, where: str | None = None) -> int:
    """Data records after the header, blank lines not counted. Latin-1 keeps the record structure of UTF-8 input
    intact."""
    where = where or str(path)
    records = 0
    with open(path, encoding="latin-1", newline="") as handle, _field_limit(MAX_FIELD_CHARS):
        reader = csv.reader(handle)
        try:
            next(reader, None)
            for record in reader:
                # A blank line is no record: Spark's CSV reader skips it, so counting it would fail the transform's
                # row reconciliation on a harmless trailing newline.
                if record:
                    records += 1
        except csv.Error as exc:
            line = f"record {records + 1}, line {reader.line_num}"
            if "field larger than field limit" in str(exc):
                raise InputError(
                    f"a field longer than {MAX_FIELD_CHARS:,} characters",
                    f"{where}, {line}",
                    'a quote (") is probably never closed there: fix the quoting and export again',
                ) from None
            raise InputError(
                f"the CSV cannot be read: {exc}", f"{where}, {line}", "fix the quoting and export again"
            ) from None
    return records


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    """The csv module's field size limit (process-wide) raised for the block, then put back."""
    before = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(before)
