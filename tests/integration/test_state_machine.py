"""The state machine in a real ASL interpreter (aws-local-stepfunctions on Node 22), with its tasks run here.

The happy path runs the project's own stages end to end on a small file; the failure paths replace a stage
with a stand-in that fails once (transient: the state's Retry takes it) or for good (exit 3: a failed quality
gate or dbt test, which must end the run at once in the notification)."""

import datetime as dt
import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestration import local_run
from retail_core import metrics
from retail_core.config import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEFINITION = json.loads(local_run.DEFINITION.read_text())
STAGES = ("Ingest", "Transform", "Build")
START = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
PRODUCTS = [
    ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2.55"),
    ("71053", "WHITE METAL LANTERN", "3.39"),
    ("84406B", "CREAM CUPID HEARTS COAT HANGER", "2.75"),
    ("22752", "SET 7 BABUSHKA NESTING BOXES", "7.65"),
    ("21730", "GLASS STAR FROSTED T-LIGHT HOLDER", "4.25"),
]
CUSTOMERS = [
    ("17850.0", "United Kingdom"),
    ("13047.0", "United Kingdom"),
    ("12583.0", "France"),
    ("", "EIRE"),
]


def small_export(path: Path) -> tuple[Path, int]:
    """A small, clean export (40 lines over 10 invoices) plus one cancellation, which the transform quarantines."""
    rows = []
    for invoice in range(10):
        customer, country = CUSTOMERS[invoice % len(CUSTOMERS)]
        when = f"2010-12-{1 + invoice:02d} 08:{10 + invoice:02d}:00"
        for line in range(4):
            code, description, price = PRODUCTS[(invoice + line) % len(PRODUCTS)]
            rows.append(
                f"{536365 + invoice},{code},{description},{line + 1},{when},{price},{customer},{country}\n"
            )
    rows.append("C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom\n")
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path, len(rows)


