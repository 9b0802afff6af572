"""The access table: what each component asks of AWS, from its own code, put to its role in the template.

=============  =================  ==============================================================================
Component      Role               How its calls are found
=============  =================  ==============================================================================
ingest         IngestTaskRole     the image's entrypoint (``orchestration.entrypoint.main``) runs the Ingest
                                  state's command in-process, with the task definition's environment: a new day,
                                  the same bytes on the next day, a corrected re-delivery
build          BuildTaskRole      the same for the Build state's command (``build --target prod``), dbt stood in
                                  at its boundary (its SQL goes to Redshift, not S3; the COPYs are the COPY role's)
transform      GlueJobRole        glue/job.py's lake calls for one run, made through the real ``S3Lake`` in the
                                  job's order (Spark cannot reach S3 here), and Spark's own reads and writes
                                  modelled as EMRFS makes them; a first day, a re-run, an unchanged day
copy           RedshiftCopyRole   tests/integration/test_access_copy.py: the COPYs of the rendered Redshift plan
state machine  StateMachineRole   each Task state's Resource mapped to the IAM actions AWS documents for it
=============  =================  ==============================================================================

S3, CloudWatch and Secrets Manager are moto, in-process. Hooks on boto3's default session see every call the
code's clients make: each becomes the IAM requests S3 (or CloudWatch) authorizes for it
(``cfn_template.s3_requests``, plus SSE-KMS's), put to the role by the evaluator of tests/fakes/cfn_template.py,
conditions included. A denied request is answered as S3 answers it (403), so the code meets what it would meet
on AWS; so is a HEAD or GET of a key that does not exist when the role may not list the whole bucket (S3 says
403 then, not 404: ``S3Lake.exists`` lists with the key as prefix instead, retail_core/lake.py).

The checks, per component: it runs to the end; no request is denied; what it asks for, with dates, run ids and
part numbers generalised, is exactly its rows of ACCESS below (so a new call in the code fails here until the
table names it); and every S3 Allow of its role on the lake is used by some call (least privilege).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from orchestration import entrypoint
from retail_core import dialect, layout, lease, metrics
from retail_core.config import Settings
from retail_core.lake import S3Lake
from tests.fakes import cfn_template
from tests.fakes.cfn_template import Request

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOYED = cfn_template.DEPLOYED
REGION, ACCOUNT = DEPLOYED["AWS::Region"], DEPLOYED["AWS::AccountId"]
DAY_1, DAY_2, DAY_3 = dt.date(2024, 5, 6), dt.date(2024, 5, 7), dt.date(2024, 5, 8)
HEADER = ",".join(dialect.RAW_COLUMNS)


def _resources() -> dict[str, Any]:
    return cfn_template.load()["Resources"]


def _value(logical_id: str, attribute: str | None = None) -> str:
    """A resource's Ref (or GetAtt) as evaluate() gives it for the deployed stack."""
    expression = {"Fn::GetAtt": [logical_id, attribute]} if attribute else {"Ref": logical_id}
    return cfn_template.evaluate(expression)


LAKE_BUCKET = _value("LakeBucket")
LAKE_ARN = f"arn:aws:s3:::{LAKE_BUCKET}"
KEY_ARN = _value("PipelineKey", "Arn")


def test_the_lake_is_the_bucket_encrypted_with_the_pipeline_key_and_every_task_writes_there():
    """What the requests below assume: SSE-KMS with PipelineKey (so every get decrypts and every put asks for a
    data key), and RETAIL_LAKE the bucket's root."""
    bucket = _resources()["LakeBucket"]["Properties"]
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    default = rule["ServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    assert cfn_template.evaluate(default["KMSMasterKeyID"]) == KEY_ARN
    for task in ("IngestTaskDefinition", "BuildTaskDefinition"):
        assert cfn_template.task_environment(task)["RETAIL_LAKE"] == f"s3://{LAKE_BUCKET}"
    glue_args = _resources()["GlueJob"]["Properties"]["DefaultArguments"]
    assert cfn_template.evaluate(glue_args["--lake"]) == f"s3://{LAKE_BUCKET}"


# --- recording what the code asks for -------------------------------------------------------------------------


@dataclasses.dataclass
class Call:
    """One API call the code made: its requests to IAM, those the role denied, and what S3 answered instead of
    moto (403), if anything."""

    service: str
    operation: str
    params: dict[str, Any]
    requests: list[Request]
    denied: list[Request]
    answered: int | None

    def __str__(self) -> str:
        answer = f" -> {self.answered}" if self.answered else ""
        return f"{self.operation}({_brief(self.params)}){answer}"


def _brief(params: dict[str, Any]) -> str:
    keys = ("Key", "Prefix", "CopySource", "Namespace", "SecretId")
    return ", ".join(f"{k}={params[k]!r}" for k in keys if k in params)


class Recorder:
    """The role's view of AWS for the code: every call recorded, and answered as AWS would answer the role."""

    def __init__(self, role: str, admin: Any) -> None:
        self.role = role
        self.statements = cfn_template.role_statements(role)
        self.admin = admin  # what is really in the lake, whatever the role may see
        self.calls: list[Call] = []
        self.outcomes: list[str] = []  # one line per run of the component that did not end well
        self._lock = threading.Lock()

    def _add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _denied(self, requests: list[Request]) -> list[Request]:
        return [r for r in requests if not cfn_template.allows(self.statements, r)]

    def _present(self, key: str) -> bool:
        page = self.admin.list_objects_v2(Bucket=LAKE_BUCKET, Prefix=key, MaxKeys=1)
        return any(o["Key"] == key for o in page.get("Contents", []))

    def s3(self, operation: str, params: dict[str, Any]) -> int | None:
        """Record one S3 call; the status S3 would answer the role instead of moto, or None to let moto answer."""
        requests = cfn_template.s3_requests(operation, params)
        assert params["Bucket"] == LAKE_BUCKET, f"{operation} outside the lake: {params['Bucket']}"
        missing = operation in ("HeadObject", "GetObject") and not self._present(params["Key"])
        if not missing:
            requests += cfn_template.kms_requests(operation, KEY_ARN)
        denied = self._denied(requests)
        answered = 403 if denied else None
        if missing and not denied:
            answered = cfn_template.s3_missing_key_answer(self.statements, LAKE_BUCKET)
            answered = None if answered == 404 else answered  # moto says 404 itself
        self._add(Call("s3", operation, params, requests, denied, answered))
        if operation == "HeadObject" and params.get("ChecksumMode") == "ENABLED":
            # S3Lake.put_file's check of what landed: on a mismatch it deletes the object, and a multipart upload
            # that fails half way is aborted (s3transfer). S3Lake._place's check of a copy (promote): on a
            # mismatch promote deletes what it placed; a copy is one call, with nothing to abort. Neither
            # failure happens here; both need the role's leave.
            key = f"{LAKE_ARN}/{params['Key']}"
            with self._lock:
                before = [c for c in self.calls[:-1] if c.params.get("Key") == params["Key"]]
            copied = bool(before) and before[-1].operation == "CopyObject"
            failing = [Request("s3:DeleteObject", key)]
            if not copied:
                failing.append(Request("s3:AbortMultipartUpload", key))
            what = "promote failing" if copied else "put_file failing"
            self._add(Call("s3", what, params, failing, self._denied(failing), None))
        return answered

    def cloudwatch(self, operation: str, params: dict[str, Any]) -> int | None:
        assert operation == "PutMetricData", f"the code calls CloudWatch's {operation}: add it to the table"
        request = Request("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", params["Namespace"]),))
        denied = self._denied([request])
        self._add(Call("cloudwatch", operation, params, [request], denied, 403 if denied else None))
        return 403 if denied else None

    def secret(self, secret_id: str) -> bool:
        """Record a GetSecretValue (Secrets Manager decrypts with the secret's key on the caller's behalf)."""
        requests = [
            Request("secretsmanager:GetSecretValue", secret_id),
            Request("kms:Decrypt", KEY_ARN, cfn_template.via("secretsmanager")),
        ]
        denied = self._denied(requests)
        self._add(Call("secretsmanager", "GetSecretValue", {"SecretId": secret_id}, requests, denied, None))
        return not denied

    def denied(self) -> list[str]:
        return [f"{c}: denies {', '.join(map(str, c.denied))}" for c in self.calls if c.denied]


