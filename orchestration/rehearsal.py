"""A five-day dress rehearsal of the deployed pipeline: ``python -m orchestration.rehearsal [--dist dist]``.

The real state machine (``orchestration/state_machine.asl.json``) runs in local-sfn (:mod:`orchestration.local_run`),
once per day for five days, and every Task state runs the artifact ``make package`` built in ``dist/``, never this
checkout. AWS is moto's server on 127.0.0.1 (S3, Secrets Manager, SNS, SQS, CloudWatch), Kaggle the fake Kaggle
server on 127.0.0.1 (``tests/fakes/fake_kaggle.py``) driven through the real ``kaggle`` client. How each Task
state is stood in:

==================  ========================================================================================
Ingest, Build       ``ecs:runTask.sync``: the wheel installed with its ``task`` extra (plus dbt-duckdb and
                    DuckDB, pinned by ``constraints.txt``) in a fresh venv, run as the image runs it: the
                    ``retail-pipeline-task`` console script with the container override's Command and
                    Environment, in a scratch folder outside the repository (the image's ``/tmp``), with no
                    PYTHONPATH, PYTHONSAFEPATH set and nothing of the checkout on the path. Its environment is
                    the task definition's in ``infra/template.yaml``, adapted to loopback: ``RETAIL_LAKE`` the
                    rehearsal's bucket, ``KAGGLE_SECRET_ID`` the Kaggle secret in moto (the entrypoint reads
                    it), ``RETAIL_DBT_TARGET=dev`` with ``RETAIL_DUCKDB_PATH`` a file of the rehearsal (the
                    warehouse is DuckDB here, so the state machine's ``${DbtTarget}`` is ``dev``), the
                    ``REDSHIFT_*`` variables dropped, fake credentials and ``AWS_ENDPOINT_URL`` = moto.
Transform           ``glue:startJobRun.sync``: ``dist/glue/retail_transform.py`` under ``spark-submit
                    --py-files dist/glue/retail_transform_libs.zip`` with Glue's argument list (``--JOB_NAME``,
                    ``--JOB_RUN_ID``, the job's DefaultArguments from the template, then the run's Arguments),
                    in an interpreter that has pyspark, great-expectations and awsglue (getResolvedOptions is
                    AWS's own; only the JVM side of ``GlueContext`` is stood in for, as in
                    ``tests/integration/test_packaged.py``) and nothing of this repository.
NotifyFailure       ``sns:publish``: boto3 ``publish`` of the state's input to a topic in moto; an SQS queue
                    subscribed to the topic is where the rehearsal reads the messages back.
RecordRunMetrics    ``cloudwatch:putMetricData``: boto3 ``put_metric_data`` of the state's input to moto.
==================  ========================================================================================

**The one stand-in that is not the service: the lake mirror.** Spark here has no S3 connector (hadoop-aws is
not in pyspark's wheel and Maven Central is out of reach), so the Glue job cannot read ``s3://``. Before the
job, the stand-in copies from moto's S3 to a local folder: the raw partition of the run's date, every raw
manifest, the processed-data/, quarantine/ and quality/ objects of that date, and the run log (S3's one object
per record becomes the local ``run_log.jsonl``). The job runs with ``--lake`` that folder. After it, success or
failure, the stand-in copies back every file the job added or changed (the processed, quarantine and quality
objects of the date, and whatever else it wrote), deletes the S3 objects under the date's prefixes that the
folder no longer has, writes each new run-log line as the S3 object the lake writer would have written, and
passes on the job's exit code. Objects copied back are only uploaded when their bytes changed, and copies
carry S3's modification times, so nothing looks new that is not. The Build task needs no mirror: its load
copies an S3 lake's new batches to a local folder itself (warehouse/load.py), so it reads ``s3://`` as on AWS.

Five days, each one execution with the input ``{"ingest_date": D, "source": "kaggle"}``: new data; the same
bytes again (a no-op); a corrected re-delivery of day 1 under day 1's date; a file over the quarantine
threshold (fails in Transform and notifies); new data after the failure. After each, the outcome, the
transform's figures (the run log in the lake), the SNS messages, CloudWatch's successful-run count and gold
(read from the DuckDB file, read-only) are checked against figures computed independently from the delivered
files with the bench's DuckDB reference of the cleaning contract (``retail_pipeline.bench.references``), run
as its own process. Prints one table, a line per day, and exits 0 when everything matched, 1 on any mismatch,
2 when the rehearsal could not run (``dist/`` missing or stale: one line saying so).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import tomllib
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from orchestration import local_run
from retail_core import dialect, layout, metrics

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "infra" / "template.yaml"
CONSTRAINTS = REPO / "constraints.txt"
CONTEXT_VAR = "RETAIL_REHEARSAL_CONTEXT"

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account: the ARNs moto mints carry it
BUCKET = "retail-rehearsal-lake"
KAGGLE_SECRET_NAME = "retail/kaggle"
TOPIC_NAME = "retail-alerts"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# The build target the state machine's ${DbtTarget} names here: the rehearsal's warehouse is a DuckDB file.
DBT_TARGET = "dev"
# What the image sets (Dockerfile ENV) besides HOME and dbt's folders, which go to each task's scratch folder.
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "RETAIL_DBT_TARGET": DBT_TARGET}
# Task definition variables the rehearsal changes or drops, and why (everything else is passed as the template
# gives it; a variable whose value it cannot resolve stops the rehearsal, so a new one is never lost silently).
ADAPTED = {"RETAIL_DBT_TARGET": DBT_TARGET}  # prod is Redshift; here the warehouse is DuckDB
DROPPED_PREFIXES = ("REDSHIFT_",)  # there is no Redshift here
# The Glue argument naming the job's zip: Glue fetches it from S3, the stand-in gives spark-submit dist/'s.
GLUE_PY_FILES_ARG = "--extra-py-files"

D1, D2, D4, D5 = (dt.date(2024, 1, d) for d in (1, 2, 4, 5))
# The Kaggle file's header.
HEADER = dialect.RAW_COLUMNS


class RehearsalError(Exception):
    """The rehearsal cannot run: one line, no traceback."""


# --- the dist/ it rehearses ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Dist:
    root: Path
    wheel: Path
    glue_script: Path
    glue_libs: Path
    wheel_sha256: str


def check_dist(root: Path, repo: Path = REPO) -> Dist:
    """dist/ as ``make package`` wrote it, its files matching MANIFEST.json and the checkout; RehearsalError if not."""
    hint = "run `make package` (or `make rehearse`, which does)"
    manifest_path = root / "MANIFEST.json"
    if not manifest_path.is_file():
        raise RehearsalError(f"{root} has no MANIFEST.json: {hint}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = {name: manifest[name] for name in ("wheel", "glue_script", "glue_libs")}
    except (ValueError, KeyError) as exc:
        raise RehearsalError(f"{manifest_path} is not a make package manifest ({exc}): {hint}") from None
    paths = {}
    for name, entry in entries.items():
        path = root / entry["file"]
        if not path.is_file():
            raise RehearsalError(f"{path} is missing: {hint}")
        if _sha256(path.read_bytes()) != entry["sha256"]:
            raise RehearsalError(f"{path} does not match its hash in {manifest_path}: {hint}")
        paths[name] = path
    stale = _stale_member(paths["wheel"], repo)
    if stale:
        raise RehearsalError(f"{root} is stale: {stale}; {hint}")
    with zipfile.ZipFile(paths["glue_libs"]) as zf, zipfile.ZipFile(paths["wheel"]) as whl:
        for name in zf.namelist():
            if zf.read(name) != whl.read(name):
                raise RehearsalError(f"{paths['glue_libs']} was not cut from {paths['wheel'].name}: {hint}")
    return Dist(
        root=root,
        wheel=paths["wheel"],
        glue_script=paths["glue_script"],
        glue_libs=paths["glue_libs"],
        wheel_sha256=entries["wheel"]["sha256"],
    )


def _stale_member(wheel: Path, repo: Path) -> str | None:
    """What in the wheel differs from the checkout (a file changed, removed or added since), or None."""
    config = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]["build"]
    targets = config["targets"]["wheel"]
    forced = {dest: src for src, dest in targets.get("force-include", {}).items()}
    excluded = tuple(targets.get("exclude", []))

    def source_of(member: str) -> Path:
        for dest, src in forced.items():
            if member == dest or member.startswith(dest + "/"):
                return repo / src / member[len(dest) :].lstrip("/")
        return repo / member

    with zipfile.ZipFile(wheel) as whl:
        members = [n for n in whl.namelist() if ".dist-info/" not in n and not n.endswith("/")]
        for member in members:
            source = source_of(member)
            if not source.is_file():
                return f"{member} is no longer in the checkout"
            if source.read_bytes() != whl.read(member):
                return f"{source.relative_to(repo)} changed since it was packaged"
    packaged = set(members)
    for package in targets.get("packages", []):
        for path in sorted((repo / package).rglob("*.py")):
            rel = path.relative_to(repo).as_posix()
            if rel not in packaged and not rel.startswith(excluded) and "__pycache__" not in rel:
                return f"{rel} is new since it was packaged"
    return None


# --- the template's task definitions and Glue job, adapted to loopback ---------------------------------------


def _resolver(template: Mapping[str, Any], refs: Mapping[str, str]):
    def resolve(value: Any) -> str:
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, Mapping) and len(value) == 1:
            (fn, arg), *_ = value.items()
            if fn == "Ref" and arg in refs:
                return refs[arg]
            if fn == "Fn::Sub" and isinstance(arg, str):
                missing = [m for m in re.findall(r"\$\{([^}]+)\}", arg) if m not in refs]
                if not missing:
                    return re.sub(r"\$\{([^}]+)\}", lambda m: refs[m[1]], arg)
            if fn == "Fn::FindInMap":
                top, second, third = arg
                return str(template["Mappings"][top][second][third])
        raise LookupError(json.dumps(value, default=str))

    return resolve


def template_settings(
    *, bucket: str, kaggle_secret_arn: str, lake_uri: str, template_path: Path = TEMPLATE
) -> dict[str, Any]:
    """What infra/template.yaml gives each ECS task's container and the Glue job, resolved for the rehearsal.

    Returns ``{"ecs": {local task definition ARN: {"name", "container", "env"}}, "glue": {"job_name",
    "default_arguments"}}``; the local ARNs are the ones orchestration.local_run substitutes into the definition.
    """
    from cfnlint.decode import decode  # cfn-lint's loader understands !Ref, !Sub, ...

    template, problems = decode(str(template_path))
    if problems or template is None:
        raise RehearsalError(f"{template_path} does not parse: {problems}")
    refs = {name: str(p["Default"]) for name, p in template.get("Parameters", {}).items() if "Default" in p}
    refs.update(
        {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "LakeBucket": bucket,
            "KaggleSecret": kaggle_secret_arn,  # Ref of a secret is its ARN
            # Where deploy.sh uploads dist/glue/: the stand-in hands spark-submit dist/ itself instead.
            "ArtifactBucket": "rehearsal-artifacts",
            "GlueScriptKey": "glue/retail_transform.py",
            "GlueExtraPyFilesKey": "glue/retail_transform_libs.zip",
            # The stand-in's interpreter has great-expectations already; installing dist/'s wheelhouse with
            # pip --no-index over Glue 5.0's own libraries is tests/integration/test_packaged.py's to prove.
            "GlueWheelhouseKeyPrefix": "glue/wheelhouse",
            "GluePythonModules": "s3://rehearsal-artifacts/glue/wheelhouse/great_expectations.whl",
        }
    )
    resolve = _resolver(template, refs)
    resources = template["Resources"]
    [machine] = [r for r in resources.values() if r["Type"] == "AWS::Serverless::StateMachine"]
    substitutions = machine["Properties"]["DefinitionSubstitutions"]
    container_name = resolve(substitutions["ContainerName"])
    ecs: dict[str, dict[str, Any]] = {}
    for key, value in substitutions.items():
        logical = value.get("Ref") if isinstance(value, Mapping) else None
        if not logical or resources.get(logical, {}).get("Type") != "AWS::ECS::TaskDefinition":
            continue
        [container] = [
            c
            for c in resources[logical]["Properties"]["ContainerDefinitions"]
            if resolve(c["Name"]) == container_name
        ]
        env: dict[str, str] = {}
        for item in container.get("Environment", []):
            name = item["Name"]
            if name.startswith(DROPPED_PREFIXES):
                continue
            if name in ADAPTED:
                env[name] = ADAPTED[name]
                continue
            try:
                env[name] = resolve(item["Value"])
            except LookupError as exc:
                raise RehearsalError(
                    f"{template_path.name}: {logical} gives its container {name}={exc}, which the rehearsal "
                    "cannot stand in for: add it to orchestration/rehearsal.py"
                ) from None
        if env.get("RETAIL_LAKE") != lake_uri:
            raise RehearsalError(f"{logical}'s RETAIL_LAKE is {env.get('RETAIL_LAKE')}, not the lake bucket")
        ecs[local_run.LOCAL_SUBSTITUTIONS[key]] = {"name": logical, "container": container_name, "env": env}
    glue_logical = substitutions["GlueJobName"]["Ref"]
    job = resources[glue_logical]["Properties"]
    arguments: dict[str, str] = {}
    for name, value in job.get("DefaultArguments", {}).items():
        try:
            arguments[name] = resolve(value)
        except LookupError as exc:
            raise RehearsalError(
                f"{template_path.name}: {glue_logical} has the default argument {name}={exc}, which the "
                "rehearsal cannot stand in for: add it to orchestration/rehearsal.py"
            ) from None
    return {"ecs": ecs, "glue": {"job_name": resolve(job["Name"]), "default_arguments": arguments}}


# --- the lake mirror (see the module docstring) ---------------------------------------------------------------


def _client(endpoint: str, service: str = "s3") -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _list(s3: Any, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(page.get("Contents", []))
    return found


@dataclasses.dataclass
class Mirror:
    """A local copy of part of the S3 lake; what was pulled, so that :meth:`push` knows what changed."""

    s3: Any
    bucket: str
    root: Path
    prefixes: tuple[str, ...]  # deletions propagate only below these
    pulled: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> md5 hex
    run_log_lines: int = 0

    def pull(self, also: Sequence[Mapping[str, Any]] = ()) -> None:
        """Copy the objects below the prefixes, and ``also`` these (as S3 lists them), and the run log."""
        run_log_prefix = metrics.RUN_LOG_PREFIX + "/"
        objects = [o for p in self.prefixes for o in _list(self.s3, self.bucket, p)]
        for obj in [*objects, *also]:
            key = obj["Key"]
            if key.startswith(run_log_prefix) or key in self.pulled:
                continue
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            data = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            path.write_bytes(data)
            stamp = obj["LastModified"].timestamp()
            os.utime(path, (stamp, stamp))
            self.pulled[key] = hashlib.md5(data).hexdigest()
        # S3's run log is one object per record; the local lake's is one file of lines.
        records = [
            self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read().decode("utf-8")
            for o in sorted(_list(self.s3, self.bucket, run_log_prefix), key=lambda o: o["Key"])
        ]
        lines = [line for text in records for line in text.splitlines() if line.strip()]
        log_path = self.root / metrics.RUN_LOG_KEY
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.run_log_lines = len(lines)

    def push(self) -> list[str]:
        """Copy back what changed; delete below the prefixes what is gone. Returns the keys written."""
        written = []
        present = set()
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            key = path.relative_to(self.root).as_posix()
            if key == metrics.RUN_LOG_KEY or path.name.startswith(".") or f"/{layout.STAGING}/" in f"/{key}":
                continue
            present.add(key)
            data = path.read_bytes()
            if self.pulled.get(key) != hashlib.md5(data).hexdigest():
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
                written.append(key)
        for key in self.pulled:
            if key not in present and key.startswith(self.prefixes):
                self.s3.delete_object(Bucket=self.bucket, Key=key)
        log_path = self.root / metrics.RUN_LOG_KEY
        lines = log_path.read_text(encoding="utf-8").splitlines() if log_path.exists() else []
        for line in lines[self.run_log_lines :]:
            if not line.strip():
                continue
            record = json.loads(line)
            # The name metrics._append_to_run_log gives the record on S3.
            stamp = re.sub(r"[^0-9TZ]", "", record["at"])
            key = f"{metrics.RUN_LOG_PREFIX}/{stamp}_{record['run_id']}_{record['stage']}.json"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=(line + "\n").encode())
            written.append(key)
        return written


# --- the Task states' stand-ins: `python -m orchestration.rehearsal task KIND` --------------------------------

# The stand-in's JVM: C1 only and the parallel collector, as glue/local.py runs small inputs (a few hundred rows
# here). It changes how fast the job runs, not what it does: on 2 cores a day's job takes ~16 s instead of ~38 s.
GLUE_STANDIN_JAVA_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC")

# Glue's JVM side (com.amazonaws.services.glue.*) is not on PyPI: GlueContext's constructor and the JVM Job are
# stood in for; awsglue's Python (getResolvedOptions, awsglue.job.Job) is AWS's own (awsglue-dev).
GLUE_STANDIN = """
import json, os, sys, types

