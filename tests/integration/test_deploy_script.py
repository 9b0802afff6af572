"""infra/deploy.sh (`make deploy`) against stand-ins for `aws` and `docker`: neither AWS nor a Docker daemon is
reachable here. The `aws` stand-in logs each call and answers `ec2 describe-*` from a network described by the
test, so the network check before the deploy runs on a VPC that has what the tasks need, and on ones that do not."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"

STUB = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$CALLS"
case "$(basename "$0") $1 $2" in
  "docker login --username") cat > /dev/null ;;
  "aws sts get-caller-identity") echo 123456789012 ;;
  "aws ecr describe-repositories"|"aws ecr describe-images") exit 1 ;;
  "aws ecr get-login-password") echo token ;;
  "aws ec2 "*) cat "$NETWORK/$2.json" ;;
  "aws cloudformation describe-stacks") cat "$NETWORK/stack-outputs.json" ;;
  # The Data API: statements numbered in the order sent; a statement's answer is warehouse/<id>.json if the
  # test put one there (a result, or a failure), else finished with no rows.
  "aws redshift-data execute-statement"|"aws redshift-data batch-execute-statement")
    n=$(( $(cat "$WAREHOUSE/count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$WAREHOUSE/count"
    printf '{"Id": "statement-%s"}\n' "$n" ;;
  "aws redshift-data describe-statement")
    if [[ -f "$WAREHOUSE/$4.status.json" ]]; then cat "$WAREHOUSE/$4.status.json"
    else echo '{"Status": "FINISHED", "HasResultSet": true}'; fi ;;
  "aws redshift-data get-statement-result")
    if [[ -f "$WAREHOUSE/$4.json" ]]; then cat "$WAREHOUSE/$4.json"; else echo '{"Records": []}'; fi ;;
esac
exit 0
"""
# What the deployed stack outputs, as far as deploy.sh reads them (infra/warehouse_user.py).
STACK_OUTPUTS = {
    "RedshiftWorkgroupName": "online-retail-warehouse",
    "RedshiftDatabase": "retail",
    "RedshiftSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:online-retail/redshift-AbCdEf",
    "RedshiftCopyRoleArn": "arn:aws:iam::123456789012:role/online-retail-copy",
    "BuildTaskRoleName": "online-retail-build-task-eu-west-1",
}

SUBNETS = {"subnet-a": f"{REGION}a", "subnet-b": f"{REGION}b", "subnet-c": f"{REGION}c"}
INTERFACES = ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "monitoring", "redshift-serverless"]


def network(
    tmp_path: Path,
    *,
    nat: bool = True,
    interfaces: list[str] | None = None,
    s3_gateway: str | None = None,
    zones: dict[str, str] = SUBNETS,
) -> Path:
    """What `aws ec2 describe-*` answers: subnet-a and subnet-b on rtb-private (explicitly associated), subnet-c
    on the VPC's main table rtb-main; with ``nat`` both route 0.0.0.0/0 to a NAT gateway. ``interfaces`` are
    interface endpoints with private DNS; ``s3_gateway`` an S3 gateway endpoint on both tables, made by that
    stack (a tag) or by someone else ("other")."""
    folder = tmp_path / "network"
    folder.mkdir(exist_ok=True)
    subnets = [{"SubnetId": s, "VpcId": "vpc-1", "AvailabilityZone": z} for s, z in zones.items()]
    default = (
        [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "active"}] if nat else []
    )
    local = [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}]
    tables = [
        {
            "RouteTableId": "rtb-private",
            "Associations": [
                {"SubnetId": "subnet-a", "Main": False},
                {"SubnetId": "subnet-b", "Main": False},
            ],
            "Routes": local + default,
        },
        {"RouteTableId": "rtb-main", "Associations": [{"Main": True}], "Routes": local + default},
        {"RouteTableId": "rtb-public", "Associations": [{"SubnetId": "subnet-public"}], "Routes": local},
    ]
    endpoints: list[dict[str, Any]] = [
        {
            "VpcEndpointType": "Interface",
            "ServiceName": f"com.amazonaws.{REGION}.{name}",
            "State": "available",
            "PrivateDnsEnabled": True,
        }
        for name in interfaces or []
    ]
    if s3_gateway:
        tags = (
            [{"Key": "aws:cloudformation:stack-name", "Value": s3_gateway}] if s3_gateway != "other" else []
        )
        endpoints.append(
            {
                "VpcEndpointType": "Gateway",
                "ServiceName": f"com.amazonaws.{REGION}.s3",
                "State": "available",
                "RouteTableIds": ["rtb-private", "rtb-main"],
                "Tags": tags,
            }
        )
    (folder / "describe-subnets.json").write_text(json.dumps({"Subnets": subnets}))
    (folder / "describe-route-tables.json").write_text(json.dumps({"RouteTables": tables}))
    (folder / "describe-vpc-endpoints.json").write_text(json.dumps({"VpcEndpoints": endpoints}))
    outputs = [{"OutputKey": k, "OutputValue": v} for k, v in STACK_OUTPUTS.items()]
    (folder / "stack-outputs.json").write_text(json.dumps(outputs))
    return folder


