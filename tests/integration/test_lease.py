"""One writer per dataset and date (retail_core/lease.py), on a local folder and on S3 through moto's server."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest

from retail_core import layout, lease
from retail_core.lake import LocalLake, S3Lake
from tests.fakes.moto_s3 import moto_with_bucket, s3_client

pytestmark = pytest.mark.integration

BUCKET = "retail-lease-test"
DAY = dt.date(2024, 3, 1)
KEY = layout.lease_key(DAY)


@pytest.fixture(scope="module")
def endpoint():
    with moto_with_bucket(BUCKET) as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path, endpoint):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    return S3Lake(f"s3://{BUCKET}/{tmp_path.name}", client=s3_client(endpoint))


def test_a_second_writer_of_the_date_gets_a_one_line_error_with_exit_code_5(lake):
    with lease.held(lake, DAY, stage="transform", run_id="run-a"):
        with pytest.raises(lease.LeaseHeld) as info, lease.held(lake, DAY, stage="ingest", run_id="run-b"):
            pytest.fail("two writers of one date")
        message = str(info.value)
        assert info.value.exit_code == 5 and "\n" not in message
        assert "held by the transform of run run-a" in message and KEY in message
        # Another date is another lease.
        with lease.held(lake, DAY + dt.timedelta(days=1), stage="ingest", run_id="run-b"):
            pass
    # Released: the next writer takes it, and nothing is left behind once it is done.
    with lease.held(lake, DAY, stage="ingest", run_id="run-b"):
        assert lake.exists(KEY)
    assert not lake.exists(KEY)


def test_the_warehouse_has_one_lease_of_its_own_beside_the_dates(lake):
    with lease.held_warehouse(lake, stage="build", run_id="run-a") as held:
        with (
            pytest.raises(lease.LeaseHeld, match="another writer is working on the warehouse") as info,
            lease.held_warehouse(lake, stage="build", run_id="run-b"),
        ):
            pytest.fail("two builds of one warehouse")
        assert "held by the build of run run-a" in str(info.value)
        assert layout.warehouse_lease_key() in str(info.value)
        with lease.held(lake, DAY, stage="transform", run_id="run-b"):  # a date's lease is another
            held.check()
    assert not lake.exists(layout.warehouse_lease_key())


def test_a_killed_local_holder_never_blocks_the_next_writer(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import datetime, sys, time\n"
            "from retail_core import lease\nfrom retail_core.lake import LocalLake\n"
            f"with lease.held(LocalLake({str(lake.root)!r}), datetime.date(2024, 3, 1), stage='t', run_id='dead'):\n"
            "    print('held', flush=True); time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(lease.LeaseHeld, match="run dead"),
            lease.held(lake, DAY, stage="transform", run_id="next"),
        ):
            pass
        holder.kill()  # SIGKILL: no finally, no release
        holder.wait(30)
        with lease.held(lake, DAY, stage="transform", run_id="next") as taken:
            assert json.loads(lake.read_bytes(KEY))["run_id"] == "next"
            taken.check()
    finally:
        holder.kill()


def _s3(endpoint, tmp_path):
    return S3Lake(f"s3://{BUCKET}/{tmp_path.name}", client=s3_client(endpoint))


def test_an_expired_s3_lease_is_taken_over(endpoint, tmp_path, caplog):
    lake = _s3(endpoint, tmp_path)
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    lake.write_json(KEY, {"stage": "transform", "run_id": "dead", "expires_at": past})
    with lease.held(lake, DAY, stage="transform", run_id="next", ttl_s=60):
        assert json.loads(lake.read_bytes(KEY))["run_id"] == "next"
    assert "took over an expired lease" in caplog.text and "run dead" in caplog.text
    assert not lake.exists(KEY)


def test_a_live_s3_lease_names_its_holder_and_expiry(endpoint, tmp_path):
    lake = _s3(endpoint, tmp_path)
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat(timespec="seconds")
    lake.write_json(KEY, {"stage": "ingest", "run_id": "alive", "host": "h", "pid": 1, "expires_at": future})
    with (
        pytest.raises(lease.LeaseHeld) as info,
        lease.held(lake, DAY, stage="transform", run_id="next", ttl_s=60),
    ):
        pass
    assert f"until {future}" in str(info.value) and "run alive" in str(info.value)
    assert json.loads(lake.read_bytes(KEY))["run_id"] == "alive"  # untouched


def test_the_s3_heartbeat_renews_and_a_lease_taken_over_is_reported_lost(endpoint, tmp_path):
    lake = _s3(endpoint, tmp_path)
    with lease.held(lake, DAY, stage="transform", run_id="slow", ttl_s=3) as held:
        first = json.loads(lake.read_bytes(KEY))["expires_at"]
        deadline = time.monotonic() + 10
        while json.loads(lake.read_bytes(KEY))["expires_at"] == first and time.monotonic() < deadline:
            time.sleep(0.2)
        assert json.loads(lake.read_bytes(KEY))["expires_at"] > first  # renewed
        held.check()
        # Someone else's write (as a take-over after an expiry would be): the next renewal fails on If-Match.
        lake.write_json(KEY, {"stage": "transform", "run_id": "other"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                held.check()
            except lease.LeaseLost as lost:
                assert lost.exit_code == 5 and "nothing more was published" in str(lost)
                break
            time.sleep(0.2)
        else:
            pytest.fail("the lost lease was never noticed")
    # The holder that lost it does not delete the new holder's lease.
    assert json.loads(lake.read_bytes(KEY))["run_id"] == "other"


def test_a_heartbeat_that_cannot_reach_s3_reports_the_lease_lost_once_it_expires(endpoint, tmp_path, caplog):
    from botocore.exceptions import EndpointConnectionError

    lake = _s3(endpoint, tmp_path)
    with lease.held(lake, DAY, stage="ingest", run_id="cut-off", ttl_s=3) as held:
        held.check()

        def unreachable(**_):
            raise EndpointConnectionError(endpoint_url=endpoint)

        lake._s3.put_object = unreachable  # every renewal fails before S3 answers
        time.sleep(3.5)
        # Another writer may have taken the expired lease by now: this one must not publish.
        with pytest.raises(lease.LeaseLost) as lost:
            held.check()
        assert "expiry passed" in str(lost.value)
    assert "could not renew the lease: EndpointConnectionError" in caplog.text


@pytest.mark.parametrize("value", ["0", "abc", "99999999", "1.5"])
def test_a_bad_lease_expiry_is_refused(value):
    with pytest.raises(lease.InputError, match="RETAIL_LEASE_TTL_S"):
        lease.ttl_from_env({lease.ENV_TTL: value})