import awsglue.job  # the real awsglue-dev package
from pyspark.sql import SparkSession


def _log(event):
    with open(os.environ["GLUE_STANDIN_LOG"], "a", encoding="utf-8") as out:
        out.write(json.dumps(event) + "\\n")


class _JvmJob:
    def init(self, name, scala_context, args):
        _log({"init": name, "args": dict(args)})

    def commit(self):
        _log({"commit": True})


class GlueContext:
    def __init__(self, sc):
        self.spark_session = SparkSession(sc)
        self._jvm = types.SimpleNamespace(Job=_JvmJob())
        self._glue_scala_context = object()


context = types.ModuleType("awsglue.context")
context.GlueContext = GlueContext
sys.modules["awsglue.context"] = context
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment less anything of the checkout, the orchestrator, AWS or Kaggle."""
    dropped = ("PYTHON", "VIRTUAL_ENV", "RETAIL_", "DBT_", "AWS_", "KAGGLE", "SFN_", "SPARK_", "PYSPARK_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(dropped) and "proxy" not in k.lower() and k != CONTEXT_VAR
    }
    path = [
        p for p in env.get("PATH", "").split(os.pathsep) if p and not Path(p).resolve().is_relative_to(REPO)
    ]
    env["PATH"] = os.pathsep.join(path)
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


def _aws_env(ctx: Mapping[str, Any]) -> dict[str, str]:
    """The task role's credentials, as far as moto is concerned."""
    return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": ctx["endpoint"], "AWS_DEFAULT_REGION": REGION}