WHEELS = ("great_expectations-1.24.1-py3-none-any.whl", "scipy-1.17.1-cp311-cp311-manylinux_2_27_x86_64.whl")


def _dist(tmp_path: Path) -> Path:
    """What `make package` leaves in dist/, as far as deploy reads it (test_packaged.py builds the real one)."""
    dist = tmp_path / "dist"
    (dist / "glue").mkdir(parents=True)
    (dist / "glue" / "retail_transform.py").write_text("# the job script\n")
    (dist / "glue" / "retail_transform_libs.zip").write_bytes(b"PK")
    (dist / "glue" / "wheelhouse").mkdir()
    wheels = []
    for name in WHEELS:
        path = dist / "glue" / "wheelhouse" / name
        path.write_bytes(name.encode())
        wheels.append(
            {"file": f"glue/wheelhouse/{name}", "sha256": hashlib.sha256(name.encode()).hexdigest()}
        )
    manifest = {
        "wheel": {"file": "online_retail_pipeline-0.1.0-py3-none-any.whl", "sha256": "d" * 64},
        "glue_script": {"sha256": "a" * 64},
        "glue_libs": {"sha256": "b" * 64},
        "glue_wheelhouse": {"requirements_sha256": "c" * 64, "files": wheels},
    }
    (dist / "MANIFEST.json").write_text(json.dumps(manifest))
    return dist