def stand_in(
    tmp_path: Path, name: str, *, fail_times: int, exit_code: int, result: dict, message: str = ""
) -> str:
    """A command that fails ``fail_times`` times with ``exit_code`` (saying ``message``), then succeeds."""
    counter = tmp_path / f"{name}.count"
    script = tmp_path / f"{name}.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, os, pathlib, sys
            counter = pathlib.Path({str(counter)!r})
            runs = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(runs))
            pathlib.Path({str(tmp_path / f"{name}.input.json")!r}).write_text(os.environ["SFN_TASK_INPUT"])
            if runs <= {fail_times}:
                print({message!r}, file=sys.stderr)
                sys.exit({exit_code})
            print(json.dumps({result!r}))
            """
        )
    )
    return f"{sys.executable} {script}"


def runs_of(tmp_path: Path, name: str) -> int:
    counter = tmp_path / f"{name}.count"
    return int(counter.read_text()) if counter.exists() else 0


RESULTS = {
    "Ingest": {"TaskArn": "arn:ingest"},
    "Transform": {"Id": "jr_1", "ExecutionTime": 1},
    "Build": {"TaskArn": "b"},
}


def passing_stages(tmp_path: Path) -> dict[str, str]:
    return {s: stand_in(tmp_path, s, fail_times=0, exit_code=0, result=RESULTS[s]) for s in STAGES}


def execute(tmp_path: Path, overrides: dict[str, str], execution_input: dict | None = None, **kwargs):
    return local_run.run_execution(
        execution_input if execution_input is not None else {"ingest_date": "2024-05-06"},
        lake=tmp_path / "lake",
        workdir=tmp_path / "sfn",
        overrides=overrides,
        start=START,
        **kwargs,
    )


# --- the definition ---------------------------------------------------------------------------------------------


def test_the_definition_passes_statelint():
    venv = Path(sys.executable).with_name("statelint")
    statelint = str(venv) if venv.exists() else shutil.which("statelint")
    assert statelint, "statelint is not installed: run `make setup`"
    done = subprocess.run([statelint, str(local_run.DEFINITION)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_task_retries_only_transient_errors_with_backoff_and_catches_the_rest():
    tasks = {name: s for name, s in DEFINITION["States"].items() if s["Type"] == "Task"}
    assert set(tasks) == {*STAGES, "RecordRunMetrics", "NotifyFailure"}
    deterministic = {"States.ALL", "States.TaskFailed", "States.Timeout", "States.Runtime"}
    for name, state in tasks.items():
        assert state["Retry"], name
        for retrier in state["Retry"]:
            assert not deterministic & set(retrier["ErrorEquals"]), (name, retrier["ErrorEquals"])
            assert retrier["IntervalSeconds"] >= 5 and retrier["BackoffRate"] > 1, name
            assert 1 <= retrier["MaxAttempts"] <= 5, name
        [catch] = state["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"], name
        handler = DEFINITION["States"][catch["Next"]]
        if name != "NotifyFailure":
            assert catch["ResultPath"] == "$.error"
            assert handler == {
                "Type": "Pass",
                "Result": {"state": name},
                "ResultPath": "$.failed",
                "Next": "CauseGiven",
            }
    # The transient errors are those of each integration.
    errors = {name: {e for r in s["Retry"] for e in r["ErrorEquals"]} for name, s in tasks.items()}
    assert "ECS.AmazonECSException" in errors["Ingest"] and "ECS.AmazonECSException" in errors["Build"]
    # With .sync, a RunTask answered with a Failures list (no Fargate capacity) fails the state as
    # AmazonECS.Unknown (Step Functions' ECS integration guide): transient too.
    assert "AmazonECS.Unknown" in errors["Ingest"] and "AmazonECS.Unknown" in errors["Build"]
    assert "Glue.ConcurrentRunsExceededException" in errors["Transform"]
    # Every failure reaches NotifyFailure with a Cause, given or added.
    check = DEFINITION["States"]["CauseGiven"]
    assert check["Type"] == "Choice" and check["Default"] == "AddMissingCause"
    assert check["Choices"] == [{"Variable": "$.error.Cause", "IsPresent": True, "Next": "NotifyFailure"}]
    assert DEFINITION["States"]["AddMissingCause"]["Next"] == "NotifyFailure"
    assert DEFINITION["States"]["NotifyFailure"]["Next"] == "PipelineFailed"
    assert DEFINITION["States"]["PipelineFailed"]["Type"] == "Fail"


def test_the_success_step_records_what_the_no_successful_run_alarm_watches():
    step = DEFINITION["States"]["RecordRunMetrics"]
    assert step["Resource"] == "arn:aws:states:::aws-sdk:cloudwatch:putMetricData"
    [datum] = step["Parameters"]["MetricData"]
    assert datum["MetricName"] == "success" and "success" in metrics.FIGURES
    subs = local_run.LOCAL_SUBSTITUTIONS
    dims = [
        {"Name": d["Name"], "Value": re.sub(r"\$\{(\w+)\}", lambda m: subs[m[1]], d["Value"])}
        for d in datum["Dimensions"]
    ]
    assert dims == metrics.dimensions("pipeline")
    assert subs["MetricsNamespace"] == metrics.NAMESPACE


# --- executions ---------------------------------------------------------------------------------------------------


def test_happy_path_runs_ingest_transform_and_build_end_to_end_on_a_small_file(tmp_path, capsys):
    """The project's own stages, as the state machine runs them: ingest and dbt through the image's entrypoint
    (as ECS would), the transform as the Glue job's local twin. Needs `retail-pipeline transform` and `build`."""
    csv, rows = small_export(tmp_path / "export.csv")
    execution = execute(
        tmp_path,
        overrides={},
        execution_input={"ingest_date": "2024-05-06", "source": "file"},
        append_args={"Ingest": ["--path", str(csv)]},
        env={
            "RETAIL_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
            "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
        },
    )
    assert execution.status == "SUCCEEDED", f"{execution.error}: {execution.cause}"
    assert execution.entered() == [
        "ApplyDefaults",
        "MergeInput",
        "Ingest",
        "Transform",
        "Build",
        "RecordRunMetrics",
        "Succeeded",
    ]
    assert execution.notifications == []
    lake = tmp_path / "lake"
    assert (lake / "raw-data/online_retail/ingest_date=2024-05-06/_manifest.json").exists()
    assert (lake / "processed-data/online_retail/ingest_date=2024-05-06/_manifest.json").exists()
    artifacts = lake / f"dbt-artifacts/online_retail/run_id={execution.name}"
    assert (artifacts / "run_results.json").exists() and (artifacts / "manifest.json").exists()

    import duckdb

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        sales = con.execute("select count(*) from gold.sales_transactions").fetchone()[0]
        returns = con.execute("select count(*) from gold.sales_returns").fetchone()[0]
    assert (sales, returns) == (rows - 1, 1)  # the cancellation is a return, in gold beside the sales

    [run] = metrics.read_runs(Settings(lake=str(lake)))
    assert run["run_id"] == execution.name and run["status"] == "succeeded"
    assert run["rows_in"] == rows and run["rows_quarantined"] == 0 and run["rows_returns"] == 1
    assert run["quarantine_ratio"] == 0.0  # what the quarantine alarm watches: a return is not a reject

    from retail_pipeline import cli

    assert cli.main(["--lake", str(lake), "report"]) == 0
    assert execution.name[-12:] in capsys.readouterr().out


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("Ingest", "ECS.AmazonECSException"),
        ("Transform", "Glue.ConcurrentRunsExceededException"),
        ("Build", "ECS.AmazonECSException"),
    ],
)
def test_a_transient_failure_is_retried_then_the_run_succeeds(tmp_path, state, error):
    overrides = passing_stages(tmp_path)
    overrides[state] = stand_in(
        tmp_path,
        state,
        fail_times=1,
        exit_code=local_run.TRANSIENT_EXIT,
        result=RESULTS[state],
        message="busy",
    )
    execution = execute(tmp_path, overrides)
    assert execution.status == "SUCCEEDED", execution.cause
    assert runs_of(tmp_path, state) == 2
    [failure] = execution.failures(state)
    assert failure["error"] == error
    [retry] = execution.retries(state)
    assert retry["attempt"] == 1
    assert execution.entered()[-2:] == ["RecordRunMetrics", "Succeeded"]
    assert execution.notifications == []
    [run] = metrics.read_runs(Settings(lake=str(tmp_path / "lake")))
    assert (run["run_id"], run["ingest_date"], run["status"]) == (execution.name, "2024-05-06", "succeeded")