def _scratch(ctx: Mapping[str, Any], state: str) -> Path:
    """A fresh folder for one attempt of one Task state (a Fargate task's /tmp, a Glue job run's disk)."""
    execution = os.environ.get("SFN_EXECUTION_NAME", "execution")
    path = Path(ctx["run_dir"]) / "tasks" / execution / f"{state}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    return path


def _run_logged(command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path) -> int:
    """Run ``command``; its output goes to stderr (stdout is the task's JSON result) and to ``log``."""
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        child = subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert child.stdout is not None
        for line in child.stdout:
            out.write(line)
            sys.stderr.buffer.write(line)
        return child.wait()


def _task_ecs(ctx: Mapping[str, Any], task_input: Mapping[str, Any], state: str) -> int:
    definition = ctx["ecs"].get(task_input.get("TaskDefinition"))
    if definition is None:
        print(f"rehearsal ecs: unknown task definition {task_input.get('TaskDefinition')}", file=sys.stderr)
        return 1
    [override] = task_input["Overrides"]["ContainerOverrides"]
    if override["Name"] != definition["container"]:
        print(f"rehearsal ecs: no container {override['Name']} in {definition['name']}", file=sys.stderr)
        return 1
    scratch = _scratch(ctx, state)
    env = _clean_env(
        PATH=f"{ctx['task_bin']}{os.pathsep}{_clean_env()['PATH']}",
        HOME=str(scratch),
        DBT_TARGET_PATH=str(scratch / "dbt" / "target"),
        DBT_LOG_PATH=str(scratch / "dbt" / "logs"),
        PYTHONSAFEPATH="1",  # python -I's "nothing of the working directory on the path"
        **IMAGE_ENV,
    )
    env.update(definition["env"])
    env.update(_aws_env(ctx))
    env["AWS_REGION"] = REGION
    if "KAGGLE_SECRET_ID" in definition["env"]:
        env.update(ctx["kaggle_env"])
    if "RETAIL_DBT_TARGET" in definition["env"]:
        env["RETAIL_DUCKDB_PATH"] = ctx["duckdb_path"]
    env.update({item["Name"]: str(item["Value"]) for item in override.get("Environment", [])})
    log = Path(ctx["run_dir"]) / "logs" / f"{os.environ.get('SFN_EXECUTION_NAME', 'execution')}.{state}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    code = _run_logged(
        [str(Path(ctx["task_bin"]) / "retail-pipeline-task"), *override["Command"]],
        env=env,
        cwd=scratch,
        log=log,
    )
    if code:
        return code
    print(
        json.dumps(
            {
                "TaskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/rehearsal/{uuid.uuid4().hex}",
                "LastStatus": "STOPPED",
            }
        )
    )
    return 0