class FakeSecrets:
    """Secrets Manager for the entrypoint: the task definition names each secret by its Ref (an ARN)."""

    def __init__(self, recorder: Recorder, values: dict[str, dict[str, str]]) -> None:
        self.recorder = recorder
        self.values = values

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        from botocore.exceptions import ClientError

        if not self.recorder.secret(SecretId):
            raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "GetSecretValue")
        return {"SecretString": json.dumps(self.values[SecretId])}


@contextlib.contextmanager
def aws_as(role: str) -> Iterator[Recorder]:
    """moto in-process with the lake bucket, and boto3's default session making every call as ``role``."""
    import boto3
    from botocore.awsrequest import AWSResponse
    from moto import mock_aws

    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    with mock.patch.dict(os.environ, credentials), mock_aws():
        admin = boto3.session.Session(region_name=REGION).client("s3")
        admin.create_bucket(Bucket=LAKE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        recorder = Recorder(role, admin)

        def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["access_params"] = dict(params)

        def decide(model: Any, context: dict[str, Any], **kwargs: Any) -> Any:
            service = model.service_model.service_name
            handler = recorder.s3 if service == "s3" else recorder.cloudwatch
            status = handler(model.name, context["access_params"])
            if status is None:
                return None
            code = "403" if model.name == "HeadObject" else "AccessDenied"
            parsed = {
                "Error": {"Code": code, "Message": "Access Denied"},
                "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
            }
            return AWSResponse("https://s3.amazonaws.com", status, {}, None), parsed

        session = boto3.setup_default_session(region_name=REGION) or boto3.DEFAULT_SESSION
        for service in ("s3", "cloudwatch"):
            session.events.register(f"provide-client-params.{service}", keep)
            session.events.register(f"before-call.{service}", decide)
        try:
            yield recorder
        finally:
            boto3.DEFAULT_SESSION = None


def put(admin: Any, key: str, body: bytes | str = b"x") -> None:
    admin.put_object(Bucket=LAKE_BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def publish(admin: Any, zone: str, day: dt.date, generation: str) -> None:
    """A partition of ``zone`` as the transform publishes it, written with admin rights: staged part files and
    _SUCCESS, then ``S3Lake.promote`` (part-*-<generation>.tsv, the COPY manifest, _manifest.json last)."""
    staging = layout.staging_prefix(zone, day, generation)
    put(admin, f"{staging}/part-00000{dialect.FILE_SUFFIX}", "a\tb\n")
    put(admin, f"{staging}/{layout.SUCCESS_NAME}", b"")
    S3Lake(f"s3://{LAKE_BUCKET}", client=admin).promote(
        staging, layout.zone_prefix(zone, day), generation=generation
    )


# --- the ECS tasks, through the image's entrypoint ----------------------------------------------------------------


def _in_process(command: Sequence[str], env: dict[str, str]) -> int:
    """The entrypoint's runner, in this process: ``python -m retail_pipeline.cli ARGS`` with ``env``."""
    from retail_pipeline import cli

    assert list(command[:3]) == [sys.executable, "-m", "retail_pipeline.cli"], command
    with mock.patch.dict(os.environ, env, clear=True):
        return cli.main(list(command[3:]))


def task_env(task_definition: str, scratch: Path, **overrides: str) -> dict[str, str]:
    """The task's environment: the image's (its scratch volume a folder here), the task definition's, the state
    machine's overrides."""
    image = {
        "PATH": os.environ["PATH"],
        "TMPDIR": str(scratch),
        "HOME": str(scratch),
        "DBT_TARGET_PATH": str(scratch / "dbt" / "target"),
        "DBT_LOG_PATH": str(scratch / "dbt" / "logs"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    return {**image, **cfn_template.task_environment(task_definition), **overrides}


def _csv(path: Path, lines: int) -> Path:
    rows = [
        f"53636{n},85123A,WHITE HANGING HEART T-LIGHT HOLDER,{n + 1},2010-12-01 08:26:00,2.55,17850.0,United Kingdom"
        for n in range(lines)
    ]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def expired_lease(admin: Any, day: dt.date | None) -> None:
    """The lease of ``day`` (None: the warehouse's) as a holder that died left it: past its expiry
    (retail_core/lease.py)."""
    holder = {"stage": "transform", "run_id": "dead", "token": "t", "expires_at": "2000-01-01T00:00:00+00:00"}
    put(admin, layout.lease_key(day) if day else layout.warehouse_lease_key(), json.dumps(holder))


def run_ingest(tmp_path: Path) -> Recorder:
    """Three days of the Ingest state: new data; the same bytes the next day; day 1 corrected, its lease left
    behind by a writer that died (taken over: read, then replaced if it is still the one read)."""
    first, corrected = _csv(tmp_path / "first.csv", 3), _csv(tmp_path / "corrected.csv", 4)
    kaggle = _value("KaggleSecret")
    with aws_as(_role_of("IngestTaskDefinition")) as recorder:
        secrets = FakeSecrets(recorder, {kaggle: {"username": "someone", "key": "k" * 32}})
        for day, csv in [(DAY_1, first), (DAY_2, first), (DAY_1, corrected)]:
            if csv is corrected:
                expired_lease(recorder.admin, day)
            scratch = tmp_path / f"scratch-{day}-{csv.stem}"
            scratch.mkdir()
            env = task_env("IngestTaskDefinition", scratch, RETAIL_RUN_ID=f"run-{day}-{csv.stem}")
            # The Ingest state's command (orchestration/state_machine.asl.json), the file source for Kaggle's.
            command = ["ingest", "--source", "file", "--ingest-date", day.isoformat(), "--path", str(csv)]
            code = entrypoint.main(command, env, runner=_in_process, secrets_client=secrets)
            if code:
                recorder.outcomes.append(f"ingest of {day} ({csv.name}) exited {code}")
    return recorder


def _dbt_stand_in(target: Path) -> Callable[..., tuple[Any, list[str], list[str]]]:
    """dbt at its boundary: an empty warehouse, every operation and build passing, its artifacts written."""
    from warehouse import figures
    from warehouse.load import STATE_MARKER

    def invoke(args: Sequence[str], env: dict[str, str]) -> tuple[Any, list[str], list[str]]:
        messages = []
        if list(args[:2]) == ["run-operation", "prepare_sources"]:
            messages.append(STATE_MARKER + json.dumps({"loaded": {}, "pending": []}))
        if list(args[:2]) == ["run-operation", "gold_figures"]:
            messages.append(figures.MARKER + json.dumps({"rows": {"customers": 1}, "monthly": []}))
        if args[0] in ("build", "docs"):
            target.mkdir(parents=True, exist_ok=True)
            for name in entrypoint.ARTIFACTS:
                (target / name).write_text("{}")
        return SimpleNamespace(success=True, exception=None, result=None), messages, []

    return invoke


def run_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The Build state on a lake with an accepted batch (day 1, published by the lake's promote), a batch whose
    gate failed (day 2, nothing published) and a day with no run report (day 3), the warehouse's lease left behind
    by a build that died (taken over: read, then replaced if it is still the one read)."""
    from warehouse import project

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = task_env(
        "BuildTaskDefinition",
        scratch,
        RETAIL_RUN_ID="run-build",
        RETAIL_DBT_SELECT="",
        RETAIL_DBT_FULL_REFRESH="false",
    )
    monkeypatch.setattr(project, "invoke_dbt_logged", _dbt_stand_in(Path(env["DBT_TARGET_PATH"])))
    with aws_as(_role_of("BuildTaskDefinition")) as recorder:
        admin = recorder.admin
        publish(admin, layout.PROCESSED_ZONE, DAY_1, "gen-1")
        publish(admin, layout.RETURNS_ZONE, DAY_1, "gen-1")
        report = {"status": "succeeded", "run_id": "run-1", "generation": "gen-1", "rows_returns": 1}
        put(admin, layout.run_report_key(DAY_1), json.dumps(report))
        put(admin, layout.run_report_key(DAY_2), json.dumps({"status": "failed_gate", "run_id": "run-2"}))
        # A day whose transform died before its report: quality/ holds only its Data Docs.
        put(admin, f"{layout.quality_prefix(DAY_3)}/data_docs/index.html", "<html/>")
        expired_lease(admin, None)
        # No secret: the task logs in to Redshift with its role (dbt-redshift's GetCredentials, made inside dbt and
        # checked by tests/integration/test_build_login.py); a read of any secret would be recorded here.
        secrets = FakeSecrets(recorder, {})
        # The Build state's command: States.Array('build', '--target', '${DbtTarget}'), DbtTarget prod.
        command = ["build", "--target", _substitution("DbtTarget")]
        code = entrypoint.main(command, env, runner=_in_process, secrets_client=secrets)
        if code:
            recorder.outcomes.append(f"build exited {code}")
    return recorder


def _role_of(task_definition: str) -> str:
    return _resources()[task_definition]["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]


def _substitution(name: str) -> str:
    return str(
        cfn_template.evaluate(_resources()["StateMachine"]["Properties"]["DefinitionSubstitutions"][name])
    )


# --- the Glue job: its lake calls through S3Lake, Spark's own I/O modelled -----------------------------------------

# What glue/job.py asks of its lake, in one run with --ingest_date (the state machine always passes one). The
# replay below makes these calls; a lake method the job (or the script) calls and this does not list fails
# test_the_glue_replay_covers_every_lake_call_of_the_job, so the replay cannot fall behind the job unnoticed.
GLUE_LAKE_CALLS = {
    "exists": "pick_partition: the day's raw manifest, else its _unchanged.json marker",
    "read_json": "the raw manifest; the unchanged marker",
    "uri": "no call: a location for Spark and messages",
    "delete_prefix": "a killed run's staging folders, before and after; the Data Docs before rewriting them",
    "sweep_partition": "files a killed run placed in processed-data/, returns/ and quarantine/ that no manifest names",
    "promote": "staging -> processed-data/, returns/ and quarantine/ under new names, the partition manifest last",
    "put_file": "the Great Expectations Data Docs, one object per file",
    "write_json": "the run report",
    "write_bytes": "the run page (report.html) beside the report",
}
# Lake methods of the job that a state machine run never reaches, and why.
GLUE_LAKE_CALLS_NOT_REACHED = {
    "partitions": "pick_partition without --ingest_date (a manual run), and the job bookmark's candidates",
    "path": "a local lake only",
}


def spark_reads(key: str) -> list[Request]:
    """EMRFS reading one object: its status (a HEAD; a listing of the key as a prefix when it might be a
    folder), then ranged GETs."""
    return [
        Request("s3:GetObject", f"{LAKE_ARN}/{key}"),
        Request("s3:ListBucket", LAKE_ARN, (("s3:prefix", f"{key}/"),)),
        Request("kms:Decrypt", KEY_ARN, cfn_template.via("s3")),
    ]


def spark_writes(folder: str, parts: int) -> list[Request]:
    """EMRFS writing a folder in overwrite mode (io.write_tsv): list and clear it, put each part (multipart for
    large ones, aborted on failure) and _SUCCESS, then _rename_parts lists it and renames each part (a copy and
    a delete)."""
    requests = [Request("s3:ListBucket", LAKE_ARN, (("s3:prefix", f"{folder}/"),))]
    for number in range(parts):
        written, renamed = (
            f"{folder}/part-{number:05d}-c000.csv",
            f"{folder}/part-{number:05d}{dialect.FILE_SUFFIX}",
        )
        requests += [
            Request("s3:PutObject", f"{LAKE_ARN}/{written}"),
            Request("s3:AbortMultipartUpload", f"{LAKE_ARN}/{written}"),
            Request("s3:GetObject", f"{LAKE_ARN}/{written}"),
            Request("s3:PutObject", f"{LAKE_ARN}/{renamed}"),
            Request("s3:DeleteObject", f"{LAKE_ARN}/{written}"),
        ]
    requests += [Request("s3:PutObject", f"{LAKE_ARN}/{folder}/{layout.SUCCESS_NAME}")]
    s3 = cfn_template.via("s3")
    return [*requests, Request("kms:GenerateDataKey", KEY_ARN, s3), Request("kms:Decrypt", KEY_ARN, s3)]


def _modelled(recorder: Recorder, what: str, requests: list[Request]) -> None:
    recorder._add(Call("spark", what, {}, requests, recorder._denied(requests), None))


def glue_run(recorder: Recorder, day: dt.date, docs: Path, run_id: str) -> None:
    """One run of the job for ``day`` as glue/job.py makes it (transform, then _finish), through ``S3Lake``."""
    from glue import job

    lake = S3Lake(f"s3://{LAKE_BUCKET}")
    settings = Settings(lake=f"s3://{LAKE_BUCKET}")
    try:
        date = job.pick_partition(lake, day)
    except job.NothingNew:
        metrics.emit(settings, "transform", {"noop": 1, "success": 1}, run_id=run_id, ingest_date=day)
        return
    with lease.held(lake, date, stage="transform", run_id=run_id) as held:
        _glue_run_date(recorder, lake, date, docs, run_id, held)
    metrics.emit(settings, "transform", {"rows_in": 3, "success": 1}, run_id=run_id, ingest_date=date)


def _glue_run_date(
    recorder: Recorder, lake: S3Lake, date: dt.date, docs: Path, run_id: str, held: lease.Lease
) -> None:
    """glue/job.py's _transform_date and _finish, under the date's lease."""
    from glue import io as tio
    from glue import job

    lake.read_json(layout.raw_manifest_key(date))
    tio.read_head(lake, layout.raw_key(date))
    _modelled(recorder, "spark read", spark_reads(layout.raw_key(date)))
    attempt = f"attempt-{run_id}"
    staged = {zone: layout.staging_prefix(zone, date, attempt) for zone in job.ZONES}
    published = {zone: layout.zone_prefix(zone, date) for zone in job.ZONES}
    for zone in staged:
        lake.delete_prefix(layout.staging_prefix(zone, date))
        lake.sweep_partition(published[zone])
    for folder in staged.values():  # what Spark leaves in each staging folder, then its modelled requests
        put(recorder.admin, f"{folder}/part-00000{dialect.FILE_SUFFIX}")
        put(recorder.admin, f"{folder}/{layout.SUCCESS_NAME}", b"")
        _modelled(recorder, f"spark write {folder}", spark_writes(folder, parts=1))
    meta = {"dataset": layout.DATASET, "ingest_date": date.isoformat(), "run_id": run_id}
    for zone in job.ZONES:
        held.check()
        lake.promote(staged[zone], published[zone], generation=attempt, meta={**meta, "rows": 1})
    quality_prefix = layout.quality_prefix(date)
    job._publish_docs(lake, docs, f"{quality_prefix}/{job.DATA_DOCS_DIR}")
    report = {"status": job.SUCCEEDED, "run_id": run_id, "generation": attempt}
    lake.write_json(layout.run_report_key(date), report)
    job._write_run_page(lake, date, report, run_id)
    for zone in staged:
        lake.delete_prefix(layout.staging_prefix(zone, date))


def glue_code_reads() -> list[Request]:
    """Glue reads the job's script, --extra-py-files and the wheels of --additional-python-modules from the
    artifact bucket with the job's role."""
    job = _resources()["GlueJob"]["Properties"]
    locations = [
        job["Command"]["ScriptLocation"],
        job["DefaultArguments"]["--extra-py-files"],
        job["DefaultArguments"]["--additional-python-modules"],
    ]
    uris = [u for location in locations for u in str(cfn_template.evaluate(location)).split(",")]
    return [Request("s3:GetObject", "arn:aws:s3:::" + u.removeprefix("s3://")) for u in uris]


def run_transform(tmp_path: Path) -> Recorder:
    """A first day, the same day again (a re-run: the outputs exist; the lease a dead run left is taken over),
    and a day the ingest found unchanged."""
    docs = tmp_path / "data_docs"
    docs.mkdir()
    (docs / "index.html").write_text("<html/>")
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "RETAIL_METRICS": "cloudwatch"}
    with mock.patch.dict(os.environ, env), aws_as(_role_of_glue()) as recorder:
        put(recorder.admin, layout.raw_key(DAY_1), _csv(tmp_path / "raw.csv", 3).read_bytes())
        put(recorder.admin, layout.raw_manifest_key(DAY_1), json.dumps({"rows": 3, "sha256": "0" * 64}))
        put(recorder.admin, layout.raw_unchanged_key(DAY_2), json.dumps({"same_as": DAY_1.isoformat()}))
        recorder._add(
            Call("glue", "job code", {}, glue_code_reads(), recorder._denied(glue_code_reads()), None)
        )
        for run, day in enumerate([DAY_1, DAY_1, DAY_2]):
            if run == 1:
                expired_lease(recorder.admin, day)
            try:
                glue_run(recorder, day, docs, run_id=f"run-{run}")
            except Exception as exc:  # what the job would have failed with
                recorder.outcomes.append(f"transform of {day} raised {exc!r}")
    return recorder


def _role_of_glue() -> str:
    return _resources()["GlueJob"]["Properties"]["Role"]["Fn::GetAtt"][0]


# --- the table --------------------------------------------------------------------------------------------------

_GENERAL = [
    (re.compile(r"ingest_date=\d{4}-\d{2}-\d{2}"), "ingest_date=*"),
    (re.compile(r"run_id=[^/]+"), "run_id=*"),
    (re.compile(r"(run_log/)[^/]+\.json"), r"\1*.json"),
    (re.compile(r"(_staging/ingest_date=\*/)[^/]+"), r"\1*"),
    (re.compile(r"part-\d{5}"), "part-*"),
    # A generation's names (layout.generation_name, layout.copy_manifest_name): part-*-<gen>.tsv and so on.
    (re.compile(r"(part-\*|_copy_manifest)-[^/]+(\.tsv|\.json)$"), r"\1-*\2"),
]


def general(request: Request) -> tuple[str, str]:
    """A request as a row of the table: (action, what), dates, run ids, part numbers and generations as *."""
    what = request.resource
    if request.resource.startswith(f"{LAKE_ARN}/"):
        what = request.resource.removeprefix(f"{LAKE_ARN}/")
    elif request.resource == LAKE_ARN:
        context = dict(request.context)
        what = f"prefix {context['s3:prefix']}" if "s3:prefix" in context else "(no prefix)"
    elif request.resource == KEY_ARN:
        what = "the pipeline key"
    elif request.action == "cloudwatch:PutMetricData":
        what = f"namespace {dict(request.context)['cloudwatch:namespace']}"
    elif request.resource.startswith(f"arn:aws:s3:::{DEPLOYED['ArtifactBucket']}/"):
        what = "ArtifactBucket/" + request.resource.split("/", 1)[1]
    for pattern, replacement in _GENERAL:
        what = pattern.sub(replacement, what)
    return request.action, what


def table(recorder: Recorder) -> set[tuple[str, str]]:
    return {general(r) for call in recorder.calls for r in call.requests}


# Every request each component makes, as (action, what) with dates, run ids and part numbers as *, and why. A
# prefix is what a listing carries as s3:prefix; "the pipeline key" is PipelineKey (SSE-KMS: S3 and Secrets
# Manager use it on the caller's behalf).
_KEY = {("kms:Decrypt", "the pipeline key"): "reading an SSE-KMS object or secret"}
_NEW_OBJECT = {("kms:GenerateDataKey", "the pipeline key"): "writing an SSE-KMS object"}
_METRICS = {
    (
        "s3:PutObject",
        "runs/online_retail/run_log/*.json",
    ): "the run log: one object per stage and run (metrics.py)",
    ("cloudwatch:PutMetricData", "namespace OnlineRetailPipeline"): "the stage's figures (metrics.py)",
}
_LEASE = {
    (
        "s3:PutObject",
        "leases/online_retail/ingest_date=*.json",
    ): "the date's lease: created (If-None-Match), renewed or taken over (If-Match)",
    (
        "s3:GetObject",
        "leases/online_retail/ingest_date=*.json",
    ): "a lease already there: whose, and whether it expired",
    ("s3:DeleteObject", "leases/online_retail/ingest_date=*.json"): "the lease released (If-Match)",
}
_RAW = "raw-data/online_retail/ingest_date=*"
_STAGING = "{zone}/online_retail/_staging/ingest_date=*"
ACCESS: dict[str, dict[tuple[str, str], str]] = {
    "ingest": {
        (
            "secretsmanager:GetSecretValue",
            _value("KaggleSecret"),
        ): "the entrypoint reads the Kaggle credentials",
        ("s3:ListBucket", "prefix raw-data/online_retail/"): "complete_partitions: look for identical bytes",
        ("s3:GetObject", f"{_RAW}/_manifest.json"): "exists() and read of each complete partition's manifest",
        ("s3:ListBucket", f"prefix {_RAW}/_manifest.json"): "exists() of a manifest not there yet (S3's 403)",
        (
            "s3:DeleteObject",
            f"{_RAW}/_manifest.json",
        ): "a re-delivery deletes the old manifest first: the partition reads as incomplete meanwhile",
        ("s3:PutObject", f"{_RAW}/online_retail.csv"): "the raw CSV (put_file)",
        ("s3:GetObject", f"{_RAW}/online_retail.csv"): "put_file checks the checksum S3 stored",
        ("s3:DeleteObject", f"{_RAW}/online_retail.csv"): "put_file deletes an object whose checksum differs",
        ("s3:AbortMultipartUpload", f"{_RAW}/online_retail.csv"): "a multipart upload that failed",
        ("s3:PutObject", f"{_RAW}/_manifest.json"): "the manifest, last",
        ("s3:PutObject", f"{_RAW}/_unchanged.json"): "the marker of a day whose bytes already landed",
        **_LEASE,
        **_KEY,
        **_NEW_OBJECT,
        **_METRICS,
    },
    "build": {
        (
            "s3:ListBucket",
            "prefix quality/online_retail/",
        ): "accepted_batches: the dates with a quality folder",
        (
            "s3:GetObject",
            "quality/online_retail/ingest_date=*/run_report.json",
        ): "exists() and read of a report",
        (
            "s3:ListBucket",
            "prefix quality/online_retail/ingest_date=*/run_report.json",
        ): "exists(): no report",
        (
            "s3:GetObject",
            "processed-data/online_retail/ingest_date=*/_manifest.json",
        ): "read_partition: exists() and read of the batch's manifest (its files, its COPY manifest)",
        (
            "s3:GetObject",
            "returns/online_retail/ingest_date=*/_manifest.json",
        ): "read_partition: the same for the batch's returns",
        (
            "s3:PutObject",
            "quality/online_retail/ingest_date=*/report.html",
        ): "write_run_page: the run page again, with gold's rows and monthly revenue",
        (
            "s3:PutObject",
            "leases/online_retail/warehouse.json",
        ): "the warehouse's lease: created (If-None-Match), renewed or taken over (If-Match)",
        (
            "s3:GetObject",
            "leases/online_retail/warehouse.json",
        ): "a lease already there: whose, and whether it expired",
        ("s3:DeleteObject", "leases/online_retail/warehouse.json"): "the lease released (If-Match)",
        **{
            (action, f"dbt-artifacts/online_retail/run_id=*/{name}"): why
            for name in entrypoint.ARTIFACTS
            for action, why in [
                ("s3:PutObject", "ship_artifacts (put_file)"),
                ("s3:GetObject", "put_file checks the checksum S3 stored"),
                ("s3:DeleteObject", "put_file deletes an object whose checksum differs"),
                ("s3:AbortMultipartUpload", "a multipart upload that failed"),
            ]
        },
        **_KEY,
        **_NEW_OBJECT,
        **_METRICS,
    },
    "transform": {
        ("s3:GetObject", "ArtifactBucket/" + DEPLOYED["GlueScriptKey"]): "Glue loads the job script",
        ("s3:GetObject", "ArtifactBucket/" + DEPLOYED["GlueExtraPyFilesKey"]): "Glue loads --extra-py-files",
        **{
            (
                "s3:GetObject",
                "ArtifactBucket/" + uri.split("/", 3)[3],
            ): "Glue installs the wheelhouse (pip --no-index)"
            for uri in DEPLOYED["GluePythonModules"].split(",")
        },
        ("s3:GetObject", f"{_RAW}/_manifest.json"): "pick_partition: exists(); then the manifest read",
        ("s3:ListBucket", f"prefix {_RAW}/_manifest.json"): "exists() of a day the ingest found unchanged",
        ("s3:GetObject", f"{_RAW}/_unchanged.json"): "that day's marker: exists() and read",
        ("s3:GetObject", f"{_RAW}/online_retail.csv"): "read_head (a ranged GET), then Spark's read",
        ("s3:ListBucket", f"prefix {_RAW}/online_retail.csv/"): "Spark (EMRFS): is the path a folder?",
        **{
            row: why
            for zone in ("processed-data", "returns", "quarantine")
            for row, why in {
                (
                    "s3:ListBucket",
                    f"prefix {_STAGING.format(zone=zone)}/",
                ): "delete_prefix: a killed run's staging",
                (
                    "s3:ListBucket",
                    f"prefix {_STAGING.format(zone=zone)}/*/",
                ): "Spark's write, the renames, promote",
                ("s3:PutObject", f"{_STAGING.format(zone=zone)}/*/part-*-c000.csv"): "Spark writes a part",
                (
                    "s3:AbortMultipartUpload",
                    f"{_STAGING.format(zone=zone)}/*/part-*-c000.csv",
                ): "a failed part",
                ("s3:GetObject", f"{_STAGING.format(zone=zone)}/*/part-*-c000.csv"): "_rename_parts: copy",
                (
                    "s3:DeleteObject",
                    f"{_STAGING.format(zone=zone)}/*/part-*-c000.csv",
                ): "_rename_parts: delete",
                ("s3:PutObject", f"{_STAGING.format(zone=zone)}/*/part-*.tsv"): "_rename_parts: the new name",
                ("s3:PutObject", f"{_STAGING.format(zone=zone)}/*/_SUCCESS"): "Spark's marker",
                ("s3:GetObject", f"{_STAGING.format(zone=zone)}/*/part-*.tsv"): "promote copies each part",
                ("s3:DeleteObject", f"{_STAGING.format(zone=zone)}/*/part-*.tsv"): "promote empties staging",
                ("s3:DeleteObject", f"{_STAGING.format(zone=zone)}/*/_SUCCESS"): "promote empties staging",
                (
                    "s3:GetObject",
                    f"{zone}/online_retail/ingest_date=*/_manifest.json",
                ): "read_partition (sweep, promote): exists() and read of the manifest",
                (
                    "s3:ListBucket",
                    f"prefix {zone}/online_retail/ingest_date=*/_manifest.json",
                ): "... on a first day (S3's 403)",
                (
                    "s3:ListBucket",
                    f"prefix {zone}/online_retail/ingest_date=*/",
                ): "sweep_partition lists the folder",
                (
                    "s3:PutObject",
                    f"{zone}/online_retail/ingest_date=*/part-*-*.tsv",
                ): "promote: the new parts, beside the old under the generation's names (CopyObject)",
                (
                    "s3:GetObject",
                    f"{zone}/online_retail/ingest_date=*/part-*-*.tsv",
                ): "promote checks each copy (HEAD)",
                (
                    "s3:DeleteObject",
                    f"{zone}/online_retail/ingest_date=*/part-*-*.tsv",
                ): "sweep: the previous generation's parts; a failed promote removes what it placed",
                (
                    "s3:PutObject",
                    f"{zone}/online_retail/ingest_date=*/_copy_manifest-*.json",
                ): "promote: the generation's COPY manifest",
                (
                    "s3:DeleteObject",
                    f"{zone}/online_retail/ingest_date=*/_copy_manifest-*.json",
                ): "sweep: the previous generation's COPY manifest",
                (
                    "s3:PutObject",
                    f"{zone}/online_retail/ingest_date=*/_manifest.json",
                ): "promote: the partition manifest, last (the switch)",
            }.items()
        },
        (
            "s3:ListBucket",
            "prefix quality/online_retail/ingest_date=*/data_docs/",
        ): "_publish_docs clears them",
        (
            "s3:DeleteObject",
            "quality/online_retail/ingest_date=*/data_docs/index.html",
        ): "... the old Data Docs",
        (
            "s3:PutObject",
            "quality/online_retail/ingest_date=*/data_docs/index.html",
        ): "the Data Docs (put_file)",
        (
            "s3:GetObject",
            "quality/online_retail/ingest_date=*/data_docs/index.html",
        ): "put_file's checksum check",
        (
            "s3:AbortMultipartUpload",
            "quality/online_retail/ingest_date=*/data_docs/index.html",
        ): "a failed upload",
        ("s3:PutObject", "quality/online_retail/ingest_date=*/run_report.json"): "the run report",
        ("s3:PutObject", "quality/online_retail/ingest_date=*/report.html"): "the run page, without gold yet",
        **_LEASE,
        **_KEY,
        **_NEW_OBJECT,
        **_METRICS,
    },
}
RUNS = {"ingest": run_ingest, "build": run_build, "transform": run_transform}
ROLES = {"ingest": "IngestTaskRole", "build": "BuildTaskRole", "transform": "GlueJobRole"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recorder]:
    """Each component run once for the module, as its role (see the module doc)."""
    found = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for component, run in RUNS.items():
            tmp = tmp_path_factory.mktemp(component)
            found[component] = run(tmp, monkeypatch) if component == "build" else run(tmp)
    return found


def test_each_component_runs_as_the_role_its_template_resource_gives_it():
    assert {c: r for c, r in ROLES.items()} == {
        "ingest": _role_of("IngestTaskDefinition"),
        "build": _role_of("BuildTaskDefinition"),
        "transform": _role_of_glue(),
    }


@pytest.mark.parametrize("component", list(RUNS))
def test_the_role_allows_every_request_the_component_makes(recorded, component):
    recorder = recorded[component]
    assert recorder.role == ROLES[component]
    denied = recorder.denied()
    assert denied == [], f"{recorder.role} denies what the {component} code asks for:\n" + "\n".join(denied)


@pytest.mark.parametrize("component", list(RUNS))
def test_each_component_runs_to_the_end_as_its_role(recorded, component):
    assert recorded[component].outcomes == []


@pytest.mark.parametrize("component", list(RUNS))
def test_what_the_component_asks_for_is_exactly_its_rows_of_the_access_table(recorded, component):
    found, listed = table(recorded[component]), set(ACCESS[component])
    assert sorted(found - listed) == [], f"the {component} code makes requests ACCESS does not list"
    assert sorted(listed - found) == [], f"ACCESS lists requests the {component} code no longer makes"


def _lake_statements(role: str) -> list[dict[str, Any]]:
    """The role's Allow statements on the lake bucket or its objects."""
    return [
        s
        for s in cfn_template.role_statements(role)
        if any(str(r).startswith(LAKE_ARN) for r in cfn_template.as_list(s["Resource"]))
    ]


@pytest.mark.parametrize("component", list(RUNS))
def test_every_lake_permission_of_the_role_is_used_by_the_component(recorded, component):
    """Least privilege, per action and resource (and listed prefix): nothing the code never asks for."""
    requests = [r for call in recorded[component].calls for r in call.requests]
    unused = []
    for statement in _lake_statements(ROLES[component]):
        assert statement["Effect"] == "Allow" and "Action" in statement and "Resource" in statement, statement
        for action in cfn_template.as_list(statement["Action"]):
            for resource in cfn_template.as_list(statement["Resource"]):
                one = {**statement, "Action": action, "Resource": resource}
                prefixes = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [None])
                for prefix in cfn_template.as_list(prefixes):
                    if prefix is not None:
                        one["Condition"] = {"StringLike": {"s3:prefix": prefix}}
                    if not any(cfn_template.statement_matches(one, r) for r in requests):
                        unused.append(f"{statement.get('Sid')}: {action} on {resource} (prefix {prefix})")
    assert unused == [], f"{ROLES[component]} allows what the {component} never asks for:\n" + "\n".join(
        unused
    )


@pytest.mark.parametrize(
    ("role", "through"),
    [
        ("IngestTaskRole", {"s3", "secretsmanager"}),
        ("BuildTaskRole", {"s3"}),
        ("RedshiftCopyRole", {"s3"}),
        ("StateMachineRole", {"sns"}),
    ],
)
def test_a_role_uses_the_pipeline_key_only_through_the_services_that_encrypt_for_it(role, through):
    """kms:ViaService: the key decrypts a lake object through S3, a secret through Secrets Manager, an alert
    through SNS; credentials taken from the task cannot ask KMS to decrypt anything directly."""
    statements = cfn_template.role_statements(role)
    granted = {a for s in statements for a in cfn_template.as_list(s["Action"]) if a.startswith("kms:")}
    assert granted, role
    for action in granted:
        assert not cfn_template.allows(statements, Request(action, KEY_ARN)), f"{role}: {action} directly"
        for service in ("s3", "secretsmanager", "sns", "logs", "glue"):
            allowed = cfn_template.allows(statements, Request(action, KEY_ARN, cfn_template.via(service)))
            assert allowed == (service in through), f"{role}: {action} through {service}"


def test_a_missing_marker_costs_one_listing_of_its_own_key_which_each_role_allows(recorded):
    """S3Lake.exists (retail_core/lake.py): a HEAD S3 answers with 403 (the role may list only by prefix) is
    followed by ListObjectsV2 with the key as its prefix. Each component meets such a HEAD above."""
    for component, recorder in recorded.items():
        heads = [c for c in recorder.calls if c.operation == "HeadObject" and c.answered == 403]
        assert heads, f"the {component} run never looked for a missing key: this would check nothing"
        for head in heads:
            assert (
                not head.denied
            )  # GetObject on the key is allowed: the 403 is S3's answer for a missing key
            later = recorder.calls[recorder.calls.index(head) + 1 :]
            listing = next(c for c in later if c.operation == "ListObjectsV2")
            assert listing.params["Prefix"] == head.params["Key"] and not listing.denied, (component, head)


def test_every_role_with_access_to_the_lake_is_in_the_table():
    """The COPY role's rows are tests/integration/test_access_copy.py's (the COPYs of the rendered plan)."""
    from tests.integration import test_access_copy

    covered = {*ROLES.values(), test_access_copy._copy_role()}
    with_lake = set()
    for role, properties in cfn_template.resources("AWS::IAM::Role").items():
        if properties.get("ManagedPolicyArns"):
            # AWS's ECS execution policy (ECR pulls, log streams) and nothing of ours: no lake there.
            assert role == "TaskExecutionRole" and not properties.get("Policies"), role
            assert properties["ManagedPolicyArns"] == [
                {
                    "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
                }
            ]
        elif _lake_statements(role):
            with_lake.add(role)
    assert with_lake == covered


def test_the_glue_replay_covers_every_lake_call_of_the_job():
    """The replay (glue_run) is glue/job.py's lake calls written out: it must know each one the job makes."""
    called = set()
    for path in (REPO / "glue" / "job.py", REPO / "glue" / "retail_transform.py", REPO / "glue" / "io.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "lake"
            ):
                called.add(node.attr)
    assert called, "no lake call found: the scan is broken"
    assert called <= set(GLUE_LAKE_CALLS) | set(GLUE_LAKE_CALLS_NOT_REACHED), sorted(
        called - set(GLUE_LAKE_CALLS) - set(GLUE_LAKE_CALLS_NOT_REACHED)
    )


# --- the state machine: each Task's Resource and the IAM actions AWS documents for it ---------------------------


# The Step Functions developer guide's IAM policies per optimized integration ("IAM policies for ..."), the ECS
# guide's tag-on-create rule, and the API's own action for an aws-sdk integration:
#   ecs:runTask.sync    ecs:RunTask on the task definition; ecs:StopTask, ecs:DescribeTasks on its tasks;
#                       events:PutTargets, PutRule, DescribeRule on the managed rule
#                       StepFunctionsGetEventsForECSTaskRule; iam:PassRole on the task definition's task and
#                       execution roles; ecs:TagResource with ecs:CreateAction=RunTask when the task is tagged
#                       (PropagateTags or Tags: RunTask tags the task it creates)
#   glue:startJobRun.sync  glue:StartJobRun, GetJobRun, GetJobRuns, BatchStopJobRun on the job
#   sns:publish         sns:Publish on the topic; kms:GenerateDataKey and kms:Decrypt on an encrypted topic's key
#   aws-sdk:cloudwatch:putMetricData  cloudwatch:PutMetricData (no resource; the namespace is a condition key)
def _definition() -> tuple[dict[str, Any], dict[str, str]]:
    """The ASL as CloudFormation fills it: DefinitionSubstitutions evaluated for the deployed stack."""
    properties = _resources()["StateMachine"]["Properties"]
    values = {k: str(cfn_template.evaluate(v)) for k, v in properties["DefinitionSubstitutions"].items()}
    text = (REPO / "orchestration" / "state_machine.asl.json").read_text()
    filled = re.sub(r"\$\{(\w+)\}", lambda m: json.dumps(values[m[1]])[1:-1], text)
    return json.loads(filled), values


def _task_definition_of(arn: str) -> str:
    [logical] = [n for n in cfn_template.resources("AWS::ECS::TaskDefinition") if _value(n) == arn]
    return logical


def documented_requests(state: dict[str, Any]) -> list[Request]:
    """What IAM is asked when a Task state with this Resource and these Parameters runs (see above)."""
    resource, params = state["Resource"], state["Parameters"]
    arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:{{}}"
    if resource == "arn:aws:states:::ecs:runTask.sync":
        definition = _resources()[_task_definition_of(params["TaskDefinition"])]["Properties"]
        task = arn.format("ecs", f"task/{_value('Cluster')}/0123456789abcdef")
        rule = arn.format("events", "rule/StepFunctionsGetEventsForECSTaskRule")
        requests = [
            Request("ecs:RunTask", params["TaskDefinition"], (("ecs:cluster", params["Cluster"]),)),
            Request("ecs:DescribeTasks", task, (("ecs:cluster", params["Cluster"]),)),
            Request("ecs:StopTask", task, (("ecs:cluster", params["Cluster"]),)),
            *(Request(f"events:{a}", rule) for a in ("PutTargets", "PutRule", "DescribeRule")),
            *(
                Request(
                    "iam:PassRole",
                    str(cfn_template.evaluate(definition[k])),
                    (("iam:PassedToService", "ecs-tasks.amazonaws.com"),),
                )
                for k in ("TaskRoleArn", "ExecutionRoleArn")
            ),
        ]
        if params.get("PropagateTags", "NONE") != "NONE" or params.get("Tags"):
            requests.append(Request("ecs:TagResource", task, (("ecs:CreateAction", "RunTask"),)))
        return requests
    if resource == "arn:aws:states:::glue:startJobRun.sync":
        job = arn.format("glue", f"job/{params['JobName']}")
        return [
            Request(f"glue:{a}", job) for a in ("StartJobRun", "GetJobRun", "GetJobRuns", "BatchStopJobRun")
        ]
    if resource == "arn:aws:states:::sns:publish":
        [topic] = [n for n in cfn_template.resources("AWS::SNS::Topic") if _value(n) == params["TopicArn"]]
        key = cfn_template.evaluate(_resources()[topic]["Properties"]["KmsMasterKeyId"])
        assert key == _value("PipelineKey"), "the topic's key is not PipelineKey: say which key ARN it is"
        return [
            Request("sns:Publish", params["TopicArn"]),
            *kms_for(KEY_ARN, "sns", "kms:GenerateDataKey", "kms:Decrypt"),
        ]
    if resource == "arn:aws:states:::aws-sdk:cloudwatch:putMetricData":
        return [Request("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", params["Namespace"]),))]
    raise AssertionError(f"no documented IAM actions for {resource}: add them to documented_requests()")


def kms_for(key_arn: str, service: str, *actions: str) -> list[Request]:
    """What ``service`` asks KMS for on the caller's behalf."""
    return [Request(action, key_arn, cfn_template.via(service)) for action in actions]


def _task_states() -> dict[str, dict[str, Any]]:
    definition, _ = _definition()
    return {name: s for name, s in definition["States"].items() if s["Type"] == "Task"}


@pytest.mark.parametrize("state", list(_task_states()))
def test_the_state_machine_role_allows_what_aws_documents_for_each_task(state):
    statements = cfn_template.role_statements("StateMachineRole")
    requests = documented_requests(_task_states()[state])
    denied = [str(r) for r in requests if not cfn_template.allows(statements, r)]
    assert denied == [], f"StateMachineRole denies what {state} needs:\n" + "\n".join(denied)


def test_the_state_machine_role_grants_nothing_its_tasks_do_not_need():
    requests = [r for s in _task_states().values() for r in documented_requests(s)]
    [orchestrate] = [
        p
        for p in _resources()["StateMachineRole"]["Properties"]["Policies"]
        if p["PolicyName"] == "orchestrate"
    ]
    unused = []
    for statement in cfn_template.evaluate(orchestrate["PolicyDocument"]["Statement"]):
        for action in cfn_template.as_list(statement["Action"]):
            for resource in cfn_template.as_list(statement["Resource"]):
                one = {**statement, "Action": action, "Resource": resource}
                if not any(cfn_template.statement_matches(one, r) for r in requests):
                    unused.append(f"{statement.get('Sid')}: {action} on {resource}")
    assert unused == []


def test_the_state_machine_role_logs_and_traces_as_step_functions_needs():
    """Logging to CloudWatch Logs (vended log delivery, no resource ARNs) and X-Ray tracing, both on."""
    properties = _resources()["StateMachine"]["Properties"]
    assert properties["Logging"]["Level"] == "ALL" and properties["Tracing"]["Enabled"] is True
    statements = cfn_template.role_statements("StateMachineRole")
    needed = [
        *(
            f"logs:{a}"
            for a in (
                "CreateLogDelivery",
                "GetLogDelivery",
                "UpdateLogDelivery",
                "DeleteLogDelivery",
                "ListLogDeliveries",
                "PutResourcePolicy",
                "DescribeResourcePolicies",
                "DescribeLogGroups",
            )
        ),
        *(
            f"xray:{a}"
            for a in ("PutTraceSegments", "PutTelemetryRecords", "GetSamplingRules", "GetSamplingTargets")
        ),
    ]
    assert [a for a in needed if not cfn_template.allows(statements, Request(a, "*"))] == []


def test_the_state_machine_role_may_not_run_other_task_definitions_or_pass_other_roles():
    statements = cfn_template.role_statements("StateMachineRole")
    definition, values = _definition()
    cluster = values["ClusterArn"]
    other = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/someone-else:1"
    ingest = definition["States"]["Ingest"]["Parameters"]["TaskDefinition"]
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{_value('Cluster')}/0123456789abcdef"
    for request in [
        Request("ecs:RunTask", other, (("ecs:cluster", cluster),)),
        Request(
            "ecs:RunTask", ingest, (("ecs:cluster", "arn:aws:ecs:eu-west-1:123456789012:cluster/other"),)
        ),
        Request("ecs:TagResource", task),  # tagging an existing task, not one RunTask creates
        Request("ecs:TagResource", task, (("ecs:CreateAction", "CreateService"),)),
        Request(
            "iam:PassRole",
            _value("GlueJobRole", "Arn"),
            (("iam:PassedToService", "ecs-tasks.amazonaws.com"),),
        ),
        Request(
            "iam:PassRole", _value("IngestTaskRole", "Arn"), (("iam:PassedToService", "glue.amazonaws.com"),)
        ),
        Request("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", "AWS/States"),)),
    ]:
        assert not cfn_template.allows(statements, request), str(request)


