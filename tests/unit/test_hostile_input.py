"""Hostile raw CSVs at the ingest's inspection and the transform's header sniffing: each is read as the data it
is or refused with a one-line InputError, never a csv-module traceback (issue 13, item 3)."""

from __future__ import annotations

import codecs
import datetime as dt
from pathlib import Path

import pytest

from glue import io as tio
from glue import options as options_module
from glue.options import TransformOptions
from ingestion import validate
from retail_core import dialect
from retail_core.errors import InputError

HEADER = ",".join(dialect.RAW_COLUMNS)
ROW = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom"
FFFD_ROW = ROW.replace("WHITE", "CAFÉ \ufffd")  # a literal U+FFFD beside an accent


def _csv(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    return path


def _one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    line = exc.value.one_line()
    assert "\n" not in line and "\x00" not in line
    return line


@pytest.mark.parametrize(
    ("name", "end"), [("cr_only", "\r"), ("crlf", "\r\n"), ("lf", "\n"), ("mixed", None)]
)
def test_every_line_ending_is_read_as_a_line_end(tmp_path, name, end):
    lines = [HEADER, ROW, ROW.replace("85123A", "71053"), ROW.replace("85123A", "22633")]
    text = (
        "\r\n".join(lines[:2]) + "\r" + lines[2] + "\n" + lines[3] + "\r\n"
        if end is None
        else end.join(lines)
    )
    facts = validate.inspect_csv(_csv(tmp_path, text.encode()))
    assert (facts.header, facts.rows) == (dialect.RAW_COLUMNS, 3)


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_blank_lines_are_not_records(tmp_path, end):
    """Spark skips them, so the manifest must too: a trailing newline or two failed the row reconciliation."""
    lines = [HEADER, ROW, "", ROW.replace("85123A", "71053"), "", "", ROW.replace("85123A", "22633"), "", ""]
    facts = validate.inspect_csv(_csv(tmp_path, end.join(lines).encode()))
    assert facts.rows == 3
    spaces = _csv(tmp_path, f"{HEADER}\n{ROW}\n   \n".encode())  # a line of spaces is a (malformed) record
    assert validate.inspect_csv(spaces).rows == 2


def test_the_ingest_records_how_records_lie_on_lines(tmp_path):
    """What tells the transform to read record by record: a quoted line break (here a CRLF inside the quotes,
    which is data, not a terminator), a line of spaces or control characters (Spark's line reader drops it),
    and each terminator's kind, the header's included. A quoted space is an ordinary one-line record."""
    text = (
        f"{HEADER}\r\n{ROW}\r\n"
        '536366,X1,"TWO\r\nLINES",1,2010-12-01 08:26:00,1.0,,France\r\n'
        "   \r\n\t\x01\r\n"
        '" "\r\n'
        f"{ROW}\n"
        "\r\n"  # a blank line: no record, and no terminator counted
        f"{ROW}"  # the last record has none
    )
    facts = validate.inspect_csv(_csv(tmp_path, text.encode()))
    assert facts.rows == 7
    assert facts.shape == validate.RecordShape(
        rows=7, multiline=1, blank_like=2, line_ends={"crlf": 6, "lf": 1}
    )


def test_a_producer_that_knows_its_rows_leaves_the_shape_unknown(tmp_path):
    facts = validate.inspect_csv(_csv(tmp_path, f"{HEADER}\n{ROW}\n".encode()), rows=1)
    assert (facts.rows, facts.shape) == (1, None)


def test_a_field_over_the_csv_modules_128k_limit_is_counted(tmp_path):
    long_row = f'536366,X1,"{"a" * 140_000}",1,2010-12-01 08:26:00,1.0,,France'
    facts = validate.inspect_csv(_csv(tmp_path, f"{HEADER}\n{ROW}\n{long_row}\n".encode()))
    assert facts.rows == 2


def test_a_field_over_the_limit_is_a_one_line_error_naming_the_record(tmp_path, monkeypatch):
    monkeypatch.setattr(validate, "MAX_FIELD_CHARS", 1000)
    path = _csv(tmp_path, f'{HEADER}\n{ROW}\n536366,X1,"never closed,{"a" * 2000}\n{ROW}\n'.encode())
    with pytest.raises(InputError) as exc:
        validate.inspect_csv(path)
    line = _one_line(exc)
    assert "a field longer than 1,000 characters" in line
    assert "record 2" in line and "never closed" in line


def test_the_field_limit_is_put_back_after_counting(tmp_path):
    import csv

    before = csv.field_size_limit()
    validate.count_records(_csv(tmp_path, f"{HEADER}\n{ROW}\n".encode()))
    assert csv.field_size_limit() == before


def test_an_unterminated_quote_at_the_end_is_counted_as_a_record(tmp_path):
    path = _csv(
        tmp_path, f'{HEADER}\n{ROW}\n536367,X2,"never closed,1,2010-12-01 08:26:00,1.0,,France\n'.encode()
    )
    assert validate.inspect_csv(path).rows == 2  # the transform quarantines it as malformed_row


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-32", "UTF-32")],
)
def test_utf16_and_utf32_are_refused_with_the_command_that_converts_them(tmp_path, encoding, name):
    data = f"{HEADER}\n{ROW}\n".encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    with pytest.raises(InputError) as exc:
        validate.inspect_csv(_csv(tmp_path, data))
    line = _one_line(exc)
    assert f"the CSV is {name}" in line and f"iconv -f {name} -t UTF-8" in line
    with pytest.raises(InputError, match=f"the CSV is {name}"):
        tio.check_header(data, tio.Encoding("utf-8", "detected"), where="raw.csv")