def _task_glue(ctx: Mapping[str, Any], task_input: Mapping[str, Any], state: str) -> int:
    job = ctx["glue"]
    if task_input.get("JobName") != job["job_name"]:
        print(f"rehearsal glue: no job {task_input.get('JobName')}", file=sys.stderr)
        return 1
    started = time.monotonic()
    arguments = {**job["default_arguments"], **task_input.get("Arguments", {})}
    date = arguments.get("--ingest_date")
    if not date:
        print("rehearsal glue: the lake mirror needs --ingest_date", file=sys.stderr)
        return 1
    day = dt.date.fromisoformat(date)
    scratch = _scratch(ctx, state)
    zones = (
        layout.RAW_ZONE,
        layout.PROCESSED_ZONE,
        layout.RETURNS_ZONE,
        layout.QUARANTINE_ZONE,
        layout.QUALITY_ZONE,
    )
    mirror = Mirror(
        _client(ctx["endpoint"]),
        ctx["bucket"],
        scratch / "lake",
        prefixes=tuple(layout.zone_prefix(zone, day) + "/" for zone in zones),
    )
    s3 = mirror.s3
    raw = _list(s3, ctx["bucket"], f"{layout.RAW_ZONE}/{layout.DATASET}/")
    mirror.pull(also=[o for o in raw if o["Key"].endswith("/" + layout.MANIFEST_NAME)])
    run_id = f"jr_{uuid.uuid4().hex}"
    arguments["--lake"] = str(mirror.root)
    arguments[GLUE_PY_FILES_ARG] = ctx["glue_libs"]
    argv = ["--JOB_ID", "j_rehearsal", "--JOB_RUN_ID", run_id, "--JOB_NAME", job["job_name"]]
    argv += [item for name, value in arguments.items() for item in (name, str(value))]
    spark_home = ctx["spark_home"]
    command = [
        str(Path(spark_home) / "bin" / "spark-submit"),
        "--master", "local[2]",
        "--driver-memory", "1g",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.ui.showConsoleProgress=false",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", f"spark.driver.extraJavaOptions={' '.join(GLUE_STANDIN_JAVA_OPTIONS)}",
        "--py-files", ctx["glue_libs"],
        ctx["glue_script"],
        *argv,
    ]  # fmt: skip
    env = _clean_env(
        HOME=str(scratch),
        SPARK_HOME=spark_home,
        PYSPARK_PYTHON=ctx["glue_python"],
        PYSPARK_DRIVER_PYTHON=ctx["glue_python"],
        SPARK_LOCAL_IP="127.0.0.1",
        GLUE_STANDIN_LOG=str(scratch / "glue_standin.jsonl"),
        # On Glue the lake is S3, so the figures go to CloudWatch too; here the job's lake is the mirror.
        RETAIL_METRICS="cloudwatch",
        AWS_REGION=REGION,
        **_aws_env(ctx),
    )
    log = Path(ctx["run_dir"]) / "logs" / f"{os.environ.get('SFN_EXECUTION_NAME', 'execution')}.{state}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    code = _run_logged(command, env=env, cwd=scratch, log=log)
    mirror.push()
    if code:
        return code
    print(
        json.dumps(
            {"Id": run_id, "JobRunState": "SUCCEEDED", "ExecutionTime": round(time.monotonic() - started)}
        )
    )
    return 0


def _task_sns(ctx: Mapping[str, Any], task_input: Mapping[str, Any], state: str) -> int:
    sent = _client(ctx["endpoint"], "sns").publish(**task_input)
    print(json.dumps({"MessageId": sent["MessageId"]}))
    return 0


def _task_cloudwatch(ctx: Mapping[str, Any], task_input: Mapping[str, Any], state: str) -> int:
    _client(ctx["endpoint"], "cloudwatch").put_metric_data(**task_input)
    print(json.dumps({}))
    return 0


TASKS = {"ecs": _task_ecs, "glue": _task_glue, "sns": _task_sns, "cloudwatch": _task_cloudwatch}


