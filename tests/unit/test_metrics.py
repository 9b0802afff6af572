"""retail_core.metrics on a local lake, and where it sends figures; CloudWatch itself is in
tests/integration/test_metrics_cloudwatch.py (moto's server)."""

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError

from retail_core import metrics
from retail_core.config import Settings
from retail_core.errors import InputError

DAY = dt.date(2024, 3, 1)
T0 = dt.datetime(2024, 3, 1, 6, 0, tzinfo=dt.UTC)


class RecordingCloudWatch:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail = fail

    def put_metric_data(self, **kwargs):
        self.calls.append(kwargs)
        if self.fail:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "PutMetricData")
        return {}


def _settings(tmp_path) -> Settings:
    return Settings(lake=str(tmp_path / "lake"))


def _log_lines(tmp_path) -> list[dict]:
    path = tmp_path / "lake" / metrics.RUN_LOG_KEY
    return [json.loads(line) for line in path.read_text().splitlines()]


def _emit(settings, stage, figures, run_id="run-1", at=T0, **kwargs):
    metrics.emit(settings, stage, figures, run_id=run_id, ingest_date=DAY, now=at, env={}, **kwargs)


def test_each_emit_appends_one_json_line_to_the_local_run_log(tmp_path):
    settings = _settings(tmp_path)
    _emit(settings, "ingest", {"rows_in": 10, "duration_seconds": 1.5})
    _emit(
        settings,
        "transform",
        {"rows_in": 10, "rows_clean": 9, "rows_quarantined": 1, "quarantine_ratio": 0.1},
    )
    lines = _log_lines(tmp_path)
    assert [line["stage"] for line in lines] == ["ingest", "transform"]
    assert lines[0] == {
        "at": "2024-03-01T06:00:00.000Z",
        "run_id": "run-1",
        "ingest_date": "2024-03-01",
        "stage": "ingest",
        "figures": {"rows_in": 10.0, "duration_seconds": 1.5},
    }


def test_a_local_lake_sends_nothing_to_cloudwatch_unless_asked(tmp_path):
    settings = _settings(tmp_path)
    client = RecordingCloudWatch()
    _emit(settings, "build", {"dbt_test_failures": 0}, cloudwatch=client)
    assert client.calls == []
    metrics.emit(
        settings,
        "build",
        {"dbt_test_failures": 2, "gold_rows_customers": 5},
        run_id="run-1",
        ingest_date=DAY,
        now=T0,
        env={"RETAIL_METRICS": "cloudwatch"},
        cloudwatch=client,
    )
    [call] = client.calls
    assert call["Namespace"] == "OnlineRetailPipeline"
    assert [(d["MetricName"], d["Value"], d["Unit"]) for d in call["MetricData"]] == [
        ("dbt_test_failures", 2.0, "Count"),
        ("gold_rows_customers", 5.0, "Count"),
    ]
    for datum in call["MetricData"]:
        assert datum["Dimensions"] == [
            {"Name": "Dataset", "Value": "online_retail"},
            {"Name": "Stage", "Value": "build"},
        ]
        assert datum["Timestamp"] == T0


def test_an_s3_lake_sends_to_cloudwatch_by_default_unless_told_lake_only():
    s3 = Settings(lake="s3://bucket/prefix")
    assert metrics._sink(s3, {}) == "cloudwatch"
    assert metrics._sink(s3, {"RETAIL_METRICS": "lake"}) == "lake"
    with pytest.raises(InputError, match="RETAIL_METRICS"):
        metrics._sink(s3, {"RETAIL_METRICS": "statsd"})


def test_cloudwatch_refusing_the_figures_is_a_warning_not_a_failed_stage(tmp_path, caplog):
    client = RecordingCloudWatch(fail=True)
    metrics.emit(
        _settings(tmp_path),
        "pipeline",
        {"success": 1},
        run_id="run-1",
        ingest_date=DAY,
        env={"RETAIL_METRICS": "cloudwatch"},
        cloudwatch=client,
    )
    assert len(client.calls) == 1
    assert "CloudWatch did not take the pipeline figures" in caplog.text
    assert _log_lines(tmp_path)[0]["figures"] == {"success": 1.0}  # the run log still has them


@pytest.mark.parametrize(
    ("stage", "figures", "message"),
    [
        ("load", {"rows_in": 1}, "unknown metrics stage"),
        ("transform", {"rows_dropped": 1}, "unknown figure"),
        ("transform", {"quarantine_ratio": float("nan")}, "finite"),
    ],
)
def test_unknown_stages_figures_and_non_numbers_are_bugs(tmp_path, stage, figures, message):
    with pytest.raises(ValueError, match=message):
        _emit(_settings(tmp_path), stage, figures)
    assert not (tmp_path / "lake" / metrics.RUN_LOG_KEY).exists()


def test_run_id_must_be_safe_for_an_s3_key(tmp_path):
    with pytest.raises(ValueError, match="run id"):
        _emit(_settings(tmp_path), "ingest", {"rows_in": 1}, run_id="a/b")


def test_run_id_comes_from_the_state_machine_or_is_generated():
    assert metrics.run_id_from_env({"RETAIL_RUN_ID": "exec-42"}) == "exec-42"
    generated = metrics.run_id_from_env({})
    assert metrics._RUN_ID_RE.fullmatch(generated)
    assert generated != metrics.run_id_from_env({})