def test_a_transient_failure_that_persists_gives_up_after_the_backoff_and_notifies(tmp_path):
    overrides = passing_stages(tmp_path)
    overrides["Transform"] = stand_in(
        tmp_path,
        "Transform",
        fail_times=99,
        exit_code=local_run.TRANSIENT_EXIT,
        result={},
        message="slots busy",
    )
    execution = execute(tmp_path, overrides)
    [retrier] = [
        r
        for r in DEFINITION["States"]["Transform"]["Retry"]
        if "Glue.ConcurrentRunsExceededException" in r["ErrorEquals"]
    ]
    assert runs_of(tmp_path, "Transform") == retrier["MaxAttempts"] + 1
    assert execution.status == "FAILED"
    assert execution.error == "Glue.ConcurrentRunsExceededException"
    [note] = execution.notifications
    assert note["MessageAttributes"]["failed_state"]["StringValue"] == "Transform"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("Transform", "transform: error: quality gate failed: 12% of rows quarantined, more than 5%"),
        ("Build", "build: error: dbt tests failed: unique_customers_customerid"),
    ],
)
def test_a_permanent_failure_is_not_retried_and_ends_in_the_notification(tmp_path, state, message):
    overrides = passing_stages(tmp_path)
    overrides[state] = stand_in(tmp_path, state, fail_times=99, exit_code=3, result={}, message=message)
    execution = execute(tmp_path, overrides)

    assert runs_of(tmp_path, state) == 1, "a deterministic failure must not be retried"
    assert execution.retries(state) == []
    assert execution.status == "FAILED"
    assert execution.error == "States.TaskFailed"
    cause = json.loads(execution.cause)
    assert (cause["state"], cause["exit_code"]) == (state, 3)
    assert message in cause["stderr"]
    entered = execution.entered()
    assert entered[entered.index(state) :] == [
        state,
        f"{state}Failed",
        "CauseGiven",
        "NotifyFailure",
        "PipelineFailed",
    ]
    assert "RecordRunMetrics" not in entered
    if state == "Transform":
        assert runs_of(tmp_path, "Build") == 0

    [note] = execution.notifications
    assert note["TopicArn"] == local_run.LOCAL_SUBSTITUTIONS["AlertTopicArn"]
    assert note["Subject"] == "Online Retail pipeline failed"
    for part in (
        execution.name,
        f"failed in state {state}",
        "States.TaskFailed",
        message,
        "ingest date 2024-05-06",
    ):
        assert part in note["Message"], part
    assert note["MessageAttributes"]["execution"]["StringValue"] == execution.name
    assert metrics.read_runs(Settings(lake=str(tmp_path / "lake"))) == []  # no success recorded