def run_task(kind: str) -> int:
    """One Task state's stand-in, as local-sfn runs it: the state's input in SFN_TASK_INPUT, the JSON result on
    the last line of stdout, the exit code the state's outcome."""
    ctx = json.loads(Path(os.environ[CONTEXT_VAR]).read_text(encoding="utf-8"))
    task_input = json.loads(os.environ.get("SFN_TASK_INPUT") or "{}")
    state = os.environ.get("SFN_STATE_NAME", kind)
    try:
        return TASKS[kind](ctx, task_input, state)
    except Exception as exc:  # a stand-in that breaks fails its state, with the reason in the cause
        print(f"rehearsal {kind}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


# --- the five days' deliveries ----------------------------------------------------------------------------------

PRODUCTS = [
    ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2.55"),
    ("71053", "WHITE METAL LANTERN", "3.39"),
    ("84406B", "CREAM CUPID HEARTS COAT HANGER", "2.75"),
    ("84029G", "KNITTED UNION FLAG HOT WATER BOTTLE", "3.39"),
    ("84029E", "RED WOOLLY HOTTIE WHITE HEART.", "3.39"),
    ("22752", "SET 7 BABUSHKA NESTING BOXES", "7.65"),
    ("21730", "GLASS STAR FROSTED T-LIGHT HOLDER", "4.25"),
    ("22633", "HAND WARMER UNION JACK", "1.85"),
    ("22632", "HAND WARMER RED POLKA DOT", "1.85"),
    ("84879", "ASSORTED COLOUR BIRD ORNAMENT", "1.69"),
    ("22745", "POPPY'S PLAYHOUSE BEDROOM ", "2.1"),
    ("22748", "POPPY'S PLAYHOUSE KITCHEN", "2.1"),
    ("22749", "FELTCRAFT PRINCESS CHARLOTTE DOLL", "3.75"),
    ("22310", "IVORY KNITTED MUG COSY ", "1.65"),
    ("84969", "BOX OF 6 ASSORTED COLOUR TEASPOONS", "4.25"),
    ("22623", "BOX OF VINTAGE JIGSAW BLOCKS ", "4.95"),
    ("22622", "BOX OF VINTAGE ALPHABET BLOCKS", "9.95"),
    ("21754", "HOME BUILDING BLOCK WORD", "5.95"),
    ("21777", "RECIPE BOX WITH METAL HEART", "7.95"),
    ("48187", "DOORMAT NEW ENGLAND", "7.95"),
    ("22960", "JAM MAKING SET WITH JARS", "4.25"),
    ("22913", "RED COAT RACK PARIS FASHION", "4.95"),
    ("22727", "ALARM CLOCK BAKELIKE RED ", "3.75"),
    ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS ", "2.95"),
    ("21212", "PACK OF 72 RETROSPOT CAKE CASES", "0.55"),
    ("85099B", "JUMBO BAG RED RETROSPOT", "1.95"),
    ("22423", "REGENCY CAKESTAND 3 TIER", "12.75"),
    ("47566", "PARTY BUNTING", "4.95"),
    ("84077", "WORLD WAR 2 GLIDERS ASSTD DESIGNS", "0.29"),
    ("21080", "SET/20 RED RETROSPOT PAPER NAPKINS ", "0.85"),
    ("20725", "LUNCH BAG RED RETROSPOT", "1.65"),
    ("22197", "SMALL POPCORN HOLDER", "0.85"),
    ("23084", "RABBIT NIGHT LIGHT", "2.08"),
    ("22467", "GUMBALL COAT RACK", "2.55"),
    ("22138", "BAKING SET 9 PIECE RETROSPOT ", "4.95"),
    ("21731", "RED TOADSTOOL LED NIGHT LIGHT", "1.65"),
    ("22900", "SET 2 TEA TOWELS I LOVE LONDON ", "2.95"),
    ("22139", "RETROSPOT TEA SET CERAMIC 11 PC ", "4.95"),
    ("POST", "POSTAGE", "18.0"),
    ("M", "Manual", "0.85"),
]
COUNTRIES = ["United Kingdom"] * 8 + [
    "France",
    "Germany",
    "EIRE",
    "Spain",
    "Netherlands",
    "Belgium",
    "Norway",
]


@dataclasses.dataclass
class Row:
    fields: list[str]
    kind: str  # clean | duplicate | cancelled | zero_price | negative | ...: what the generator meant


def _deliveries() -> dict[str, list[Row]]:
    """The five days' files as rows: deterministic, a few hundred lines each, messy the way the real export is
    (cancellations, price-0 lines without a description, exact copies, guest sales, quoted commas)."""
    rng = random.Random(20240101)
    customers = [(f"{rng.randint(12346, 18287)}.0", rng.choice(COUNTRIES)) for _ in range(45)]
    invoice_counter = iter(range(536365, 600000))

    def invoice(day: dt.date, hour: int, us_dates: bool = False) -> list[Row]:
        number = str(next(invoice_counter))
        customer, country = rng.choice(customers) if rng.random() > 0.2 else ("", "United Kingdom")
        when = dt.datetime(2010, 12, 1) + dt.timedelta(
            days=(day - D1).days * 3, hours=hour, minutes=rng.randint(0, 59)
        )
        stamp = (
            f"{when.month}/{when.day}/{when.year} {when.hour}:{when.minute:02d}"
            if us_dates
            else f"{when:%Y-%m-%d %H:%M:%S}"
        )
        rows = []
        for code, description, price in rng.sample(PRODUCTS, rng.randint(3, 11)):
            quantity = rng.choice([1, 2, 3, 4, 6, 8, 10, 12, 12, 24, 25, 48])
            rows.append(
                Row([number, code, description, str(quantity), stamp, price, customer, country], "clean")
            )
        return rows

    def messy(rows: list[Row], count: int, kinds: Sequence[str]) -> list[Row]:
        out = list(rows)
        for i in range(count):
            kind = kinds[i % len(kinds)]
            base = rng.choice([r for r in rows if r.kind == "clean"]).fields
            number, code, description, quantity, stamp, price, customer, country = base
            if kind == "cancelled":
                fields = [f"C{number}", code, description, f"-{quantity}", stamp, price, customer, country]
            elif kind == "zero_price":
                fields = [
                    number,
                    rng.choice(PRODUCTS)[0],
                    "",
                    str(rng.randint(1, 60)),
                    stamp,
                    "0.0",
                    "",
                    country,
                ]
            elif kind == "negative":
                fields = [number, code, "", f"-{rng.randint(1, 40)}", stamp, "0.0", "", country]
            elif kind == "duplicate":
                fields = list(base)
            else:
                raise ValueError(kind)
            out.insert(
                rng.randint(out.index(next(r for r in out if r.fields == base)) + 1, len(out)),
                Row(fields, kind),
            )
        return out

    def day_rows(day: dt.date, invoices: int, us_dates: bool = False) -> list[Row]:
        return [row for i in range(invoices) for row in invoice(day, 8 + i % 10, us_dates and i % 3 == 0)]

    day1 = day_rows(D1, 42)
    # A quoted comma and the bad-debt adjustment the real export has: both are sales lines and are kept.
    day1.insert(
        7,
        Row(
            [
                day1[6].fields[0],
                "22633",
                "HAND WARMER UNION JACK, RED",
                "6",
                *day1[6].fields[4:5],
                "2.1",
                *day1[6].fields[6:],
            ],
            "clean",
        ),
    )
    day1.append(
        Row(
            ["A563185", "B", "Adjust bad debt", "1", day1[-1].fields[4], "11062.06", "", "United Kingdom"],
            "clean",
        )
    )
    day1 = messy(day1, 10, ["cancelled", "zero_price", "duplicate", "cancelled", "negative"])

    # Day 1 again, corrected: one quantity changed, three lines removed, two added.
    day3 = [Row(list(r.fields), r.kind) for r in day1]
    copied = {tuple(r.fields) for r in day1 if r.kind == "duplicate"}
    plain = [i for i, r in enumerate(day3) if r.kind == "clean" and tuple(r.fields) not in copied]
    changed, *removed = rng.sample(plain, 4)
    day3[changed].fields[3] = str(int(day3[changed].fields[3]) + 5)
    day3 = [r for i, r in enumerate(day3) if i not in removed]
    late = invoice(D1, 17)[:2]
    day3 += late

    day4 = messy(day_rows(D4, 22), 34, ["cancelled", "cancelled", "zero_price", "negative", "duplicate"])

    day5 = day_rows(D5, 38, us_dates=True)
    # Two lines the corrected day 1 already had, delivered again: one line each in gold, from the later batch.
    again = [Row(list(r.fields), "clean") for r in rng.sample([r for r in day3 if r.kind == "clean"], 2)]
    day5 = messy(day5[:20] + again + day5[20:], 8, ["cancelled", "zero_price", "duplicate", "negative"])
    return {"day1": day1, "day3": day3, "day4": day4, "day5": day5}


def _csv_bytes(rows: Sequence[Row]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(r.fields for r in rows)
    return buffer.getvalue().encode("utf-8")


@dataclasses.dataclass(frozen=True)
class Day:
    number: int
    ingest_date: dt.date
    delivery: str
    csv: bytes
    intent: str  # loaded | noop | rejected: what the scenario means the day to be


def scenario() -> list[Day]:
    files = {name: _csv_bytes(rows) for name, rows in _deliveries().items()}
    return [
        Day(1, D1, "new data", files["day1"], "loaded"),
        Day(2, D2, "same bytes as day 1", files["day1"], "noop"),
        Day(3, D1, "day 1 corrected", files["day3"], "loaded"),
        Day(4, D4, "over the quarantine limit", files["day4"], "rejected"),
        Day(5, D5, "new data", files["day5"], "loaded"),
    ]


# --- the independent expectation --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Batch:
    """A delivered file as the bench's DuckDB reference of the cleaning contract cleans it."""

    rows_in: int
    rows_clean: int
    rows_returns: int
    rows_quarantined: int
    total_sales: Decimal
    lines: dict[str, dict[str, str]]  # line_id -> the clean row (reference's columns)

    @property
    def ratio(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0


def reference_batch(raw: Path, out: Path, ingest_date: dt.date) -> Batch:
    result = out / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "retail_pipeline.bench.references", "duckdb", str(raw), str(out),
         "--ingest-date", ingest_date.isoformat(), "--result", str(result)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RehearsalError(f"the DuckDB reference could not clean {raw}: {done.stderr.strip()[-300:]}")
    figures = json.loads(result.read_text(encoding="utf-8"))
    with (out / "clean.tsv").open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        lines = {row[0]: dict(zip(header, row, strict=True)) for row in reader}
    clean = int(figures["rows_clean"])
    if len(lines) != clean:
        raise RehearsalError(f"the DuckDB reference wrote {len(lines)} distinct clean lines, not {clean}")
    rows_in = int(figures["rows_in"])
    # Returns (kept cancellation lines) are neither clean sales nor quarantined.
    returns = int(figures["rows_returns"])
    return Batch(rows_in, clean, returns, rows_in - clean - returns, Decimal(figures["total_sales"]), lines)


@dataclasses.dataclass
class Expectation:
    outcome: str  # SUCCEEDED | FAILED in <state>
    kind: str  # loaded | noop | rejected
    batch: Batch | None  # what the transform should report (None: nothing to transform)
    gold: dict[str, tuple[dt.date, Decimal]]  # line_id -> (ingest date, total_sales)
    products: int
    customers: int
    successes: int  # pipeline successes CloudWatch should have counted so far

    @property
    def gold_total(self) -> Decimal:
        return sum((total for _, total in self.gold.values()), Decimal(0)).quantize(Decimal("0.001"))

    @property
    def latest(self) -> dt.date | None:
        return max((d for d, _ in self.gold.values()), default=None)


class Ledger:
    """What the pipeline should hold after each day, from the delivered files alone: the current accepted batch
    of every ingest date (a re-delivery replaces its date's batch; a rejected one changes nothing), and gold as
    their clean lines, one per line_id, from the latest ingest date that has it."""

    def __init__(self, max_ratio: float) -> None:
        self.max_ratio = max_ratio
        self.delivered: dict[dt.date, bytes] = {}  # what ingest landed at each date
        self.accepted: dict[dt.date, Batch] = {}
        self.successes = 0

    def expect(self, day: Day, batch: Batch) -> Expectation:
        same_as_landed = any(data == day.csv for data in self.delivered.values())
        if same_as_landed:
            kind, outcome, reported = "noop", "SUCCEEDED", None
        elif batch.ratio > self.max_ratio:
            kind, outcome, reported = "rejected", "FAILED in Transform", batch
            self.delivered[day.ingest_date] = day.csv
        else:
            kind, outcome, reported = "loaded", "SUCCEEDED", batch
            self.delivered[day.ingest_date] = day.csv
            self.accepted[day.ingest_date] = batch
        if kind != day.intent:
            raise RehearsalError(f"day {day.number}'s file is {kind}, not {day.intent}: fix the scenario")
        if outcome == "SUCCEEDED":
            self.successes += 1
        gold: dict[str, tuple[dt.date, Decimal]] = {}
        rows: dict[str, dict[str, str]] = {}
        for date in sorted(self.accepted):
            for line_id, row in self.accepted[date].lines.items():
                gold[line_id] = (date, Decimal(row["total_sales"]))
                rows[line_id] = row
        known = {r["customer_id"] for r in rows.values() if r["customer_id"]}
        guests = {r["invoice_no"] for r in rows.values() if not r["customer_id"]}
        return Expectation(
            outcome=outcome,
            kind=kind,
            batch=reported,
            gold=gold,
            products=len({r["stock_code"] for r in rows.values()}),
            customers=len(known) + len(guests),
            successes=self.successes,
        )


# --- what the pipeline did ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Observation:
    outcome: str
    stages: dict[str, dict[str, float]]  # this run's run-log figures by stage
    notifications: list[dict[str, Any]]
    gold: dict[str, tuple[dt.date, Decimal]] | None
    products: int | None
    customers: int | None
    successes: int | None
    processed: list[str]  # the objects under processed-data/ of the day's ingest date

    @property
    def gold_total(self) -> Decimal | None:
        if self.gold is None:
            return None
        return sum((total for _, total in self.gold.values()), Decimal(0)).quantize(Decimal("0.001"))


def _outcome(execution: local_run.Execution) -> str:
    if execution.status == "SUCCEEDED":
        return "SUCCEEDED"
    failed = [e.get("state") for e in execution.events if e["type"] == "StateFailed"]
    state = failed[0] if failed else "?"
    with contextlib.suppress(ValueError, TypeError):
        state = json.loads(execution.cause or "")["state"]
    return f"{execution.status} in {state}"


def _run_log(s3: Any, run_id: str) -> dict[str, dict[str, float]]:
    stages: dict[str, dict[str, float]] = {}
    for obj in sorted(_list(s3, BUCKET, metrics.RUN_LOG_PREFIX + "/"), key=lambda o: o["Key"]):
        if f"_{run_id}_" not in obj["Key"]:
            continue
        for line in s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode().splitlines():
            record = json.loads(line)
            if record["run_id"] == run_id:
                stages.setdefault(record["stage"], {}).update(record["figures"])
    return stages


def _notifications(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        batch = got.get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _gold(path: Path) -> tuple[dict[str, tuple[dt.date, Decimal]] | None, int | None, int | None]:
    import duckdb

    if not path.exists():
        return None, None, None
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {t for (t,) in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [layout.GOLD_SCHEMA]
        ).fetchall()}  # fmt: skip
        if "sales_transactions" not in tables:
            return None, None, None
        lines = con.execute(
            "select line_id, ingest_date, total_sales from gold.sales_transactions"
        ).fetchall()
        counts = [
            int(con.execute(f"select count(*) from gold.{t}").fetchone()[0]) if t in tables else None
            for t in ("products", "customers")
        ]
    gold = {line_id: (date, Decimal(total)) for line_id, date, total in lines}
    if len(gold) != len(lines):
        gold["<line_id repeated in gold>"] = (dt.date.min, Decimal(0))
    return gold, counts[0], counts[1]


def _pipeline_successes(cloudwatch: Any, since: dt.datetime) -> int:
    stats = cloudwatch.get_metric_statistics(
        Namespace=metrics.NAMESPACE,
        MetricName="success",
        Dimensions=metrics.dimensions("pipeline"),
        StartTime=since,
        EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        Period=86400,
        Statistics=["Sum"],
    )
    return int(sum(point["Sum"] for point in stats["Datapoints"]))


def compare(
    day: Day, expected: Expectation, seen: Observation, before: Observation | None = None
) -> list[str]:
    """Every way ``seen`` differs from ``expected`` (and, on a day that must leave gold alone, from the day
    ``before``), one short phrase each."""
    problems = []

    def check(what: str, want: Any, got: Any) -> None:
        if want != got:
            problems.append(f"{what}: expected {want}, got {got}")

    check("outcome", expected.outcome, seen.outcome)
    transform = seen.stages.get("transform", {})
    if expected.batch is not None:
        for figure, want in (
            ("rows_in", expected.batch.rows_in),
            ("rows_clean", expected.batch.rows_clean),
            ("rows_returns", expected.batch.rows_returns),
            ("rows_quarantined", expected.batch.rows_quarantined),
        ):
            got = transform.get(figure)
            check(f"transform {figure}", want, None if got is None else int(got))
    if expected.kind == "noop":
        for stage in ("transform", "build"):
            got = seen.stages.get(stage, {}).get("noop")
            check(f"{stage} noop figure in the run log", 1, None if got is None else int(got))
        check(f"processed-data objects for {day.ingest_date}", [], seen.processed)
    names = [n.get("MessageAttributes", {}).get("failed_state", {}).get("Value") for n in seen.notifications]
    if expected.outcome == "SUCCEEDED":
        check("SNS messages", 0, len(seen.notifications))
    else:
        failed_state = expected.outcome.rsplit(" ", 1)[-1]
        check("SNS messages naming the failed state", [failed_state], names)
        if seen.notifications and f"failed in state {failed_state}" not in seen.notifications[0].get(
            "Message", ""
        ):
            problems.append(f"SNS message does not say 'failed in state {failed_state}'")
    check("CloudWatch pipeline successes so far", expected.successes, seen.successes)
    if seen.gold is None:
        problems.append("no gold.sales_transactions in the warehouse")
        return problems
    if (
        expected.kind != "loaded"
        and before is not None
        and before.gold is not None
        and seen.gold != before.gold
    ):
        problems.append("gold changed on a day that must leave it as it was")
    check("gold rows", len(expected.gold), len(seen.gold))
    check("gold Σ total_sales", expected.gold_total, seen.gold_total)
    check("gold max(ingest_date)", expected.latest, max((d for d, _ in seen.gold.values()), default=None))
    missing = expected.gold.keys() - seen.gold.keys()
    extra = seen.gold.keys() - expected.gold.keys()
    if missing or extra:
        problems.append(f"gold lines: {len(missing)} expected line(s) missing, {len(extra)} unexpected")
    moved = [k for k in expected.gold.keys() & seen.gold.keys() if expected.gold[k][0] != seen.gold[k][0]]
    if moved:
        problems.append(f"gold lines: {len(moved)} with another ingest_date than their latest delivery's")
    check("gold.products rows", expected.products, seen.products)
    check("gold.customers rows", expected.customers, seen.customers)
    return problems


# --- the rehearsal ------------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def task_install_command(python: Path, *requirements: str) -> list[str]:
    """The image's install (the Dockerfile's ``pip install -c constraints.txt``) of ``requirements`` into the venv
    of ``python``, made with uv from the set-up's venv: constraints.txt pins every package the task install
    takes (tests/integration/test_packaged.py checks it), so both installers install the same versions, and uv
    takes 2-5 s where pip takes 30 (its resolver and bytecode compiler are pure Python). Bytecode is compiled,
    as pip does: the image sets PYTHONDONTWRITEBYTECODE, so a task would otherwise compile dbt at every start."""
    return [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", str(python),
            "--compile-bytecode", "-c", str(CONSTRAINTS), *requirements]  # fmt: skip


def _task_venv(dist: Dist, path: Path) -> Path:
    """The image's install: a fresh venv with the wheel's task extra, plus dbt-duckdb and DuckDB, from the lock.
    Kept between rehearsals only while the wheel and the lock are the same."""
    stamp = path / ".rehearsal-stamp"
    wanted = f"{dist.wheel_sha256} {_sha256(CONSTRAINTS.read_bytes())}"
    if stamp.is_file() and stamp.read_text() == wanted and (path / "bin" / "retail-pipeline-task").exists():
        return path / "bin"
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    done = subprocess.run(
        task_install_command(path / "bin" / "python", f"{dist.wheel}[task]", "dbt-duckdb", "duckdb"),
        capture_output=True, text=True, timeout=900, env=_clean_env(), check=False,
    )  # fmt: skip
    if done.returncode:
        raise RehearsalError(f"could not install {dist.wheel.name}[task]: {done.stderr.strip()[-500:]}")
    stamp.write_text(wanted)
    return path / "bin"


def _glue_python(path: Path) -> Path:
    """What Glue 5.0 provides (pyspark, great-expectations, awsglue) and nothing of this repository: a venv
    whose .pth names this interpreter's site-packages as a plain folder, so the editable install's own .pth
    (which puts the checkout on the path) is never read."""
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(path)}))
    (site / "glue_libraries.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    (site / "sitecustomize.py").write_text(textwrap.dedent(GLUE_STANDIN), encoding="utf-8")
    python = path / "bin" / "python"
    probe = (
        "import importlib.util as u; "
        "print([m for m in ('pyspark', 'great_expectations', 'awsglue') if not u.find_spec(m)], "
        "[m for m in ('glue', 'retail_core') if u.find_spec(m)])"
    )
    done = subprocess.run(
        [str(python), "-c", probe],
        cwd=path,
        capture_output=True,
        text=True,
        env=_clean_env(GLUE_STANDIN_LOG=os.devnull),
        check=False,
    )
    if done.stdout.strip() != "[] []":
        raise RehearsalError(
            f"the Glue interpreter is not Glue's: {done.stdout.strip()} {done.stderr.strip()[-300:]}"
        )
    return python


@contextlib.contextmanager
def _services() -> Iterator[dict[str, Any]]:
    """moto's server and the fake Kaggle, both on 127.0.0.1, with the bucket, secret, topic and queue."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests/fakes: repository-only, as this module is
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    from tests.fakes.fake_kaggle import FakeKaggle
    from tests.fakes.moto_s3 import moto_server

    with moto_server() as endpoint, FakeKaggle() as kaggle:
        # moto keeps its state per process, not per server: start from nothing, whatever ran before in this
        # process (a test session) left in its backends (a secret of the same name, metrics in the namespace).
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=30):
            pass
        s3 = _client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        secret = _client(endpoint, "secretsmanager").create_secret(
            Name=KAGGLE_SECRET_NAME, SecretString=json.dumps({"username": kaggle.username, "key": kaggle.key})
        )
        sns = _client(endpoint, "sns")
        topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
        sqs = _client(endpoint, "sqs")
        queue = sqs.create_queue(QueueName=f"{TOPIC_NAME}-rehearsal")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield {
            "endpoint": endpoint,
            "kaggle": kaggle,
            "secret_arn": secret["ARN"],
            "topic_arn": topic,
            "queue_url": queue,
            "s3": s3,
            "sqs": sqs,
            "cloudwatch": _client(endpoint, "cloudwatch"),
        }


def _definition(path: Path, substitutions: Mapping[str, str]) -> Path:
    """The state machine with the rehearsal's DefinitionSubstitutions filled in, as CloudFormation fills them."""
    text = local_run.DEFINITION.read_text(encoding="utf-8")
    text = re.sub(
        r"\$\{([A-Za-z0-9_]+)\}",
        lambda m: json.dumps(str(substitutions[m[1]]))[1:-1] if m[1] in substitutions else m[0],
        text,
    )
    path.write_text(text, encoding="utf-8")
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    if isinstance(value, Decimal):
        return f"{value:,.3f}"
    return str(value)


COLUMNS = (
    ("day", 3), ("ingest date", 11), ("delivery", 25), ("outcome", 22), ("rows in", 7), ("clean", 5),
    ("returns", 7), ("quarantined", 11), ("gold rows", 9), ("Σ total_sales", 14), ("expected", 0),
)  # fmt: skip


def _line(values: Sequence[str]) -> str:
    cells = []
    for (title, width), value in zip(COLUMNS, values, strict=True):
        numeric = title in ("rows in", "clean", "returns", "quarantined", "gold rows", "Σ total_sales")
        cells.append(value.rjust(max(width, len(title))) if numeric else value.ljust(max(width, len(title))))
    return "  ".join(cells).rstrip()


def _context(
    run_dir: Path, dist: Dist, aws: Mapping[str, Any], task_bin: Path, glue_python: Path
) -> dict[str, Any]:
    """What the stand-ins need (they run as processes of local-sfn's): written to a file named by CONTEXT_VAR."""
    settings = template_settings(
        bucket=BUCKET, kaggle_secret_arn=aws["secret_arn"], lake_uri=f"s3://{BUCKET}"
    )
    return {
        "endpoint": aws["endpoint"],
        "bucket": BUCKET,
        "run_dir": str(run_dir),
        "task_bin": str(task_bin),
        "duckdb_path": str(run_dir / "warehouse.duckdb"),
        "ecs": settings["ecs"],
        "glue": settings["glue"],
        "glue_python": str(glue_python),
        "glue_script": str(dist.glue_script.resolve()),
        "glue_libs": str(dist.glue_libs.resolve()),
        "spark_home": str(Path(sysconfig.get_path("purelib")) / "pyspark"),
        # The real kaggle client, sent to the fake (tests/fakes/fake_kaggle.py); moto is reached directly.
        "kaggle_env": {**aws["kaggle"].client_env(), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
    }


def _observe(
    execution: local_run.Execution, day: Day, aws: Mapping[str, Any], warehouse: Path, since: dt.datetime
) -> Observation:
    gold, products, customers = _gold(warehouse)
    processed = _list(aws["s3"], BUCKET, layout.processed_prefix(day.ingest_date) + "/")
    return Observation(
        outcome=_outcome(execution),
        stages=_run_log(aws["s3"], execution.name),
        notifications=_notifications(aws["sqs"], aws["queue_url"]),
        gold=gold,
        products=products,
        customers=customers,
        successes=_pipeline_successes(aws["cloudwatch"], since),
        processed=[o["Key"] for o in processed],
    )


def _row(day: Day, expected: Expectation, seen: Observation, problems: Sequence[str]) -> str:
    transform = seen.stages.get("transform", {})
    verdict = {"loaded": "loaded", "noop": "no-op", "rejected": "rejected"}[expected.kind]
    return _line(
        [
            str(day.number),
            day.ingest_date.isoformat(),
            day.delivery,
            seen.outcome,
            *(_cell(transform.get(f)) for f in ("rows_in", "rows_clean", "rows_returns", "rows_quarantined")),
            _cell(None if seen.gold is None else len(seen.gold)),
            _cell(seen.gold_total),
            f"{verdict}: " + ("ok" if not problems else f"MISMATCH ({len(problems)})"),
        ]
    )


def rehearse(dist_dir: Path, workdir: Path, out: Any = None) -> int:
    """Run the five days; print the table to ``out`` (stdout); 0 when every day matched, 1 if not."""
    out = out or sys.stdout
    started = time.monotonic()
    dist = check_dist(dist_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = workdir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    task_bin = _task_venv(dist, workdir / "task-venv")
    glue_python = _glue_python(workdir / "glue-python")
    days = scenario()
    failures: list[str] = []
    with _services() as aws:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        context = _context(run_dir, dist, aws, task_bin, glue_python)
        context_path = run_dir / "context.json"
        context_path.write_text(json.dumps(context, indent=2), encoding="utf-8")
        substitutions = {
            **local_run.LOCAL_SUBSTITUTIONS,
            "AlertTopicArn": aws["topic_arn"],
            "GlueJobName": context["glue"]["job_name"],
            "DbtTarget": DBT_TARGET,
        }
        definition = _definition(run_dir / "state_machine.asl.json", substitutions)
        overrides = {
            name: [
                sys.executable,
                "-m",
                "orchestration.rehearsal",
                "task",
                local_run.resource_kind(state["Resource"]),
            ]
            for name, state in json.loads(definition.read_text(encoding="utf-8"))["States"].items()
            if state["Type"] == "Task"
        }
        ledger = Ledger(float(context["glue"]["default_arguments"].get("--max_quarantine_ratio", "0.05")))
        print(
            f"rehearsal: {dist.wheel.name} ({dist.wheel_sha256[:12]}), {len(days)} days; "
            f"moto {aws['endpoint']}, fake Kaggle {aws['kaggle'].url}",
            file=out,
            flush=True,
        )
        print(_line([title for title, _ in COLUMNS]), file=out, flush=True)
        before: Observation | None = None
        for day in days:
            folder = run_dir / "days" / f"day{day.number}"
            folder.mkdir(parents=True)
            raw = folder / layout.RAW_FILE_NAME
            raw.write_bytes(day.csv)
            expected = ledger.expect(day, reference_batch(raw, folder / "reference", day.ingest_date))
            aws["kaggle"].csv_bytes = day.csv
            try:
                execution = local_run.run_execution(
                    {"ingest_date": day.ingest_date.isoformat(), "source": "kaggle"},
                    lake=run_dir / "unused-local-lake",  # every stand-in sets its own RETAIL_LAKE
                    workdir=run_dir / "sfn",
                    overrides=overrides,
                    env={CONTEXT_VAR: str(context_path)},
                    name=f"rehearsal-day{day.number}-{uuid.uuid4().hex[:8]}",
                    definition_path=definition,
                )
            except RuntimeError as exc:
                raise RehearsalError(str(exc).splitlines()[0]) from None
            seen = _observe(execution, day, aws, Path(context["duckdb_path"]), since)
            problems = compare(day, expected, seen, before)
            before = seen
            print(_row(day, expected, seen, problems), file=out, flush=True)
            failures += [f"day {day.number}: {p}" for p in problems]
            if problems:
                failures.append(
                    f"day {day.number}: the tasks' output is in {run_dir / 'logs'}/{execution.name}.*.log"
                )
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    if failures:
        print("mismatches:", *(f"  {failure}" for failure in failures), sep="\n", file=out)
        print(f"rehearsal: FAILED after {minutes}m{seconds:02d}s", file=out)
        return 1
    print(f"rehearsal: every day as expected, in {minutes}m{seconds:02d}s", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["task"]:
        return run_task(args[1] if len(args) > 1 else "")
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.rehearsal",
        description="Five days of the packaged pipeline in the real state machine, on loopback AWS and Kaggle.",
    )
    parser.add_argument(
        "--dist", type=Path, default=REPO / "dist", help="what make package built (default: dist)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "data" / "rehearsal",
        help="scratch, logs and the cached task venv",
    )
    options = parser.parse_args(args)
    try:
        return rehearse(options.dist.resolve(), options.workdir.resolve())
    except RehearsalError as exc:
        print(f"rehearsal: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
