"""Local stand-ins for the state machine's AWS integrations: ``python -m orchestration.local_tasks KIND``.

``orchestration/node/run_local.mjs`` runs one of these for each Task state, with the state's effective input
(after ``Parameters``: exactly what AWS would receive) in ``SFN_TASK_INPUT``. Each does locally what the
service would do, on the lake in ``RETAIL_LAKE``, and prints a result shaped like the service's:

ecs         ``ecs:runTask.sync``: run the container override's command through the image's entrypoint
            (``python -m orchestration.entrypoint COMMAND...``) with its environment overrides.
            ``RETAIL_LOCAL_APPEND_ARGS`` (JSON: state name -> extra arguments) lets a test point the ingest at
            a small file, which a container on AWS never needs.
glue        ``glue:startJobRun.sync``: ``retail-pipeline transform`` with the job run's arguments
            (``--ingest_date`` -> ``--ingest-date``, ``--run_id`` -> ``RETAIL_RUN_ID``, ...).
sns         ``sns:publish``: append the message as a JSON line to ``RETAIL_LOCAL_NOTIFICATIONS``.
cloudwatch  ``aws-sdk:cloudwatch:putMetricData``: record the figures with retail_core.metrics.emit,
            i.e. in the local lake's run log.

The command's exit code is passed on: run_local.mjs turns it into the state's error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retail_core import metrics
from retail_core.config import Settings

# Glue job arguments that are Glue's own, not the job script's.
_GLUE_RESERVED = {"JOB_NAME", "job-bookmark-option", "TempDir", "enable-metrics", "extra-py-files"}


def ecs_command(task_input: Mapping[str, Any], append: list[str]) -> tuple[list[str], dict[str, str]]:
    """The local command and extra environment for an ``ecs:runTask.sync`` input."""
    overrides = task_input.get("Overrides", {}).get("ContainerOverrides", [])
    if len(overrides) != 1 or not overrides[0].get("Command"):
        raise SystemExit("ecs: expected exactly one container override with a Command")
    override = overrides[0]
    env = {item["Name"]: str(item["Value"]) for item in override.get("Environment", [])}
    command = [sys.executable, "-m", "orchestration.entrypoint", *override["Command"], *append]
    return command, env


def glue_command(task_input: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The local command and extra environment for a ``glue:startJobRun.sync`` input."""
    command = [sys.executable, "-m", "retail_pipeline.cli", "transform"]
    env: dict[str, str] = {}
    for key, value in sorted(task_input.get("Arguments", {}).items()):
        name = key.removeprefix("--")
        if name in _GLUE_RESERVED:
            continue
        if name == "run_id":
            env["RETAIL_RUN_ID"] = str(value)
        elif name == "lake":
            env["RETAIL_LAKE"] = str(value)
        else:
            command += [f"--{name.replace('_', '-')}", str(value)]
    return command, env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    kind = args[0] if args else ""
    task_input = json.loads(os.environ.get("SFN_TASK_INPUT") or sys.stdin.read() or "{}")
    state = os.environ.get("SFN_STATE_NAME", kind)
    if kind == "ecs":
        append = json.loads(os.environ.get("RETAIL_LOCAL_APPEND_ARGS") or "{}").get(state, [])
        command, env = ecs_command(task_input, append)
        code = _run(command, env)
        if code:
            return code
        _result(
            {
                "TaskArn": f"arn:aws:ecs:local:000000000000:task/local/{uuid.uuid4().hex}",
                "LastStatus": "STOPPED",
            }
        )
    elif kind == "glue":
        started = time.monotonic()
        command, env = glue_command(task_input)
        code = _run(command, env)
        if code:
            return code
        _result(
            {
                "Id": f"jr_local_{uuid.uuid4().hex}",
                "JobRunState": "SUCCEEDED",
                "ExecutionTime": round(time.monotonic() - started),
            }
        )
    elif kind == "sns":
        path = Path(os.environ["RETAIL_LOCAL_NOTIFICATIONS"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(task_input, sort_keys=True) + "\n")
        _result({"MessageId": str(uuid.uuid4())})
    elif kind == "cloudwatch":
        _record_metrics(task_input)
        _result({})
    else:
        print(f"local_tasks: unknown kind {kind!r}; use ecs, glue, sns or cloudwatch", file=sys.stderr)
        return 2
    return 0


def _record_metrics(task_input: Mapping[str, Any]) -> None:
    if task_input.get("Namespace") != metrics.NAMESPACE:
        raise SystemExit(f"cloudwatch: namespace {task_input.get('Namespace')!r} is not {metrics.NAMESPACE}")
    by_stage: dict[str, dict[str, float]] = {}
    for datum in task_input.get("MetricData", []):
        dims = {d["Name"]: d["Value"] for d in datum.get("Dimensions", [])}
        if [{"Name": k, "Value": v} for k, v in dims.items()] != metrics.dimensions(dims.get("Stage", "")):
            raise SystemExit(f"cloudwatch: dimensions {dims} are not the ones metrics.py emits")
        by_stage.setdefault(dims["Stage"], {})[datum["MetricName"]] = float(datum["Value"])
    # The execution's name is the run id; its input (or its start date, as the definition's default) the date.
    execution_input = json.loads(os.environ.get("SFN_EXECUTION_INPUT") or "{}")
    ingest_date = dt.date.fromisoformat(
        execution_input.get("ingest_date") or os.environ["SFN_EXECUTION_START"][:10]
    )
    settings = Settings.from_env()
    for stage, figures in by_stage.items():
        metrics.emit(
            settings, stage, figures, run_id=os.environ["SFN_EXECUTION_NAME"], ingest_date=ingest_date
        )


def _run(command: list[str], extra_env: Mapping[str, str]) -> int:
    env = {**os.environ, **extra_env}
    # The stage's own output goes to stderr: stdout carries only this task's JSON result.
    return subprocess.run(command, env=env, stdout=sys.stderr, check=False).returncode


def _result(value: Mapping[str, Any]) -> None:
    print(json.dumps(value), flush=True)


if __name__ == "__main__":
    sys.exit(main())
