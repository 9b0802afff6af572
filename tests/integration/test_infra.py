"""infra/: cfn-lint and checkov pass, and the template declares what the pipeline needs. deploy.sh's tests are in
test_deploy_script.py, the template's first-deploy rules in test_template_rules.py."""

import datetime as dt
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from orchestration import local_run
from retail_core import dialect, layout
from tests.fakes import cfn_template

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"
ASL = REPO / "orchestration" / "state_machine.asl.json"
# checkov pins libraries that conflict with the project's lock, so make setup gives it a venv of its own.
CHECKOV_CANDIDATES = [REPO / ".venv-tools" / "bin" / "checkov", Path(sys.executable).with_name("checkov")]


def _props(logical_id: str) -> dict:
    return cfn_template.load()["Resources"][logical_id]["Properties"]


def test_cfn_lint_reports_no_errors():
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # cfn-lint's exit code is a bit field: 2 errors, 4 warnings, 8 informational; 1 means it could not run.
    assert done.returncode & 0b11 == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "", done.stdout  # and no warnings either


def test_checkov_finds_no_failed_check_in_the_template_and_the_dockerfile():
    checkov = next((str(p) for p in CHECKOV_CANDIDATES if p.exists()), None) or shutil.which("checkov")
    assert checkov, "checkov is not installed: run `make setup` (it installs it in .venv-tools)"
    done = subprocess.run(
        [checkov, "--config-file", "infra/.checkov.yaml", "--output", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_framework = {r["check_type"]: r for r in reports}
    assert set(by_framework) == {"cloudformation", "dockerfile"}, done.stderr[-2000:]
    for framework, report in by_framework.items():
        failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
        assert failed == [], f"{framework}: {failed}"
        assert report["summary"]["passed"] > 40, framework  # it really looked
        assert report["summary"]["parsing_errors"] == 0, framework
        for skipped in report["results"]["skipped_checks"]:
            reason = skipped["check_result"].get("suppress_comment") or ""
            assert len(reason.strip()) > 20, f"skip without a reason: {skipped['check_id']}"
    assert done.returncode == 0


def test_the_state_machine_definition_is_the_asl_file_with_every_placeholder_filled():
    props = _props("StateMachine")
    assert (TEMPLATE.parent / props["DefinitionUri"]).resolve() == ASL
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    substitutions = props["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders
    assert substitutions["DbtTarget"] == "prod"
    assert set(local_run.LOCAL_SUBSTITUTIONS) == placeholders  # the local runner fills the same ones
    assert cfn_template.resolve(substitutions["MetricsNamespace"]) == "OnlineRetailPipeline"
    assert props["Logging"]["Level"] == "ALL" and props["Tracing"]["Enabled"] is True


def test_the_lake_bucket_is_encrypted_private_versioned_logged_and_tls_only():
    bucket = _props("LakeBucket")
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
    rules = {r.get("Prefix"): r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["raw-data/"]["Transitions"] and rules["raw-data/"]["ExpirationInDays"]
    assert rules["quarantine/"]["ExpirationInDays"] == {"Ref": "QuarantineExpirationDays"}
    policy = _props("LakeBucketPolicy")["PolicyDocument"]["Statement"]
    tls = next(s for s in policy if s["Sid"] == "DenyInsecureTransport")
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_glue_job_is_glue_5_with_bookmarks_logs_and_metrics():
    job = _props("GlueJob")
    assert (job["GlueVersion"], job["WorkerType"]) == ("5.0", "G.1X")
    assert job["NumberOfWorkers"] == {"Ref": "GlueWorkers"}
    assert job["Command"]["ScriptLocation"] == {"Fn::Sub": "s3://${ArtifactBucket}/${GlueScriptKey}"}
    args = job["DefaultArguments"]
    assert args["--job-bookmark-option"] == "job-bookmark-enable"
    assert args["--enable-continuous-cloudwatch-log"] == "true"
    assert args["--enable-metrics"] == "true"
    assert job["MaxRetries"] == 0  # retries belong to the state machine, which knows transient from permanent


def test_redshift_serverless_is_private_with_the_copy_role_and_a_generated_password():
    workgroup = _props("RedshiftWorkgroup")
    assert workgroup["PubliclyAccessible"] is False
    namespace = _props("RedshiftNamespace")
    assert namespace["IamRoles"] == [{"Fn::GetAtt": ["RedshiftCopyRole", "Arn"]}]
    password = namespace["AdminUserPassword"]["Fn::Sub"]
    assert password.startswith("{{resolve:secretsmanager:${RedshiftSecret}")


def test_no_secret_is_a_parameter_or_a_literal():
    template = cfn_template.load()
    for name, param in template["Parameters"].items():
        assert not re.search(r"password|secret|token|credential", name, re.I), name
        assert not param.get("NoEcho"), name
    for name, secret in cfn_template.resources("AWS::SecretsManager::Secret").items():
        assert "SecretString" not in secret, f"{name} holds a literal secret"
        assert "GenerateSecretString" in secret and "KmsKeyId" in secret, name


def test_each_component_has_its_own_role():
    roles = {
        "GlueJob": _props("GlueJob")["Role"],
        "IngestTask": _props("IngestTaskDefinition")["TaskRoleArn"],
        "BuildTask": _props("BuildTaskDefinition")["TaskRoleArn"],
        "StateMachine": _props("StateMachine")["Role"],
        "Schedule": _props("Schedule")["Target"]["RoleArn"],
        "RedshiftCopy": _props("RedshiftNamespace")["DefaultIamRoleArn"],
    }
    names = [r["Fn::GetAtt"][0] for r in roles.values()]
    assert len(set(names)) == len(names), roles
    for role in cfn_template.resources("AWS::IAM::Role").values():
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert not any(a == "*" or a.endswith(":*") for a in actions), statement


@pytest.mark.parametrize("alarm", [', "arn:no-successful-run"', ""], ids=["schedule-enabled", "disabled"])
def test_the_dashboard_body_is_json(alarm):
    body, variables = _props("Dashboard")["DashboardBody"]["Fn::Sub"]
    # The no-successful-run alarm exists only with the schedule: its entry in the alarm list is a variable.
    assert variables["NoSuccessfulRunAlarmArn"] == {
        "Fn::If": ["ScheduleEnabled", {"Fn::Sub": ', "${NoSuccessfulRunAlarm.Arn}"'}, ""]
    }
    assert cfn_template.load()["Resources"]["NoSuccessfulRunAlarm"]["Condition"] == "ScheduleEnabled"
    filled = re.sub(r"\$\{[\w.:]+\}", "0", body.replace("${NoSuccessfulRunAlarmArn}", alarm))
    widgets = json.loads(filled)["widgets"]
    assert len(widgets) >= 6
    [alarms] = [w["properties"]["alarms"] for w in widgets if w["type"] == "alarm"]
    assert len(alarms) == (5 if alarm else 4)


def test_the_image_is_the_wheel_with_its_task_extra_and_no_source_folders():
    dockerfile = (REPO / "Dockerfile").read_text()
    sources = []
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            sources += line.split()[1:-1]
    # The lock and make package's wheel, nothing else from the checkout.
    assert sorted(sources) == ["constraints.txt", "dist/online_retail_pipeline-*.whl"]
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = [line[1:] for line in ignore if line.startswith("!")]
    for source in sources:
        assert any(fnmatch.fnmatch(source, a) for a in allowed), f"{source} is .dockerignored"
    assert '"$(ls online_retail_pipeline-*.whl)[task]"' in dockerfile
    # The root filesystem is read-only: bytecode is compiled in the image (pip's default) or at every task start.
    assert "--no-compile" not in dockerfile and "__pycache__" not in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.M), "the image must not run as root"
    # The entrypoint is the console script the wheel installs.
    assert 'ENTRYPOINT ["retail-pipeline-task"]' in dockerfile
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["retail-pipeline-task"] == "orchestration.entrypoint:main"
    task = " ".join(pyproject["project"]["optional-dependencies"]["task"])
    assert "dbt-redshift" in task and "kaggle" in task
    assert not any(heavy in task for heavy in ("pyspark", "duckdb", "great-expectations", "pandas"))


# --- The Glue Data Catalog ----------------------------------------------------------------------------------------
LAKE_TABLES = {  # zone -> logical id of its table
    layout.RAW_ZONE: "RawTable",
    layout.PROCESSED_ZONE: "ProcessedTable",
    layout.RETURNS_ZONE: "ReturnsTable",
    layout.QUARANTINE_ZONE: "QuarantineTable",
}
CATALOG_READS = {
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetPartition",
    "glue:GetPartitions",
}
SOME_DAY = dt.date(2011, 3, 7)
# Hive's column types for text tables, as the Glue catalog takes them.
HIVE_TYPE = re.compile(r"string|bigint|int|timestamp|date|boolean|double|varchar\(\d+\)|decimal\(\d+,\d+\)")


def _table(logical_id: str) -> dict:
    return cfn_template.evaluate(_props(logical_id))["TableInput"]


def _columns(logical_id: str) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in _table(logical_id)["StorageDescriptor"]["Columns"]]


def _lake_root() -> str:
    """Where the deployed transform writes (GlueJob --lake); the build task reads the same root."""
    lake = cfn_template.evaluate(_props("GlueJob")["DefaultArguments"]["--lake"])
    [build] = _props("BuildTaskDefinition")["ContainerDefinitions"]
    build_env = {e["Name"]: cfn_template.evaluate(e["Value"]) for e in build["Environment"]}
    assert build_env["RETAIL_LAKE"] == lake
    return lake.rstrip("/")


def test_the_catalog_has_one_database_with_a_table_for_each_lake_zone():
    [database] = cfn_template.resources("AWS::Glue::Database")
    name = cfn_template.evaluate(_props(database))["DatabaseInput"]["Name"]
    assert name == "online_retail_lake" and re.fullmatch(r"[a-z0-9_]+", name)  # Athena's rule for names
    tables = cfn_template.resources("AWS::Glue::Table")
    assert set(tables) == set(LAKE_TABLES.values())
    for zone, logical_id in LAKE_TABLES.items():
        table = _table(logical_id)
        assert tables[logical_id]["DatabaseName"] == {"Ref": database}
        assert table["Name"].startswith(layout.DATASET) and re.fullmatch(r"[a-z0-9_]+", table["Name"])
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert table["StorageDescriptor"]["Location"] == f"{_lake_root()}/{zone}/{layout.DATASET}/"


@pytest.mark.parametrize("zone", list(LAKE_TABLES))
def test_each_lake_table_projects_its_ingest_date_partitions_onto_the_layouts_paths(zone):
    table = _table(LAKE_TABLES[zone])
    assert table["PartitionKeys"] == [{"Name": "ingest_date", "Type": "string"}]
    params = table["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.ingest_date.type"] == "date"
    assert params["projection.ingest_date.format"] == "yyyy-MM-dd"  # what layout.partition() writes
    assert (params["projection.ingest_date.interval"], params["projection.ingest_date.interval.unit"]) == (
        "1",
        "DAYS",
    )
    first, last = params["projection.ingest_date.range"].split(",")
    assert (
        dt.date.fromisoformat(first) <= dt.date(2010, 12, 1) and last == "NOW"
    )  # the dataset's first invoice
    # Athena fills ${ingest_date} with the date in the projection's format: the folder layout.py names.
    location = params["storage.location.template"]
    assert location.count("${ingest_date}") == 1
    filled = location.replace("${ingest_date}", SOME_DAY.strftime("%Y-%m-%d"))
    assert filled == f"{_lake_root()}/{layout.zone_prefix(zone, SOME_DAY)}/"
    assert filled.startswith(table["StorageDescriptor"]["Location"])
    if zone == layout.RAW_ZONE:
        assert f"{_lake_root()}/{layout.raw_key(SOME_DAY)}".startswith(filled)


def test_the_raw_table_reads_the_kaggle_csv_as_strings_past_its_header():
    table = _table("RawTable")
    serde = table["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    assert (serde["Parameters"]["separatorChar"], serde["Parameters"]["quoteChar"]) == (",", '"')
    assert table["Parameters"]["skip.header.line.count"] == "1"
    # OpenCSV maps fields by position: the snake_case names of the raw header, in its order, all strings.
    assert _columns("RawTable") == [(name, "string") for name in dialect.SOURCE_COLUMNS]
    assert len(dialect.SOURCE_COLUMNS) == len(dialect.RAW_COLUMNS)


@pytest.mark.parametrize("logical_id", ["ProcessedTable", "ReturnsTable", "QuarantineTable"])
def test_the_tsv_tables_read_the_dialect_the_transform_writes(logical_id):
    table = _table(logical_id)
    serde = table["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
    params = serde["Parameters"]
    writer = dialect.spark_writer_options()
    assert params["field.delim"] == params["serialization.format"] == dialect.SEPARATOR == writer["sep"]
    assert params["line.delim"] == dialect.LINE_TERMINATOR == writer["lineSep"]
    assert params["serialization.null.format"] == dialect.NULL_VALUE == writer["nullValue"]
    assert params["serialization.encoding"].lower() == dialect.ENCODING
    # No quoting, no escaping: a backslash is data, so LazySimpleSerDe must not be given an escape character.
    assert writer["quote"] == writer["escape"] == ""
    assert "escape.delim" not in params
    header_lines = "1" if writer["header"] == "true" else "0"
    assert table["Parameters"].get("skip.header.line.count", "0") == header_lines


@pytest.mark.parametrize("logical_id", ["ProcessedTable", "ReturnsTable"])
def test_the_processed_and_returns_tables_columns_are_the_dialects_schema_but_the_partition_column(
    logical_id,
):
    # The files end with ingest_date; the table leaves it to the partition key of the same name, which only works
    # because it is the last field (LazySimpleSerDe maps by position and ignores trailing fields). Returns are
    # written with the clean lines' schema (glue/cleaning.py return_rows).
    *file_columns, (last, _) = dialect.PROCESSED_SCHEMA
    assert last == "ingest_date"
    assert _columns(logical_id) == file_columns
    assert all(HIVE_TYPE.fullmatch(kind) for _, kind in file_columns)


def test_the_quarantine_tables_columns_are_the_dialects_but_the_partition_column():
    *file_columns, last = dialect.QUARANTINE_COLUMNS
    assert last == "ingest_date"
    assert [name for name, _ in _columns("QuarantineTable")] == file_columns
    # The rejected values as read are strings; line_no is the transform's bigint row number (glue/io.py).
    types = dict(_columns("QuarantineTable"))
    assert {name for name, kind in types.items() if kind != "string"} == {"line_no"}
    assert types["line_no"] == "bigint"


def test_the_glue_job_role_reads_the_lakes_catalog_tables_and_nothing_else_of_glue():
    statements = cfn_template.role_statements("GlueJobRole")
    glue_statements = [
        s for s in statements if any(a.startswith("glue:") for a in cfn_template.as_list(s["Action"]))
    ]
    assert {a for s in glue_statements for a in cfn_template.as_list(s["Action"])} == CATALOG_READS
    deployed = cfn_template.DEPLOYED
    glue = f"arn:aws:glue:{deployed['AWS::Region']}:{deployed['AWS::AccountId']}"
    database = cfn_template.evaluate(_props("LakeDatabase"))["DatabaseInput"]["Name"]
    tables = [_table(t)["Name"] for t in LAKE_TABLES.values()]
    readable = {f"{glue}:catalog", f"{glue}:database/{database}"} | {
        f"{glue}:table/{database}/{t}" for t in tables
    }
    assert {r for s in glue_statements for r in cfn_template.as_list(s["Resource"])} == readable
    for resource in readable:
        for action in CATALOG_READS:
            assert cfn_template.allows(statements, cfn_template.Request(action, resource)), (action, resource)
    for action, resource in [
        ("glue:GetTable", f"{glue}:table/{database}/some_other_table"),
        ("glue:GetTable", f"{glue}:table/other_database/{tables[0]}"),
        ("glue:GetDatabase", f"{glue}:database/other_database"),
        ("glue:UpdateTable", f"{glue}:table/{database}/{tables[1]}"),
        ("glue:BatchCreatePartition", f"{glue}:table/{database}/{tables[1]}"),
        ("glue:CreateTable", f"{glue}:database/{database}"),
        ("glue:DeleteDatabase", f"{glue}:database/{database}"),
    ]:
        assert not cfn_template.allows(statements, cfn_template.Request(action, resource)), (action, resource)
