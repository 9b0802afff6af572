"""Publishing a partition (Lake.promote) on both stores: a local folder, and S3 through moto's server over HTTP.

The promise: new files are placed and verified beside the old ones, the partition manifest is the one switch, and
a failure anywhere before it leaves the last good output readable, with nothing the manifest does not name left
behind once the next run has swept.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from retail_core import faults, layout
from retail_core.errors import UpstreamError
from retail_core.lake import LocalLake, S3Lake
from tests.fakes.moto_s3 import moto_with_bucket, s3_client

pytestmark = pytest.mark.integration

BUCKET = "retail-promote-test"
FINAL = "processed-data/online_retail/ingest_date=2024-01-01"


@pytest.fixture(scope="module")
def endpoint():
    with moto_with_bucket(BUCKET) as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path, endpoint):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    # A prefix per test: the bucket is shared by the module.
    return S3Lake(f"s3://{BUCKET}/{tmp_path.name}", client=s3_client(endpoint))


def stage(lake, generation: str, parts: dict[str, bytes]) -> str:
    prefix = f"processed-data/online_retail/_staging/ingest_date=2024-01-01/{generation}"
    for name, data in parts.items():
        lake.write_bytes(f"{prefix}/{name}", data)
    lake.write_bytes(f"{prefix}/{layout.SUCCESS_NAME}", b"")
    return prefix


def published(lake) -> dict[str, bytes]:
    """What a reader reads: the files the manifest names, by name."""
    files = lake.partition_files(FINAL) or []
    return {key.rsplit("/", 1)[-1]: lake.read_bytes(key) for key in files}


def contents(lake) -> list[bytes]:
    return sorted(published(lake).values())


def test_promote_publishes_a_new_generation_and_sweeps_the_old(lake):
    lake.promote(
        stage(lake, "g1", {"part-00000.tsv": b"old0", "part-00001.tsv": b"old1"}), FINAL, generation="g1"
    )
    lake.write_bytes(f"{FINAL}/{layout.SUCCESS_NAME}", b"")  # as the layout before manifests left it
    manifest = lake.promote(
        stage(lake, "g2", {"part-00000.tsv": b"new0"}),
        FINAL,
        generation="g2",
        meta={"run_id": "r2", "rows": 1},
    )
    assert published(lake) == {"part-00000-g2.tsv": b"new0"}
    assert manifest["files"] == [
        {"name": "part-00000-g2.tsv", "bytes": 4, "sha256": hashlib.sha256(b"new0").hexdigest()}
    ]
    assert (manifest["run_id"], manifest["rows"], manifest["generation"]) == ("r2", 1, "g2")
    # Exactly the manifest, its COPY manifest and the named file remain; no staging folder, no old generation.
    assert lake.list_keys("processed-data") == [
        f"{FINAL}/_copy_manifest-g2.json",
        f"{FINAL}/_manifest.json",
        f"{FINAL}/part-00000-g2.tsv",
    ]
    copy = json.loads(lake.read_bytes(f"{FINAL}/_copy_manifest-g2.json"))
    assert copy == {
        "entries": [
            {"url": lake.uri(f"{FINAL}/part-00000-g2.tsv"), "mandatory": True, "meta": {"content_length": 4}}
        ]
    }


def test_promote_refuses_a_staging_folder_without_success(lake):
    lake.promote(stage(lake, "g1", {"part-00000.tsv": b"old"}), FINAL, generation="g1")
    lake.write_bytes("processed-data/online_retail/_staging/x/part-00000.tsv", b"partial")
    with pytest.raises(UpstreamError, match="_SUCCESS"):
        lake.promote("processed-data/online_retail/_staging/x", FINAL, generation="g2")
    assert contents(lake) == [b"old"]


@pytest.mark.parametrize(
    ("point", "hit"),
    [("promote.after_part", 1), ("promote.after_part", 2), ("promote.before_manifest", 1)],
)
def test_an_error_before_the_switch_keeps_the_old_output_and_leaves_nothing(lake, point, hit):
    lake.promote(stage(lake, "g1", {"part-00000.tsv": b"old"}), FINAL, generation="g1")
    before = lake.list_keys(FINAL)
    staged = stage(lake, "g2", {"part-00000.tsv": b"new0", "part-00001.tsv": b"new1"})
    with faults.armed(point, "enospc", hit), pytest.raises(OSError, match="No space left"):
        lake.promote(staged, FINAL, generation="g2")
    assert contents(lake) == [b"old"]
    assert lake.list_keys(FINAL) == before  # the placed files were removed again


@pytest.mark.parametrize("point", ["promote.after_manifest", "promote.after_sweep"])
def test_an_error_after_the_switch_leaves_the_new_output_and_a_sweep_converges(lake, point):
    lake.promote(stage(lake, "g1", {"part-00000.tsv": b"old"}), FINAL, generation="g1")
    staged = stage(lake, "g2", {"part-00000.tsv": b"new"})
    with faults.armed(point, "eio"), pytest.raises(OSError):
        lake.promote(staged, FINAL, generation="g2")
    assert contents(lake) == [b"new"]
    lake.sweep_partition(FINAL)
    assert published(lake) == {"part-00000-g2.tsv": b"new"}
    assert len(lake.list_keys(FINAL)) == 3  # the manifest, the COPY manifest, the one file


def test_a_sweep_removes_files_no_manifest_names_and_keeps_a_folder_without_one(lake):
    lake.write_bytes(f"{FINAL}/part-00000.tsv", b"legacy")
    assert lake.sweep_partition(FINAL) == 0  # nothing newer to keep instead: left alone
    lake.promote(stage(lake, "g1", {"part-00000.tsv": b"one"}), FINAL, generation="g1")
    lake.write_bytes(f"{FINAL}/part-00000-dead.tsv", b"a dead run's")
    assert lake.sweep_partition(FINAL) == 1
    assert published(lake) == {"part-00000-g1.tsv": b"one"}


def test_a_manifest_of_another_format_is_refused_in_one_line(lake):
    lake.write_json(f"{FINAL}/_manifest.json", {"format": 99, "files": []})
    with pytest.raises(UpstreamError) as info:
        lake.partition_files(FINAL)
    assert "\n" not in str(info.value) and "rerun the transform" in str(info.value)


# --- S3 answering with errors, injected through botocore's event hooks on the client ---------------------------


def _fail(client, operation: str, code: str, status: int, *, skip: int = 0) -> None:
    """Make every call of ``operation`` after the first ``skip`` fail as S3 would (``code``, HTTP ``status``)."""
    calls = [0]

    def hook(**_):
        calls[0] += 1
        if calls[0] > skip:
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                operation,
            )

    client.meta.events.register(f"before-call.s3.{operation}", hook)


@pytest.fixture
def s3lake(endpoint, tmp_path):
    client = s3_client(endpoint)
    return S3Lake(f"s3://{BUCKET}/{tmp_path.name}", client=client), client


@pytest.mark.parametrize(
    ("operation", "code", "status"),
    [
        ("CopyObject", "SlowDown", 503),
        ("CopyObject", "AccessDenied", 403),
        ("PutObject", "InternalError", 500),
    ],
)
def test_s3_errors_during_promote_keep_the_last_good_output(s3lake, operation, code, status):
    lake, client = s3lake
    lake.promote(stage(lake, "g1", {"part-00000.tsv": b"old"}), FINAL, generation="g1")
    before = lake.list_keys(FINAL)
    staged = stage(lake, "g2", {"part-00000.tsv": b"new0", "part-00001.tsv": b"new1"})
    # The second copy fails (the first one landed), or the first PUT of a manifest does.
    _fail(client, operation, code, status, skip=1 if operation == "CopyObject" else 0)
    with pytest.raises(UpstreamError) as info:
        lake.promote(staged, FINAL, generation="g2")
    assert code in str(info.value) and "\n" not in str(info.value)
    assert contents(lake) == [b"old"]
    assert lake.list_keys(FINAL) == before


def test_s3_delete_errors_reported_inside_a_200_are_raised(s3lake):
    lake, client = s3lake
    lake.write_bytes("x/a", b"1")

    def partial_failure(http_response, parsed, **_):
        parsed["Errors"] = [{"Key": lake._key("x/a"), "Code": "AccessDenied", "Message": "injected"}]

    client.meta.events.register("after-call.s3.DeleteObjects", partial_failure)
    with pytest.raises(UpstreamError, match="could not delete 1 object"):
        lake.delete_prefix("x")