# --- the evaluator itself (tests/fakes/cfn_template.py) -----------------------------------------------------------

_BUCKET = "arn:aws:s3:::b"
_CASES = [
    # (condition block, request context, allowed?)
    ({"StringLike": {"s3:prefix": "raw/*"}}, {"s3:prefix": "raw/x"}, True),
    ({"StringLike": {"s3:prefix": "raw/*"}}, {}, False),  # a HEAD's 404 question carries no prefix
    ({"StringNotLike": {"s3:prefix": "raw/*"}}, {}, True),  # negated operators hold for an absent key
    ({"StringLikeIfExists": {"s3:prefix": "raw/*"}}, {}, True),
    ({"StringEquals": {"k": ["a", "b"]}}, {"k": "b"}, True),  # the values of one key are ORed
    ({"StringEquals": {"k": "a", "j": "b"}}, {"k": "a"}, False),  # the keys of a block are ANDed
    ({"StringEqualsIgnoreCase": {"k": "ABC"}}, {"k": "abc"}, True),
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:events:*:1:rule/r"}},
        {"aws:SourceArn": "arn:aws:events:x:1:rule/r"},
        True,
    ),
    ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"}, True),
    ({"Null": {"s3:prefix": "true"}}, {}, True),
    ({"Null": {"s3:prefix": "false"}}, {}, False),
    ({"NumericLessThan": {"s3:TlsVersion": "1.2"}}, {"s3:TlsVersion": "1.3"}, False),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}, {"aws:TagKeys": ("team", "env")}, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}, {"aws:TagKeys": ("team", "env")}, False),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}, {}, True),
]


