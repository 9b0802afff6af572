import datetime as dt
import os

import pytest

from retail_core import layout
from retail_core.errors import InputError, UpstreamError
from retail_core.lake import LocalLake


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


def test_write_bytes_lands_whole_file_and_no_temp_files(lake):
    lake.write_bytes("a/b/c.txt", b"hello")
    assert lake.read_bytes("a/b/c.txt") == b"hello"
    assert os.listdir(lake.path("a/b")) == ["c.txt"]


def test_failed_writer_block_lands_nothing_and_keeps_the_old_file(lake):
    lake.write_bytes("k.csv", b"old")
    with pytest.raises(RuntimeError), lake.writer("k.csv") as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("killed")
    assert lake.read_bytes("k.csv") == b"old"
    assert os.listdir(lake.path("")) == ["k.csv"]


def test_put_file_rejects_a_checksum_mismatch_and_leaves_nothing(lake, tmp_path):
    src = tmp_path / "src.csv"
    src.write_bytes(b"abc")
    with pytest.raises(UpstreamError, match="checksum mismatch"):
        lake.put_file("x/src.csv", src, sha256_hex="0" * 64)
    assert not lake.exists("x/src.csv")
    assert lake.list_keys("x") == []


def test_list_keys_hides_temp_files_and_sweep_removes_them(lake):
    lake.write_bytes("z/one.txt", b"1")
    (lake.path("z") / ".tmp-dead-two.txt").write_bytes(b"partial")
    assert lake.list_keys("z") == ["z/one.txt"]
    assert lake.sweep_temp_files("z") == 1
    assert sorted(os.listdir(lake.path("z"))) == ["one.txt"]


def test_partitions_lists_only_direct_ingest_date_folders(lake):
    day1, day2 = dt.date(2024, 1, 2), dt.date(2024, 1, 1)
    lake.write_bytes(layout.raw_key(day1), b"x")
    lake.write_bytes(layout.raw_key(day2), b"x")
    lake.write_bytes("raw-data/online_retail/_staging/ingest_date=2030-01-01/f", b"x")
    assert lake.partitions(layout.RAW_ZONE) == [day2, day1]


def test_reading_a_missing_key_is_a_one_line_input_error(lake):
    with pytest.raises(InputError) as info:
        lake.read_bytes("nope.json")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("damage", [b'{"format": "retail-partition/1", "fi', b"\xff\xfe{}"])
def test_a_damaged_json_file_is_a_one_line_error_naming_it(tmp_path, damage):
    """A manifest or run report cut short (or overwritten) outside the pipeline: InputError, not a traceback."""
    lake = LocalLake(tmp_path)
    lake.write_bytes("processed-data/x/_manifest.json", damage)
    with pytest.raises(InputError) as err:
        lake.read_partition("processed-data/x")
    line = err.value.one_line()
    assert line.startswith("a lake file is not valid JSON") and "processed-data/x/_manifest.json" in line
