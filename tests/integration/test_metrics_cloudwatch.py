"""Metrics against moto's server over real HTTP: the calls the code makes, and the alarms that watch them."""

import datetime as dt

import boto3
import pytest

from retail_core import metrics
from retail_core.config import Settings
from tests.fakes import cfn_template
from tests.fakes.moto_s3 import fake_aws_env, moto_with_bucket, s3_client

pytestmark = pytest.mark.integration

BUCKET = "retail-metrics-test"
DAY = dt.date(2024, 3, 1)

# What each stage reports when it ends (the lead's stages call emit with these; the state machine's
# RecordRunMetrics step sends the pipeline's success itself).
STAGE_FIGURES = {
    "ingest": {"rows_in": 541_909, "duration_seconds": 12.5, "success": 1},
    "transform": {
        "rows_in": 541_909,
        "rows_clean": 524_000,
        "rows_quarantined": 17_909,
        "quarantine_ratio": 17_909 / 541_909,
        "duration_seconds": 95,
        "success": 1,
    },
    "build": {
        "gold_rows_customers": 4_372,
        "gold_rows_products": 3_958,
        "gold_rows_sales_transactions": 524_000,
        "dbt_test_failures": 0,
        "duration_seconds": 61,
        "success": 1,
    },
    "pipeline": {"success": 1, "duration_seconds": 170},
}


@pytest.fixture(scope="module")
def endpoint():
    with moto_with_bucket(BUCKET) as url:
        yield url


@pytest.fixture
def aws(endpoint, monkeypatch):
    fake_aws_env(monkeypatch)
    monkeypatch.delenv("RETAIL_METRICS", raising=False)
    return endpoint


def _cloudwatch(endpoint):
    return boto3.client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1")


def _emitted(endpoint) -> set[tuple[str, frozenset]]:
    listed = _cloudwatch(endpoint).get_paginator("list_metrics").paginate(Namespace=metrics.NAMESPACE)
    return {
        (m["MetricName"], frozenset((d["Name"], d["Value"]) for d in m["Dimensions"]))
        for page in listed
        for m in page["Metrics"]
    }


def test_an_s3_lake_puts_each_figure_to_cloudwatch_and_one_run_log_object(aws, tmp_path):
    settings = Settings(lake=f"s3://{BUCKET}/calls", aws_endpoint_url=aws)
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    figures = STAGE_FIGURES["transform"]
    metrics.emit(settings, "transform", figures, run_id="exec-1", ingest_date=DAY, now=at)

    dims = [{"Name": "Dataset", "Value": "online_retail"}, {"Name": "Stage", "Value": "transform"}]
    cloudwatch = _cloudwatch(aws)
    for name, value in figures.items():
        stats = cloudwatch.get_metric_statistics(
            Namespace="OnlineRetailPipeline",
            MetricName=name,
            Dimensions=dims,
            StartTime=at - dt.timedelta(minutes=5),
            EndTime=at + dt.timedelta(minutes=5),
            Period=60,
            Statistics=["Maximum"],
        )
        [point] = stats["Datapoints"]
        assert point["Maximum"] == pytest.approx(value), name
        assert point["Unit"] == metrics.FIGURES[name]

    s3 = s3_client(aws)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="calls/runs/")["Contents"]]
    assert keys == [f"calls/runs/online_retail/run_log/{at:%Y%m%dT%H%M%S}000Z_exec-1_transform.json"]
    [run] = metrics.read_runs(settings)
    assert run["run_id"] == "exec-1" and run["rows_quarantined"] == 17_909