@pytest.mark.parametrize(("block", "context", "allowed"), _CASES)
def test_the_evaluator_reads_conditions_as_iam_does(block, context, allowed):
    statement = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": _BUCKET, "Condition": block}
    assert (
        cfn_template.allows([statement], Request("s3:ListBucket", _BUCKET, tuple(context.items()))) is allowed
    )


def test_the_evaluator_lets_a_deny_win_and_reads_not_action_and_not_resource():
    allow = {"Effect": "Allow", "Action": "s3:*", "Resource": f"{_BUCKET}/*"}
    deny = {"Effect": "Deny", "NotAction": "s3:GetObject", "NotResource": f"{_BUCKET}/public/*"}
    assert cfn_template.allows([allow, deny], Request("s3:GetObject", f"{_BUCKET}/private/x"))
    assert not cfn_template.allows([allow, deny], Request("s3:PutObject", f"{_BUCKET}/private/x"))
    assert cfn_template.allows([allow, deny], Request("s3:PutObject", f"{_BUCKET}/public/x"))
    with pytest.raises(NotImplementedError):
        cfn_template.allows(
            [{**allow, "Condition": {"DateLessThan": {"aws:CurrentTime": "2030"}}}],
            Request("s3:GetObject", f"{_BUCKET}/x"),
        )