def _deploy(tmp_path: Path, **env_extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("aws", "docker"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    calls = tmp_path / "calls.log"
    (tmp_path / "warehouse").mkdir(exist_ok=True)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CALLS": str(calls),
        "WAREHOUSE": str(tmp_path / "warehouse"),
        "AWS_REGION": REGION,
        "IMAGE_TAG": "abc123",
        **env_extra,
    }
    done = subprocess.run(
        ["bash", str(REPO / "infra" / "deploy.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, lines


def deploy(tmp_path: Path, net: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """deploy.sh with every required variable set, on the network ``net``."""
    settings = {
        "ARTIFACT_BUCKET": "artifacts",
        "VPC_ID": "vpc-1",
        "SUBNET_IDS": "subnet-a,subnet-b,subnet-c",
        "DIST": str(_dist(tmp_path)),
        "NETWORK": str(net),
        **env,
    }
    return _deploy(tmp_path, **settings)


def _cloudformation_deploy(calls: list[str]) -> str:
    return next(c for c in calls if c.startswith("aws cloudformation deploy"))


def _built_or_deployed(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith(("docker build", "docker push", "aws s3", "aws cloudformation"))]


def test_deploy_builds_the_image_uploads_the_glue_code_then_packages_and_deploys(tmp_path):
    done, calls = deploy(tmp_path, network(tmp_path))
    assert done.returncode == 0, done.stderr
    steps = [" ".join(c.split()[:3]) for c in calls]
    order = [
        "aws ec2 describe-subnets",
        "aws ecr create-repository",
        "docker build --platform",
        "docker push 123456789012.dkr.ecr.eu-west-1.amazonaws.com/online-retail-pipeline:abc123",
        "aws s3 cp",
        "aws cloudformation package",
        "aws cloudformation deploy",
        "aws redshift-data batch-execute-statement",
    ]
    positions = [next(i for i, s in enumerate(steps) if s.startswith(o[:30])) for o in order]
    assert positions == sorted(positions), steps
    uploads = [c.split()[-1] for c in calls if c.startswith("aws s3 cp")]
    assert [u.rsplit("/", 1)[1] for u in uploads] == [
        "retail_transform.py",
        "retail_transform_libs.zip",
        *WHEELS,
    ]
    # What make package built, keyed by its recorded hashes.
    sources = [c.split()[-2] for c in calls if c.startswith("aws s3 cp")]
    assert sources == [
        f"{tmp_path}/dist/glue/retail_transform.py",
        f"{tmp_path}/dist/glue/retail_transform_libs.zip",
        *(f"{tmp_path}/dist/glue/wheelhouse/{name}" for name in WHEELS),
    ]
    assert all(f"/glue/{'a' * 16}/" in u for u in uploads[:2])
    wheelhouse = f"online-retail-pipeline/glue/wheelhouse/{'c' * 16}"
    assert uploads[2:] == [f"s3://artifacts/{wheelhouse}/{name}" for name in WHEELS]
    cfn_deploy = _cloudformation_deploy(calls)
    # The job installs exactly the uploaded wheels (pip --no-index), and its role reads exactly that prefix.
    assert f"GluePythonModules={','.join(uploads[2:])}" in cfn_deploy
    assert f"GlueWheelhouseKeyPrefix={wheelhouse}" in cfn_deploy
    assert "CAPABILITY_AUTO_EXPAND" in cfn_deploy  # the SAM transform
    assert "CAPABILITY_NAMED_IAM" in cfn_deploy  # the build task's role is named: its database user is
    script_key = uploads[0].removeprefix("s3://artifacts/")
    assert f"GlueScriptKey={script_key}" in cfn_deploy
    assert "ImageUri=123456789012.dkr.ecr.eu-west-1.amazonaws.com/online-retail-pipeline:abc123" in cfn_deploy
    assert "PrivateSubnetIds=subnet-a,subnet-b,subnet-c" in cfn_deploy
    package = next(c for c in calls if c.startswith("aws cloudformation package"))
    assert "--template-file infra/template.yaml" in package
    # Packaged, the template is over the 51,200 bytes CloudFormation takes inline: deploy must upload it.
    assert "--s3-bucket artifacts --s3-prefix online-retail-pipeline/cloudformation" in cfn_deploy


def test_deploy_says_what_is_missing_before_touching_aws(tmp_path):
    done, calls = _deploy(tmp_path, VPC_ID="vpc-1", SUBNET_IDS="subnet-a", DIST=str(_dist(tmp_path)))
    assert done.returncode != 0
    assert "ARTIFACT_BUCKET" in done.stderr
    assert calls == []


def test_deploy_builds_nothing_and_stops_without_make_packages_output(tmp_path):
    done, calls = _deploy(
        tmp_path,
        ARTIFACT_BUCKET="artifacts",
        VPC_ID="vpc-1",
        SUBNET_IDS="subnet-a",
        DIST=str(tmp_path / "none"),
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("deploy: no ")
    assert "make package" in done.stderr
    assert calls == []


# --- the network, checked before anything is built ----------------------------------------------------------------


def test_subnets_routed_to_a_nat_pass_and_the_stack_adds_the_s3_gateway_to_their_route_tables(tmp_path):
    done, calls = deploy(tmp_path, network(tmp_path, nat=True))
    assert done.returncode == 0, done.stderr
    assert "S3GatewayRouteTableIds=rtb-main,rtb-private" in _cloudformation_deploy(calls)
    assert "warning" not in done.stderr


@pytest.mark.parametrize(
    ("made_by", "given"), [("other", ""), ("online-retail-pipeline", "rtb-main,rtb-private")]
)
def test_an_s3_gateway_already_there_is_not_made_again_unless_it_is_the_stacks_own(tmp_path, made_by, given):
    done, calls = deploy(tmp_path, network(tmp_path, s3_gateway=made_by))
    assert done.returncode == 0, done.stderr
    # A second endpoint on the same route tables fails; the stack's own must stay given, or the update deletes it.
    assert f"S3GatewayRouteTableIds={given} " in _cloudformation_deploy(calls) + " "


def test_subnets_without_a_nat_but_with_every_interface_endpoint_pass_with_a_warning_about_kaggle(tmp_path):
    done, calls = deploy(tmp_path, network(tmp_path, nat=False, interfaces=INTERFACES))
    assert done.returncode == 0, done.stderr
    [warning] = [line for line in done.stderr.splitlines() if "warning" in line]
    assert "Kaggle" in warning and "subnet-a" in warning and "subnet-c (rtb-main)" in warning
    assert _cloudformation_deploy(calls)


@pytest.mark.parametrize(
    ("interfaces", "named"),
    [
        ([], "ecr.api, ecr.dkr, logs, secretsmanager, monitoring, redshift-serverless"),
        (["ecr.api", "ecr.dkr", "secretsmanager", "redshift-serverless"], "logs, monitoring"),
        (["ecr.api", "ecr.dkr", "logs", "secretsmanager", "monitoring"], "redshift-serverless"),
    ],
)
def test_subnets_with_neither_a_nat_nor_the_endpoints_stop_the_deploy_in_one_line(
    tmp_path, interfaces, named
):
    done, calls = deploy(tmp_path, network(tmp_path, nat=False, interfaces=interfaces))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith(
        "deploy: subnet-a (rtb-private), subnet-b (rtb-private), subnet-c (rtb-main): no route"
    )
    assert f"no interface endpoint (private DNS on) for {named}:" in line
    assert "Traceback" not in done.stderr
    assert _built_or_deployed(calls) == []  # nothing built, pushed, uploaded or deployed


def test_subnets_in_two_availability_zones_stop_the_deploy(tmp_path):
    zones = {"subnet-a": f"{REGION}a", "subnet-b": f"{REGION}b", "subnet-c": f"{REGION}a"}
    done, calls = deploy(tmp_path, network(tmp_path, zones=zones))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"deploy: SUBNET_IDS span 2 Availability Zone(s) ({REGION}a, {REGION}b): Redshift Serverless needs three"
    )
    assert _built_or_deployed(calls) == []


def test_a_subnet_the_account_does_not_have_stops_the_deploy(tmp_path):
    done, calls = deploy(tmp_path, network(tmp_path), SUBNET_IDS="subnet-a,subnet-b,subnet-x")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"deploy: no subnet subnet-x in {REGION}: check SUBNET_IDS"
    assert _built_or_deployed(calls) == []


def test_the_image_is_tagged_by_what_it_is_built_from(tmp_path):
    """The tag was the commit, though dist/ may be built from a dirty tree, and the repository's tags are
    immutable: a later deploy of that commit reused whatever had been pushed under it first."""
    tags = {}
    for name, wheel_sha in (("one", "d" * 64), ("again", "d" * 64), ("changed", "e" * 64)):
        folder = tmp_path / name
        (folder / "built").mkdir(parents=True)
        dist = _dist(folder / "built")
        manifest = json.loads((dist / "MANIFEST.json").read_text())
        manifest["wheel"]["sha256"] = wheel_sha
        (dist / "MANIFEST.json").write_text(json.dumps(manifest))
        done, calls = deploy(folder, network(folder), DIST=str(dist), IMAGE_TAG="")
        assert done.returncode == 0, done.stderr
        [push] = [c for c in calls if c.startswith("docker push")]
        tags[name] = push.rsplit(":", 1)[1]
    built_from = [
        hashlib.sha256((REPO / f).read_bytes()).hexdigest() for f in ("Dockerfile", "constraints.txt")
    ]
    assert tags["one"] == hashlib.sha256("".join(["d" * 64, *built_from]).encode()).hexdigest()[:16]
    assert tags["again"] == tags["one"] != tags["changed"]


# --- the schedule ------------------------------------------------------------------------------------------------


def test_the_schedule_state_is_passed_only_when_asked_for(tmp_path):
    # Unset, the stack keeps its own: DISABLED on a first deploy, whatever the checklist set afterwards.
    first, enable = tmp_path / "first", tmp_path / "enable"
    first.mkdir()
    enable.mkdir()
    done, calls = deploy(first, network(first))
    assert done.returncode == 0, done.stderr
    assert "ScheduleState" not in _cloudformation_deploy(calls)
    done, calls = deploy(enable, network(enable), SCHEDULE_STATE="ENABLED")
    assert done.returncode == 0, done.stderr
    assert _cloudformation_deploy(calls).endswith("ScheduleState=ENABLED")


def test_the_alert_email_and_the_glue_workers_are_passed_only_when_given(tmp_path):
    """Passed empty on every deploy, a later `make deploy` without ALERT_EMAIL removed the e-mail subscription
    (and GLUE_WORKERS went back to 2): unset, the stack keeps what it has; ALERT_EMAIL set empty removes it."""
    runs = {
        "unset": {},
        "given": {"ALERT_EMAIL": "ops@example.com", "GLUE_WORKERS": "4"},
        "emptied": {"ALERT_EMAIL": ""},
    }
    passed = {}
    for name, settings in runs.items():
        (tmp_path / name).mkdir()
        done, calls = deploy(tmp_path / name, network(tmp_path / name), **settings)
        assert done.returncode == 0, done.stderr
        cfn_deploy = _cloudformation_deploy(calls)
        passed[name] = [p for p in cfn_deploy.split() if p.startswith(("AlertEmail=", "GlueWorkers="))]
    assert passed == {
        "unset": [],
        "given": ["GlueWorkers=4", "AlertEmail=ops@example.com"],
        "emptied": ["AlertEmail="],
    }


def test_a_schedule_state_that_is_not_one_stops_the_deploy_before_aws(tmp_path):
    done, calls = deploy(tmp_path, network(tmp_path), SCHEDULE_STATE="on")
    assert done.returncode == 2
    assert "SCHEDULE_STATE=on: use ENABLED or DISABLED" in done.stderr
    assert calls == []


def test_a_wheelhouse_that_does_not_match_its_manifest_stops_the_deploy_before_aws(tmp_path):
    dist = _dist(tmp_path)
    (dist / "glue" / "wheelhouse" / WHEELS[1]).write_bytes(b"another build")
    done, calls = _deploy(
        tmp_path, ARTIFACT_BUCKET="artifacts", VPC_ID="vpc-1", SUBNET_IDS="subnet-a", DIST=str(dist)
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"deploy: the Glue wheelhouse in {dist} is missing or does not match MANIFEST.json: run `make package`"
    )
    assert calls == []


# --- the build's database user, after the stack --------------------------------------------------------------------

BUILD_USER = '"IAMR:online-retail-build-task-eu-west-1"'


def _data_api(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("aws redshift-data ") and "-statement " in c and "--id" not in c]


def _sql(call: str) -> str:
    """The SQL of one logged execute-statement (--sql) or batch-execute-statement (--sqls, space-joined)."""
    return re.split(r" --sqls? ", call, maxsplit=1)[1].removesuffix(" --output json")


def test_after_the_stack_the_build_user_is_created_and_granted_as_the_admin_by_secret_arn(tmp_path):
    done, calls = deploy(tmp_path, network(tmp_path))
    assert done.returncode == 0, done.stderr
    statements = _data_api(calls)
    target = (
        "--workgroup-name online-retail-warehouse --database retail --secret-arn "
        + STACK_OUTPUTS["RedshiftSecretArn"]
    )
    assert all(target in s for s in statements), statements
    # A new warehouse: the user is missing (no row), nothing of the build's is owned by another user.
    assert [_sql(s) for s in statements] == [
        "select usename from pg_user where usename = 'IAMR:online-retail-build-task-eu-west-1'",
        _sql(statements[1]),
        f'create user {BUILD_USER} password disable grant create on database "retail" to {BUILD_USER}',
        "revoke assumerole on all from public for all",
        f"grant assumerole on '{STACK_OUTPUTS['RedshiftCopyRoleArn']}' to {BUILD_USER} for copy",
    ]
    assert all(
        f"from {catalogue} " in statements[1] for catalogue in ("pg_namespace", "pg_tables", "pg_views")
    )
    # The user and its CREATE in one transaction; the ASSUMEROLE statements each on their own, outside one.
    kinds = [s.split()[2] for s in statements]
    assert kinds == ["execute-statement"] * 2 + ["batch-execute-statement"] + ["execute-statement"] * 2
    assert "database user IAMR:online-retail-build-task-eu-west-1 created" in done.stdout
    # The deployer's credentials read the admin secret inside the Data API: nothing here ever holds it.
    assert not any("get-secret-value" in c for c in calls)


def _owned_by_the_admin(warehouse: Path, rows: list[list[str]]) -> None:
    """The stand-in warehouse already has the build's user (statement 1) and these objects owned by another."""
    warehouse.mkdir(exist_ok=True)
    (warehouse / "statement-1.json").write_text(json.dumps({"Records": [[{"stringValue": "IAMR:x"}]]}))
    records = [[{"stringValue": value} for value in row] for row in rows]
    (warehouse / "statement-2.json").write_text(json.dumps({"Records": records}))


def test_a_warehouse_an_earlier_stack_built_as_the_admin_is_handed_to_the_build_user(tmp_path):
    owned = [
        ["schema", "gold", ""],
        ["schema", "staging", ""],
        ["table", "gold", "customers"],
        ["view", "staging", "stg_online_retail__sales"],
    ]
    _owned_by_the_admin(tmp_path / "warehouse", owned)
    done, calls = deploy(tmp_path, network(tmp_path))
    assert done.returncode == 0, done.stderr
    statements = _data_api(calls)
    assert not any("create user" in s for s in statements)
    assert _sql(statements[2]) == (
        f'grant create on database "retail" to {BUILD_USER}'
        f' alter schema "gold" owner to {BUILD_USER} alter schema "staging" owner to {BUILD_USER}'
        f' alter table "gold"."customers" owner to {BUILD_USER}'
        f' alter table "staging"."stg_online_retail__sales" owner to {BUILD_USER}'
    )
    assert "4 schema(s) and relation(s) handed over" in done.stdout


def test_a_hand_over_larger_than_a_data_api_batch_goes_in_batches_of_40(tmp_path):
    """batch-execute-statement takes at most 40 statements: a warehouse with stored failing rows of many tests
    has more relations than that to hand over."""
    owned = [["schema", "dbt_test__audit", ""]] + [
        ["table", "dbt_test__audit", f"t{n:02d}"] for n in range(60)
    ]
    _owned_by_the_admin(tmp_path / "warehouse", owned)
    done, calls = deploy(tmp_path, network(tmp_path))
    assert done.returncode == 0, done.stderr
    batches = [c for c in _data_api(calls) if c.split()[2] == "batch-execute-statement"]
    sizes = [len(re.findall(r"(?:^| )(?:grant create|alter (?:schema|table)) ", _sql(b))) for b in batches]
    assert sizes == [40, 22], sizes
    handed = " ".join(_sql(b) for b in batches)
    assert handed.count(" owner to ") == 61 and f'"t59" owner to {BUILD_USER}' in handed
    assert "61 schema(s) and relation(s) handed over" in done.stdout


def test_a_failed_grant_stops_the_deploy_in_one_line(tmp_path):
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    failed = {"Status": "FAILED", "Error": "ERROR: permission denied for database retail"}
    (warehouse / "statement-3.status.json").write_text(json.dumps(failed))
    done, _ = deploy(tmp_path, network(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "deploy: the build's database user: the grants failed: ERROR: permission denied for database retail"
    )


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("[]", "stack online-retail-pipeline has no output RedshiftWorkgroupName, RedshiftDatabase, "),
        (
            "<html>Rate exceeded</html>",
            "aws cloudformation describe-stacks answered something other than JSON",
        ),
    ],
)
def test_a_stack_whose_outputs_cannot_be_read_stops_the_deploy_in_one_line(tmp_path, answer, said):
    net = network(tmp_path)
    (net / "stack-outputs.json").write_text(answer)
    done, calls = deploy(tmp_path, net)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"deploy: the build's database user: {said}"), line
    assert "Traceback" not in done.stderr
    assert not _data_api(calls)
