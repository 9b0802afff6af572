"""The S3 lake against moto's server mode over real HTTP."""

import base64
import datetime as dt
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from ingestion.ingest import complete_partitions, ingest
from ingestion.sources.file import FileSource
from retail_core import layout
from retail_core.errors import InputError, UpstreamError
from retail_core.lake import S3Lake
from tests.fakes.moto_s3 import as_role, fake_aws_env, moto_with_bucket, s3_client

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


def _refuse_csv_uploads(client) -> None:
    """S3 refuses every upload of a .csv from ``client`` (a bucket policy or a KMS key would), whatever the API."""

    def refuse(params, **_):
        if params.get("Key", "").endswith(".csv"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    for operation in ("PutObject", "CreateMultipartUpload"):
        client.meta.events.register(f"before-parameter-build.s3.{operation}", refuse)


def test_a_refused_upload_is_a_one_line_error_naming_s3s_answer(s3, tmp_path):
    _refuse_csv_uploads(s3)
    lake = _lake(s3, "refused")
    src = tmp_path / "f.csv"
    src.write_bytes(b"payload")
    with pytest.raises(UpstreamError) as refused:
        lake.put_file("a/f.csv", src)
    # boto3's transfer manager wraps the ClientError in an S3UploadFailedError of its own.
    assert refused.value.one_line().startswith("S3 could not upload (AccessDenied)")
    assert not lake.exists("a/f.csv")


def test_a_failed_re_delivery_keeps_the_dates_last_good_landing(s3, tmp_path):
    lake = _lake(s3, "redeliver")
    day = dt.date(2024, 5, 3)
    v1, v2 = tmp_path / "v1.csv", tmp_path / "v2.csv"
    line = b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,{q},2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    v1.write_bytes(HEADER + line.replace(b"{q}", b"6"))
    v2.write_bytes(HEADER + line.replace(b"{q}", b"7"))
    ingest(lake, FileSource(v1), run_id="first", ingest_date=day)
    _refuse_csv_uploads(s3)
    with pytest.raises(UpstreamError):
        ingest(lake, FileSource(v2), run_id="second", ingest_date=day)
    # The upload failed after the old manifest was taken away: it is back, describing the bytes still there.
    assert complete_partitions(lake) == [day]
    manifest = lake.read_json(layout.raw_manifest_key(day))
    assert manifest["run_id"] == "first"
    assert manifest["sha256"] == hashlib.sha256(lake.read_bytes(layout.raw_key(day))).hexdigest()
    assert lake.read_bytes(layout.raw_key(day)) == v1.read_bytes()


# --- exists() and read_bytes() with no more than the pipeline's roles may do -----------------------------------

# A role like the ingest, Glue and build roles: read and list only under raw-data/, its ListBucket allowed only
# with an s3:prefix condition, so S3 answers its HEAD of a missing key with 403, not 404.
RAW_ONLY = [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/raw-data/*"},
    {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{BUCKET}",
        "Condition": {"StringLike": {"s3:prefix": ["raw-data/*"]}},
    },
]


@pytest.fixture
def raw_only(endpoint, s3):
    """The lake at s3://BUCKET/ as RAW_ONLY sees it, a record of its S3 calls, and an unrestricted client."""
    client, record = as_role(endpoint, RAW_ONLY)
    return S3Lake(f"s3://{BUCKET}", client=client), record, s3


def test_the_role_fake_answers_a_missing_key_with_403_as_s3_does(raw_only):
    lake, _, admin = raw_only
    admin.put_object(Bucket=BUCKET, Key="raw-data/fake/present.json", Body=b"{}")
    client = lake._s3
    assert client.head_object(Bucket=BUCKET, Key="raw-data/fake/present.json")["ContentLength"] == 2
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=BUCKET, Key="raw-data/fake/missing.json")
    assert missing.value.response["Error"]["Code"] == "403"
    # The same HEAD by a caller that may list the whole bucket is the 404 exists() has always understood.
    with pytest.raises(ClientError) as unrestricted:
        admin.head_object(Bucket=BUCKET, Key="raw-data/fake/missing.json")
    assert unrestricted.value.response["Error"]["Code"] == "404"
    with pytest.raises(ClientError) as listed:
        client.list_objects_v2(Bucket=BUCKET, Prefix="quality/")
    assert listed.value.response["Error"]["Code"] == "AccessDenied"


def test_exists_under_a_prefix_conditioned_role_tells_missing_from_present_by_one_listing(raw_only):
    lake, record, admin = raw_only
    manifest = "raw-data/online_retail/ingest_date=2024-05-01/_manifest.json"
    assert not lake.exists(manifest)
    # Exactly the calls the docstring names: the HEAD, and on its 403 one listing with the key as prefix.
    assert record.calls == [
        ("HeadObject", {"Bucket": BUCKET, "Key": manifest}, 403),
        ("ListObjectsV2", {"Bucket": BUCKET, "Prefix": manifest, "MaxKeys": 1}, None),
    ]
    # A longer key under the same prefix is not the key.
    admin.put_object(Bucket=BUCKET, Key=manifest + ".tmp", Body=b"{}")
    assert not lake.exists(manifest)
    admin.put_object(Bucket=BUCKET, Key=manifest, Body=b"{}")
    record.calls.clear()
    assert lake.exists(manifest)
    assert record.operations() == [("HeadObject", {"Bucket": BUCKET, "Key": manifest})]


def test_reading_a_missing_key_under_a_prefix_conditioned_role_is_not_found(raw_only):
    lake, _, _ = raw_only
    with pytest.raises(InputError, match="not found in the lake"):
        lake.read_bytes("raw-data/online_retail/ingest_date=2024-05-02/_manifest.json")


def test_a_key_the_role_may_neither_read_nor_list_is_a_one_line_access_error(raw_only):
    lake, record, _ = raw_only
    for check in (lake.exists, lake.read_bytes):
        with pytest.raises(UpstreamError) as denied:
            check("quality/online_retail/ingest_date=2024-05-01/run_report.json")
        line = str(denied.value)
        assert "\n" not in line and "Traceback" not in line
        assert line.startswith("S3 could neither read nor list (AccessDenied)")
        assert f"s3://{BUCKET}/quality/online_retail/ingest_date=2024-05-01/run_report.json" in line
    assert [status for _, _, status in record.calls] == [403, 403, 403, 403]


# Marker files each component's code asks exists() about, and the template role it runs as. warehouse/load.py also
# asks about quality/.../run_report.json, which BuildTaskRole may at present neither read nor list (issue 12's
# access table is where the roles are checked against everything the code touches).
_DAY = dt.date(2024, 5, 3)
_CHECKED = [
    ("IngestTaskRole", layout.raw_manifest_key(_DAY)),  # ingestion/ingest.py
    ("GlueJobRole", layout.raw_manifest_key(_DAY)),  # glue/job.py
    ("GlueJobRole", layout.raw_unchanged_key(_DAY)),  # glue/job.py
    # Lake.read_partition, from the transform's sweep and promote, for both zones.
    ("GlueJobRole", f"{layout.processed_prefix(_DAY)}/{layout.MANIFEST_NAME}"),
    ("GlueJobRole", f"{layout.quarantine_prefix(_DAY)}/{layout.MANIFEST_NAME}"),
    # warehouse/load.py reads a partition manifest only for a batch whose report succeeded, which the transform
    # wrote after the manifest: the build role may read manifests but not list them (tests/integration/
    # test_access_table.py), so it has no row here.
]


@pytest.mark.parametrize(("role", "key"), _CHECKED, ids=[f"{r}:{k.rsplit('/', 1)[1]}" for r, k in _CHECKED])
def test_exists_answers_for_each_marker_with_only_the_template_roles_permissions(endpoint, s3, role, key):
    from tests.fakes import cfn_template

    bucket = cfn_template.evaluate({"Ref": "LakeBucket"})
    s3.create_bucket(Bucket=bucket)
    client, record = as_role(endpoint, cfn_template.role_statements(role))
    lake = S3Lake(f"s3://{bucket}", client=client)
    s3.delete_object(Bucket=bucket, Key=key)
    assert not lake.exists(key)
    assert [status for _, _, status in record.calls] == [403, None]  # S3's 403, then the allowed listing
    s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    assert lake.exists(key)


def test_the_transforms_first_read_of_the_raw_file_on_s3_answers_in_one_line(endpoint, s3):
    from glue import io as tio

    lake = _lake(s3, "head")
    s3.put_object(Bucket=BUCKET, Key="head/empty.csv", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="head/some.csv", Body=b"abcdef")
    assert tio.read_head(lake, "some.csv", 4, endpoint_url=endpoint) == b"abcd"
    assert tio.read_head(lake, "empty.csv", endpoint_url=endpoint) == b""  # S3 answers 416 to its range
    with pytest.raises(InputError, match="raw file not found"):
        tio.read_head(lake, "missing.csv", endpoint_url=endpoint)