def test_s3_calls_become_the_requests_s3_authorizes():
    assert cfn_template.s3_requests("HeadObject", {"Bucket": "b", "Key": "k"}) == [
        Request("s3:GetObject", "arn:aws:s3:::b/k")
    ]
    assert cfn_template.s3_requests("ListObjectsV2", {"Bucket": "b"}) == [Request("s3:ListBucket", _BUCKET)]
    assert cfn_template.s3_requests(
        "CopyObject", {"Bucket": "b", "Key": "to", "CopySource": {"Bucket": "b", "Key": "from"}}
    ) == [
        Request("s3:GetObject", "arn:aws:s3:::b/from"),
        Request("s3:PutObject", "arn:aws:s3:::b/to"),
    ]
    listed = {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": _BUCKET,
        "Condition": {"StringLike": {"s3:prefix": "raw/*"}},
    }
    assert cfn_template.s3_missing_key_answer([listed], "b") == 403
    assert cfn_template.s3_missing_key_answer([{**listed, "Condition": {}}], "b") == 404


def test_the_glue_job_may_write_its_own_log_groups_and_no_other_services():
    statements = cfn_template.role_statements("GlueJobRole")
    where = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
    prefix = cfn_template.evaluate(
        _resources()["GlueJob"]["Properties"]["DefaultArguments"]["--custom-logGroup-prefix"]
    )
    for group in (f"{prefix}/output", f"{prefix}/error"):
        assert (
            cfn_template.evaluate(
                {"Ref": "GlueOutputLogGroup" if group.endswith("output") else "GlueErrorLogGroup"}
            )
            == group
        )
        assert cfn_template.allows(
            statements, Request("logs:PutLogEvents", f"{where}{group}:log-stream:jr_1-driver")
        )
    for other in (
        "/aws-glue/crawlers",
        "/aws-glue/sessions/error",
        "/ecs/online-retail-pipeline",
        "/aws/lambda/x",
    ):
        assert not cfn_template.allows(
            statements, Request("logs:PutLogEvents", f"{where}{other}:log-stream:s")
        ), other