@pytest.mark.parametrize("bad", ["a/b", "exec\n42", "x" * 129, "run id", "r\x00"])
def test_a_bad_run_id_from_the_environment_is_refused_before_any_work(bad):
    with pytest.raises(InputError, match="RETAIL_RUN_ID"):
        metrics.check_env({"RETAIL_RUN_ID": bad})
    with pytest.raises(InputError, match="RETAIL_RUN_ID"):
        metrics.run_id_from_env({"RETAIL_RUN_ID": bad})


def test_a_bad_metrics_sink_is_refused_before_any_work_and_good_settings_pass():
    with pytest.raises(InputError, match="RETAIL_METRICS"):
        metrics.check_env({"RETAIL_METRICS": "statsd"})
    metrics.check_env({"RETAIL_RUN_ID": "exec-42:retry.1", "RETAIL_METRICS": "Lake"})
    metrics.check_env({})


def test_read_runs_merges_stages_into_runs_oldest_first_with_their_status(tmp_path):
    settings = _settings(tmp_path)
    minute = dt.timedelta(minutes=1)
    # run-a: all stages, succeeded. run-b: the build failed a test. run-c: still at the transform.
    _emit(settings, "ingest", {"rows_in": 100, "duration_seconds": 2}, "run-a", T0)
    _emit(
        settings,
        "transform",
        {
            "rows_in": 100,
            "rows_clean": 96,
            "rows_quarantined": 4,
            "quarantine_ratio": 0.04,
            "duration_seconds": 30,
        },
        "run-a",
        T0 + minute,
    )
    _emit(
        settings,
        "build",
        {
            "gold_rows_customers": 7,
            "gold_rows_products": 8,
            "gold_rows_sales_transactions": 96,
            "dbt_test_failures": 0,
        },
        "run-a",
        T0 + 2 * minute,
    )
    _emit(settings, "pipeline", {"success": 1}, "run-a", T0 + 3 * minute)
    _emit(settings, "transform", {"rows_in": 50, "rows_quarantined": 5}, "run-b", T0 + 10 * minute)
    _emit(settings, "build", {"dbt_test_failures": 2, "success": 0}, "run-b", T0 + 11 * minute)
    _emit(settings, "transform", {"rows_in": 70, "duration_seconds": 5}, "run-c", T0 + 20 * minute)

    runs = metrics.read_runs(settings, limit=10)
    assert [r["run_id"] for r in runs] == ["run-a", "run-b", "run-c"]
    a, b, c = runs
    assert a["status"] == "succeeded"
    assert (a["rows_in"], a["rows_clean"], a["rows_quarantined"], a["quarantine_ratio"]) == (100, 96, 4, 0.04)
    assert a["gold_rows"] == {"customers": 7, "products": 8, "sales_transactions": 96}
    assert a["duration_seconds"] == 32  # the stages' durations, as the pipeline reported none
    assert a["started_at"] == "2024-03-01T06:00:00.000Z" and a["finished_at"] == "2024-03-01T06:03:00.000Z"
    assert b["status"] == "failed" and b["dbt_test_failures"] == 2
    assert b["quarantine_ratio"] == pytest.approx(0.1)  # computed when the stage did not report it
    assert c["status"] == "incomplete" and c["gold_rows"]["customers"] is None

    assert not a["noop"] and not b["noop"] and not c["noop"]

    assert [r["run_id"] for r in metrics.read_runs(settings, limit=2)] == ["run-b", "run-c"]
    assert metrics.read_runs(settings, limit=0) == []


def test_a_run_whose_stages_all_found_nothing_new_is_a_no_op(tmp_path):
    settings = _settings(tmp_path)
    second = dt.timedelta(seconds=1)
    for n, (stage, figures) in enumerate(
        [
            ("ingest", {"rows_in": 100, "noop": 1, "success": 1}),
            ("transform", {"noop": 1, "success": 1}),
            ("build", {"noop": 1, "batches_loaded": 0, "success": 1}),
            ("pipeline", {"success": 1}),
        ]
    ):
        _emit(settings, stage, figures, "run-quiet", T0 + n * second)
    _emit(settings, "ingest", {"rows_in": 100, "noop": 0, "success": 1}, "run-busy", T0 + 9 * second)
    _emit(settings, "build", {"noop": 1, "success": 1}, "run-busy", T0 + 10 * second)
    _emit(settings, "pipeline", {"success": 1}, "run-busy", T0 + 11 * second)
    quiet, busy = metrics.read_runs(settings)
    assert quiet["status"] == "succeeded" and quiet["noop"] is True
    assert busy["status"] == "succeeded" and busy["noop"] is False


def test_read_runs_skips_lines_it_cannot_read(tmp_path, caplog):
    settings = _settings(tmp_path)
    _emit(settings, "pipeline", {"success": 1}, "run-a")
    with (tmp_path / "lake" / metrics.RUN_LOG_KEY).open("a") as handle:
        handle.write('{"truncated": \n\n{"at": "x"}\n')
    with (tmp_path / "lake" / metrics.RUN_LOG_KEY).open("ab") as raw:
        raw.write(b'{"at": "\xff\xfe not UTF-8"}\n')  # a damaged byte spoils its own line, not the log
    _emit(settings, "pipeline", {"success": 1}, "run-b", T0 + dt.timedelta(hours=1))
    assert [r["run_id"] for r in metrics.read_runs(settings)] == ["run-a", "run-b"]
    assert caplog.text.count("skipping an unreadable run log entry") == 3


def test_no_run_log_means_no_runs(tmp_path):
    assert metrics.read_runs(_settings(tmp_path)) == []