def test_a_stage_on_an_s3_lake_survives_cloudwatch_being_down(aws, caplog):
    from botocore.config import Config

    settings = Settings(lake=f"s3://{BUCKET}/down", aws_endpoint_url=aws)
    # Nothing listens on the discard port of the loopback: the call fails at once.
    unreachable = boto3.client(
        "cloudwatch",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    metrics.emit(
        settings, "pipeline", {"success": 1}, run_id="exec-2", ingest_date=DAY, cloudwatch=unreachable
    )
    assert "CloudWatch did not take the pipeline figures" in caplog.text
    assert [r["run_id"] for r in metrics.read_runs(settings)] == ["exec-2"]


def test_every_alarm_watches_a_metric_name_and_dimensions_the_code_emits(aws):
    settings = Settings(lake=f"s3://{BUCKET}/alarms", aws_endpoint_url=aws)
    for stage, figures in STAGE_FIGURES.items():
        metrics.emit(settings, stage, figures, run_id="exec-3", ingest_date=DAY)
    emitted = _emitted(aws)
    assert ("quarantine_ratio", frozenset({("Dataset", "online_retail"), ("Stage", "transform")})) in emitted

    alarms = cfn_template.resources("AWS::CloudWatch::Alarm")
    template = cfn_template.load()
    ours = 0
    for name, alarm in alarms.items():
        watched = cfn_template.alarm_metrics(alarm)
        assert watched, f"{name} watches no metric"
        for metric in watched:
            if metric["Namespace"] != metrics.NAMESPACE:
                # An AWS metric: its dimension must name a resource of this stack.
                [dim] = metric["Dimensions"]
                kind, target = dim["Value"]
                assert kind == "Ref" and target in template["Resources"], (name, dim)
                continue
            ours += 1
            key = (metric["MetricName"], frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"]))
            assert key in emitted, f"{name} watches {key}, which the code never emits"
            # And CloudWatch itself finds it with the alarm's own query.
            found = _cloudwatch(aws).list_metrics(
                Namespace=metric["Namespace"],
                MetricName=metric["MetricName"],
                Dimensions=metric["Dimensions"],
            )["Metrics"]
            assert any(len(m["Dimensions"]) == len(metric["Dimensions"]) for m in found), name
    assert ours == 2  # quarantine ratio and no successful run


def test_the_alarms_are_the_ones_the_runbook_lists():
    alarms = cfn_template.resources("AWS::CloudWatch::Alarm")
    by_metric = {
        m["MetricName"]: (name, a) for name, a in alarms.items() for m in cfn_template.alarm_metrics(a)
    }
    failed = by_metric["ExecutionsFailed"][1]
    assert (failed["Threshold"], failed["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert by_metric["ExecutionTime"][1]["Threshold"] == {"Ref": "ExecutionTimeAlarmMinutes"}
    glue_rule = by_metric["TriggeredRules"][1]["Dimensions"][0]["Value"]
    rule = cfn_template.load()["Resources"][glue_rule["Ref"]]["Properties"]["EventPattern"]
    assert rule["detail"]["jobName"] == [{"Ref": "GlueJob"}] and "FAILED" in rule["detail"]["state"]
    ratio = by_metric["quarantine_ratio"][1]
    assert ratio["ComparisonOperator"] == "GreaterThanThreshold"
    success = by_metric["success"][1]
    # No successful run in 26 hours: every one of 26 hourly periods below one success, silence included.
    assert success["Period"] * success["EvaluationPeriods"] == 26 * 3600
    assert success["DatapointsToAlarm"] == success["EvaluationPeriods"]
    assert (success["ComparisonOperator"], success["Threshold"]) == ("LessThanThreshold", 1)
    assert success["TreatMissingData"] == "breaching"
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}], name


def test_a_new_moto_server_starts_without_what_an_earlier_one_in_this_process_held(monkeypatch):
    """moto keeps its state per process, so the fake resets it at each start: the exact datapoint counts above hold
    whatever file ran before this one in the same pytest worker."""
    fake_aws_env(monkeypatch)
    with moto_with_bucket("retail-earlier") as earlier:
        _cloudwatch(earlier).put_metric_data(
            Namespace=metrics.NAMESPACE, MetricData=[{"MetricName": "success", "Value": 1}]
        )
        assert _emitted(earlier)
    with moto_with_bucket("retail-later") as later:
        assert _emitted(later) == set()
        assert [b["Name"] for b in s3_client(later).list_buckets()["Buckets"]] == ["retail-later"]
