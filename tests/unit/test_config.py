"""The lake setting: a local folder or s3://bucket[/prefix]; anything else is refused in one line before any work
(a gs:// lake was written to a local folder named gs:, an empty --lake fell back to data/lake)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_core.config import DEFAULT_DUCKDB_PATH, DEFAULT_LAKE, Settings
from retail_core.errors import InputError
from retail_pipeline import cli


@pytest.mark.parametrize(
    ("given", "lake"),
    [
        ("s3://bucket/prefix/", "s3://bucket/prefix"),
        ("s3a://bucket", "s3://bucket"),
        ("S3://Bucket/Lake", "s3://Bucket/Lake"),  # the scheme is case-insensitive; bucket and keys are not
        ("S3A://bucket/p/", "s3://bucket/p"),
        (" data/other ", "data/other"),
        ("/tmp/a:b//c", "/tmp/a:b//c"),  # a colon in a folder name is still a folder
    ],
)
def test_a_folder_or_an_s3_url_is_a_lake(given, lake):
    assert Settings.from_env({}, lake=given).lake == lake


def test_the_environment_then_the_default():
    assert Settings.from_env({"RETAIL_LAKE": "s3://b/p"}).lake == "s3://b/p"
    assert Settings.from_env({"RETAIL_LAKE": "S3://b/p"}).lake_is_s3
    assert Settings.from_env({}).lake == DEFAULT_LAKE


def test_a_blank_lake_in_the_environment_is_refused_not_taken_for_the_current_folder():
    with pytest.raises(InputError, match="the lake is empty") as blank:
        Settings.from_env({"RETAIL_LAKE": "  "})
    assert "(RETAIL_LAKE=" in blank.value.one_line()
    # Empty, it is unset (as a shell's `RETAIL_LAKE= make run` means): the default.
    assert Settings.from_env({"RETAIL_LAKE": ""}).lake == DEFAULT_LAKE


@pytest.mark.parametrize(
    ("given", "what"),
    [
        ("gs://bucket/lake", "a lake at gs:// is not supported"),
        ("https://example.com/lake", "a lake at https:// is not supported"),
        ("s3://", "the lake URL names no bucket"),
        ("s3:///prefix", "the lake URL names no bucket"),
        ("  ", "the lake is empty"),
    ],
)
def test_a_lake_the_pipeline_cannot_write_is_refused(given, what):
    with pytest.raises(InputError, match=what):
        Settings.from_env({}, lake=given)


def test_the_cli_refuses_it_in_one_line_with_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--lake", "gs://bucket/lake", "report"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("retail-pipeline report: error: a lake at gs:// is not supported")
    assert not any(tmp_path.iterdir())  # no folder named gs: was made


def test_a_lake_that_is_a_file_says_so_instead_of_asking_for_disk_space(tmp_path, capsys):
    lake = tmp_path / "lake"
    lake.write_text("not a folder")
    csv = tmp_path / "export.csv"
    csv.write_text("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n")
    assert cli.main(["--lake", str(lake), "ingest", "--path", str(csv)]) == 4
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        "Not a directory" in line and "a file and a folder are mixed up" in line and "disk space" not in line
    )


def test_a_blank_or_folder_warehouse_file_is_refused_in_one_line(tmp_path):
    for given in ("", "  "):
        with pytest.raises(InputError, match="the warehouse file is empty") as blank:
            Settings.from_env({}, duckdb_path=given)
        assert "(--duckdb-path " in blank.value.one_line()
    with pytest.raises(InputError, match="the warehouse file is empty") as blank:
        Settings.from_env({"RETAIL_DUCKDB_PATH": " "})
    assert "(RETAIL_DUCKDB_PATH=" in blank.value.one_line()
    with pytest.raises(InputError, match="the warehouse file is a folder") as folder:
        Settings.from_env({"RETAIL_DUCKDB_PATH": str(tmp_path)})
    assert str(tmp_path / "warehouse.duckdb") in folder.value.one_line()
    # Empty in the environment, it is unset; given, it is the file.
    assert Settings.from_env({"RETAIL_DUCKDB_PATH": ""}).duckdb_path == Path(DEFAULT_DUCKDB_PATH)
    assert Settings.from_env({}, duckdb_path=f"{tmp_path}/w.duckdb").duckdb_path == tmp_path / "w.duckdb"