def test_nul_bytes_are_read_as_data(tmp_path):
    facts = validate.inspect_csv(_csv(tmp_path, f"{HEADER}\n{ROW}\n1,X,NUL\x00HERE,1,x,1,,UK\n".encode()))
    assert facts.rows == 2  # the cleaning turns NUL into a space (dialect.FORBIDDEN_CHARS)


def test_a_wrong_header_holding_control_bytes_is_still_one_printable_line(tmp_path):
    with pytest.raises(InputError) as exc:
        validate.inspect_csv(_csv(tmp_path, b"a\x00,b\x01,c\n1,2,3\n"))
    assert "wrong CSV header" in _one_line(exc)


def test_a_literal_replacement_character_is_valid_utf8_and_latin1_is_not(tmp_path):
    text = f"{HEADER}\n{FFFD_ROW}\n"
    assert validate.inspect_csv(_csv(tmp_path, text.encode("utf-8"))).utf8 is True
    assert validate.inspect_csv(_csv(tmp_path, text.replace("\ufffd", "").encode("latin-1"))).utf8 is False


def test_a_file_the_ingest_found_valid_utf8_stays_utf8_whatever_it_holds():
    head = f"{HEADER}\n{FFFD_ROW}\n".encode()
    known = tio.choose_encoding("auto", head, valid_utf8=True)
    assert (known.name, known.valid_utf8) == ("utf-8", True)
    # The head alone, when it is the whole file and decodes strictly, is as good as the ingest's check.
    assert tio.choose_encoding("auto", head, whole_file=True).valid_utf8 is True
    assert tio.choose_encoding("auto", head).valid_utf8 is False  # more bytes follow: not known yet


def test_the_transform_reads_a_cr_only_header():
    names = tio.check_header(
        f"{HEADER}\r{ROW}\r".encode(), tio.Encoding("utf-8", "detected"), where="raw.csv"
    )
    assert names == dialect.RAW_COLUMNS


def test_the_invoice_date_window_defaults_to_2000_until_tomorrow_and_takes_job_arguments():
    now = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    assert TransformOptions().date_window(now) == (dt.datetime(2000, 1, 1), dt.datetime(2026, 3, 2, 12, 30))
    options = TransformOptions.from_job_args(
        {"earliest_invoice_date": "2010-12-01", "latest_invoice_date": ""}
    )
    assert options.date_window(now) == (dt.datetime(2010, 12, 1), dt.datetime(2026, 3, 2, 12, 30))