def definition_whose_catch_drops_the_cause(tmp_path: Path, state: str) -> Path:
    """The definition with one change: ``state``'s Catch passes the caught error on without its Cause.

    On AWS a caught error need not carry a Cause (a task's ``States.Timeout`` has none), but local-sfn always
    fills it with the error's message and run_local.mjs always gives one. So the stand-in for that error is one
    Pass state between ``state``'s Catch and the handler it names, keeping only ``Error``: everything from the
    handler on is the definition as deployed."""
    definition = json.loads(local_run.DEFINITION.read_text())
    [catch] = definition["States"][state]["Catch"]
    handler = catch["Next"]
    definition["States"]["DropCause"] = {
        "Type": "Pass",
        "Parameters": {"Error.$": "$.error.Error"},
        "ResultPath": "$.error",
        "Next": handler,
    }
    catch["Next"] = "DropCause"
    path = tmp_path / "without_cause.asl.json"
    path.write_text(json.dumps(definition, indent=2))
    return path


def test_a_caught_error_without_a_cause_is_still_notified_and_fails_the_run_with_the_tasks_error(tmp_path):
    overrides = passing_stages(tmp_path)
    overrides["Build"] = stand_in(tmp_path, "Build", fail_times=99, exit_code=3, result={}, message="boom")
    execution = execute(
        tmp_path, overrides, definition_path=definition_whose_catch_drops_the_cause(tmp_path, "Build")
    )

    # The task's own error, not a States.Runtime error from a path that does not exist, and the message sent.
    assert (execution.status, execution.error) == ("FAILED", "States.TaskFailed"), execution.cause
    assert execution.cause == "(the error carried no cause)"
    [note] = execution.notifications
    assert note["MessageAttributes"]["failed_state"]["StringValue"] == "Build"
    assert note["MessageAttributes"]["error"]["StringValue"] == "States.TaskFailed"
    assert "Error: States.TaskFailed. Cause: (the error carried no cause)." in note["Message"]
    entered = execution.entered()
    assert entered[entered.index("Build") :] == [
        "Build",
        "DropCause",
        "BuildFailed",
        "CauseGiven",
        "AddMissingCause",
        "NotifyFailure",
        "PipelineFailed",
    ]


