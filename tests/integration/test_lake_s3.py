"""The S3 lake against moto's server mode over real HTTP."""

import base64
import datetime as dt
import hashlib
import os

import pytest

from ingestion.ingest import complete_partitions, ingest
from ingestion.sources.file import FileSource
from retail_core import layout
from retail_core.errors import UpstreamError
from retail_core.lake import S3Lake
from tests.fakes.moto_s3 import fake_aws_env, moto_with_bucket, s3_client

pytestmark = pytest.mark.integration

BUCKET = "retail-lake-test"
HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


@pytest.fixture(scope="module")
def endpoint():
    with moto_with_bucket(BUCKET) as url:
        yield url


@pytest.fixture
def s3(endpoint, monkeypatch):
    fake_aws_env(monkeypatch)
    return s3_client(endpoint)


def _lake(s3, prefix):
    return S3Lake(f"s3://{BUCKET}/{prefix}", client=s3)


def test_single_part_upload_is_verified_against_the_local_sha256(s3, tmp_path):
    lake = _lake(s3, "single")
    src = tmp_path / "small.bin"
    src.write_bytes(b"x" * 1000)
    lake.put_file("a/small.bin", src, sha256_hex=hashlib.sha256(b"x" * 1000).hexdigest())
    head = s3.head_object(Bucket=BUCKET, Key="single/a/small.bin", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"x" * 1000).digest()).decode()
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"x" * 1000).hexdigest()


def test_multipart_upload_checksum_matches_the_parts_computed_locally(s3, tmp_path, monkeypatch):
    monkeypatch.setattr(S3Lake, "MIN_PART", 5 * 1024 * 1024)
    lake = _lake(s3, "multi")
    data = os.urandom(11 * 1024 * 1024 + 17)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    lake.put_file("big.bin", src)
    head = s3.head_object(Bucket=BUCKET, Key="multi/big.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert s3.get_object(Bucket=BUCKET, Key="multi/big.bin")["Body"].read() == data
    assert lake.read_bytes("big.bin") == data


def test_upload_whose_stored_checksum_differs_is_deleted_and_fails(s3, tmp_path):
    class LyingClient:
        """Passes everything through but reports a different checksum, as a corrupted upload would."""

        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def head_object(self, **kwargs):
            head = self._inner.head_object(**kwargs)
            head["ChecksumSHA256"] = base64.b64encode(b"\0" * 32).decode()
            return head

    lake = S3Lake(f"s3://{BUCKET}/lying", client=LyingClient(s3))
    src = tmp_path / "f.bin"
    src.write_bytes(b"payload")
    with pytest.raises(UpstreamError, match="verification failed"):
        lake.put_file("f.bin", src)
    assert lake.list_keys("") == []


def test_ingest_to_s3_lands_csv_then_manifest_and_is_idempotent(s3, tmp_path):
    lake = _lake(s3, "ingest")
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(
        HEADER
        + b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    )
    day = dt.date(2024, 5, 1)
    first = ingest(lake, FileSource(csv_file), run_id="test-run", ingest_date=day)
    assert first.landed
    assert lake.read_bytes(layout.raw_key(day)) == csv_file.read_bytes()
    manifest = lake.read_json(layout.raw_manifest_key(day))
    assert manifest["sha256"] == hashlib.sha256(csv_file.read_bytes()).hexdigest()
    assert manifest["rows"] == 1
    again = ingest(lake, FileSource(csv_file), run_id="test-run", ingest_date=dt.date(2024, 5, 2))
    assert not again.landed and again.already_at == day
    # Only the first date holds data; the second says it had nothing new (its transform is then a no-op).
    assert complete_partitions(lake) == [day]
    assert not lake.exists(layout.raw_key(dt.date(2024, 5, 2)))
    assert lake.read_json(layout.raw_unchanged_key(dt.date(2024, 5, 2)))["same_as"] == day.isoformat()


def test_promote_on_s3_replaces_the_folder_and_copies_success_last(s3):
    lake = _lake(s3, "promote")
    lake.write_bytes("final/part-0.tsv", b"old")
    lake.write_bytes("final/part-9.tsv", b"old-extra")
    lake.write_bytes("final/_SUCCESS", b"")
    lake.write_bytes("stage/part-0.tsv", b"new")
    lake.write_bytes("stage/_SUCCESS", b"")
    lake.promote("stage", "final")
    assert lake.list_keys("") == ["final/_SUCCESS", "final/part-0.tsv"]
    assert lake.read_bytes("final/part-0.tsv") == b"new"