@pytest.mark.parametrize(
    ("earliest", "latest", "what"),
    [
        (
            "yesterday",
            "",
            "the earliest invoice date is not a date (--earliest-invoice-date or the job argument "
            "--earliest_invoice_date: 'yesterday')",
        ),
        ("2011-01-01", "2010-01-01", "the invoice date window is empty"),
        ("2010-01-01T00:00:00+01:00", "", "the invoice date window is empty or has a time zone"),
        (
            "0001-01-01",
            "",
            "the earliest invoice date is before 1900-01-01",
        ),  # GX refused it with a traceback
        ("", "0202-12-31", "the latest invoice date is before 1900-01-01 (--latest-invoice-date or the job"),
    ],
)
def test_a_bad_invoice_date_window_is_a_one_line_error_before_any_work(earliest, latest, what):
    with pytest.raises(InputError) as exc:
        TransformOptions(earliest_invoice_date=earliest, latest_invoice_date=latest).check()
    assert _one_line(exc).startswith(what)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            {"output_files": "four"},
            "the job argument --output_files is not a whole number (--output_files 'four'): check the job's "
            "parameters",
        ),
        ({"max_quarantine_ratio": "5%"}, "the job argument --max_quarantine_ratio is not a number"),
        ({"shuffle_partitions": "8.5"}, "the job argument --shuffle_partitions is not a whole number"),
    ],
)
def test_a_glue_job_argument_that_is_not_a_number_is_named(args, line):
    """It said "bad job argument (invalid literal for int() with base 10: 'four')": which argument, it did not."""
    with pytest.raises(InputError) as exc:
        TransformOptions.from_job_args(args)
    assert _one_line(exc).startswith(line)


def test_the_job_arguments_named_in_errors_are_those_the_job_reads():
    read: set[str] = set()

    class Recording(dict):
        def get(self, key, default=None):
            read.add(key)
            return super().get(key, default)

    TransformOptions.from_job_args(Recording())
    assert read == options_module._JOB_ARGS


def test_absent_or_empty_job_arguments_take_the_defaults():
    empty = {"encoding": "", "output_files": "", "max_quarantine_ratio": " ", "shuffle_partitions": ""}
    assert TransformOptions.from_job_args(empty) == TransformOptions.from_job_args({}) == TransformOptions()


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"output_files": 0}, "(--output-files or the job argument --output_files: 0)"),
        (
            {"max_quarantine_ratio": 2.0},
            "(--max-quarantine-ratio or the job argument --max_quarantine_ratio: 2.0)",
        ),
        ({"encoding": "latin-9"}, "(--encoding or the job argument --encoding: latin-9)"),
        ({"driver_memory": "lots"}, "(--driver-memory lots)"),  # local only: Glue sizes it by worker type
    ],
)
def test_a_bad_option_names_its_flag_and_the_glue_job_argument_where_glue_takes_it(options, where):
    """The same check runs for the CLI (--output-files) and on Glue (--output_files): both names are given, the
    flag alone for an option Glue does not take."""
    with pytest.raises(InputError) as exc:
        TransformOptions(**options).check()
    assert where in _one_line(exc)


def test_the_transform_and_run_commands_take_the_invoice_date_window_as_flags():
    from retail_pipeline.cli import build_parser
    from retail_pipeline.commands.transform import options_from_args

    for command in ("transform", "run"):
        args = build_parser().parse_args(
            [command, "--earliest-invoice-date", "2010-12-01", "--latest-invoice-date", "2011-12-10"]
        )
        options = options_from_args(args)
        assert (options.earliest_invoice_date, options.latest_invoice_date) == ("2010-12-01", "2011-12-10")
        earliest, latest = options.date_window(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        assert (earliest.date(), latest.date()) == (dt.date(2010, 12, 1), dt.date(2011, 12, 10))