def test_the_execution_input_reaches_the_tasks_with_its_defaults(tmp_path):
    overrides = passing_stages(tmp_path)
    first = execute(tmp_path, overrides, execution_input={})
    assert first.status == "SUCCEEDED", first.cause
    ingest = json.loads((tmp_path / "Ingest.input.json").read_text())
    [container] = ingest["Overrides"]["ContainerOverrides"]
    assert container["Command"] == [
        "ingest",
        "--source",
        "kaggle",
        "--ingest-date",
        "2024-05-06",
    ]  # start date
    assert container["Environment"] == [{"Name": "RETAIL_RUN_ID", "Value": first.name}]
    assert ingest["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"] == [
        "subnet-local-a",
        "subnet-local-b",
    ]
    transform = json.loads((tmp_path / "Transform.input.json").read_text())
    assert transform == {
        "JobName": "retail-transform-local",
        "Arguments": {"--ingest_date": "2024-05-06", "--run_id": first.name},
    }
    build = json.loads((tmp_path / "Build.input.json").read_text())["Overrides"]["ContainerOverrides"][0]
    # The build loads whatever is new in the lake (a corrected re-delivery or a backfill too), not one date.
    assert build["Command"] == ["build", "--target", "dev"]
    assert {e["Name"]: e["Value"] for e in build["Environment"]} == {
        "RETAIL_RUN_ID": first.name,
        "RETAIL_DBT_SELECT": "",
        "RETAIL_DBT_FULL_REFRESH": "false",
    }

    given = {"ingest_date": "2024-02-01", "source": "synthetic", "select": "gold", "full_refresh": True}
    second = execute(tmp_path, overrides, execution_input=given)
    assert second.status == "SUCCEEDED", second.cause
    ingest = json.loads((tmp_path / "Ingest.input.json").read_text())["Overrides"]["ContainerOverrides"][0]
    assert ingest["Command"] == ["ingest", "--source", "synthetic", "--ingest-date", "2024-02-01"]
    build = json.loads((tmp_path / "Build.input.json").read_text())["Overrides"]["ContainerOverrides"][0]
    assert {e["Name"]: e["Value"] for e in build["Environment"]}["RETAIL_DBT_SELECT"] == "gold"
    assert {e["Name"]: e["Value"] for e in build["Environment"]}["RETAIL_DBT_FULL_REFRESH"] == "true"


def test_the_command_line_passes_its_warehouse_and_source_to_the_tasks(tmp_path, capsys):
    """`python -m orchestration.local_run` as docs/operations.md shows it: --duckdb-path reaches every task as
    RETAIL_DUCKDB_PATH (a run on another lake must not load into the developer's warehouse), --source reaches the
    Ingest command, and a failed Build exits 1 naming the notification."""
    record = tmp_path / "record.py"
    record.write_text(
        textwrap.dedent(
            """
            import json, os, pathlib, sys
            state = sys.argv[1]
            pathlib.Path(sys.argv[2], state + ".seen.json").write_text(json.dumps({
                "warehouse": os.environ.get("RETAIL_DUCKDB_PATH"),
                "input": json.loads(os.environ["SFN_TASK_INPUT"]),
            }))
            if sys.argv[3] != "0":
                sys.exit(int(sys.argv[3]))
            print(sys.argv[4])
            """
        )
    )

    def recorded(state: str, exit_code: int = 0) -> str:
        result = shlex.quote(json.dumps(RESULTS[state]))
        return f"{state}={sys.executable} {record} {state} {tmp_path} {exit_code} {result}"

    warehouse = tmp_path / "elsewhere" / "warehouse.duckdb"
    argv = [
        "--lake",
        str(tmp_path / "lake"),
        "--duckdb-path",
        str(warehouse),
        "--workdir",
        str(tmp_path / "sfn"),
    ]
    argv += ["--source", "synthetic", "--ingest-date", "2024-05-06"]
    argv += ["--override", recorded("Ingest"), "--override", recorded("Transform")]
    argv += ["--override", recorded("Build", exit_code=3)]
    assert local_run.main(argv) == 1
    out = capsys.readouterr().out
    assert "-> Build ->" in out and '"exit_code":3' in out.replace(" ", "") and "notified:" in out
    seen = {s: json.loads((tmp_path / f"{s}.seen.json").read_text()) for s in STAGES}
    assert {s: seen[s]["warehouse"] for s in STAGES} == {s: str(warehouse) for s in STAGES}
    [container] = seen["Ingest"]["input"]["Overrides"]["ContainerOverrides"]
    assert container["Command"][:3] == ["ingest", "--source", "synthetic"]


def test_an_override_for_a_state_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'Load' is not a Task state"):
        execute(tmp_path, {"Load": "true"})
