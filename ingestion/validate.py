"""Facts about a raw CSV, read in streaming passes: checksum, size, encoding, header, data row count and how the
records lie on lines (which decides how the transform must read the file).

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
from dataclasses import dataclass, field
from pathlib import Path

from retail_core.dialect import RAW_COLUMNS, first_line, refuse_wide_encoding
from retail_core.errors import InputError

_CHUNK = 8 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
# The longest field a record may hold (the csv module's default is 128 KiB). Spark reads any length; a longer
# value is quarantined by the cleaning (value_too_long). Beyond this, a quote is almost surely never closed.
MAX_FIELD_CHARS = 64 * 1024 * 1024


# Spark's line-by-line CSV reader drops a line made of these only (Java's String.trim: every char <= U+0020);
# its record-by-record reader keeps it as a malformed row.
_BLANK_LIKE = "".join(map(chr, range(0x21)))


@dataclass(frozen=True)
class RecordShape:
    """The data records as the csv module reads them, and how they lie on the file's lines.

    The transform reads a file line by line (split across cores) unless a record is not one line of its own:
    ``multiline`` records hold a line break in a quoted field, and Spark's line reader splits them into pieces
    that may each look like a row; ``blank_like`` lines (spaces and control characters only) are dropped by
    that reader, while they are records here. Either makes it read record by record, which detects the file's
    line end from its first line, so ``line_ends`` (the header's and every record's terminator, by kind)
    tells it whether it can.
    """

    rows: int
    multiline: int = 0
    blank_like: int = 0
    line_ends: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CsvFacts:
    sha256: str
    bytes: int
    header: tuple[str, ...]
    rows: int
    utf8: bool = False  # every byte is valid UTF-8 (so a U+FFFD in it is a character, not a decoding error)
    # None when the producer knew the row count and the records were not read (its lines are its own).
    shape: RecordShape | None = None


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
    shape = count_records(path, where=where) if rows is None else None
    rows = shape.rows if shape is not None else rows
    if rows == 0:
        raise InputError("the CSV has a header but no data rows", where, "check the export")
    return CsvFacts(sha256=digest.hexdigest(), bytes=size, header=header, rows=rows, utf8=utf8, shape=shape)


def count_records(path: Path, *, where: str | None = None) -> RecordShape:
    """Data records after the header, blank lines not counted, and how they lie on lines (:class:`RecordShape`).
    Latin-1 keeps the record structure of UTF-8 input intact."""
    where = where or str(path)
    records = multiline = blank_like = 0
    crlf = lf = cr = 0
    last = ""  # the physical line the reader took last: a one-line record's raw text, a record's terminator

    with open(path, encoding="latin-1", newline="") as handle, _field_limit(MAX_FIELD_CHARS):

        def lines() -> Iterator[str]:
            nonlocal last
            for last in handle:  # noqa: UP028 (the loop variable is the point: the reader's current line)
                yield last

        reader = csv.reader(lines())
        try:
            before = 0
            for number, record in enumerate(reader):
                now = reader.line_num
                spanned, before = now - before, now
                # A blank line is no record: Spark's CSV reader skips it, so counting it would fail the
                # transform's row reconciliation on a harmless trailing newline.
                if not record:
                    continue
                end = last[-2:]
                if end == "\r\n":
                    crlf += 1
                elif end[-1:] == "\n":
                    lf += 1
                elif end[-1:] == "\r":
                    cr += 1
                if number == 0:  # the header: its line end counts (Spark detects the file's from it)
                    continue
                records += 1
                if spanned > 1:
                    multiline += 1
                elif len(record) == 1 and not last.strip(_BLANK_LIKE):  # the raw line: '" "' is no blank
                    blank_like += 1
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
    ends = {"crlf": crlf, "lf": lf, "cr": cr}
    return RecordShape(records, multiline, blank_like, {k: n for k, n in ends.items() if n})


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    """The csv module's field size limit (process-wide) raised for the block, then put back."""
    before = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(before)
