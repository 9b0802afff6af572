"""The Redshift COPY role may read exactly what the warehouse load reads, checked against the SQL dbt would send.

The Redshift plan (warehouse/redshift_plan.py) is rendered once for the module. Every COPY in it, in whichever
phase file it lands (all but dbt's own ``.dbt/`` and ``_catalog.sql``), becomes the S3 calls Redshift makes for
it: COPY FROM a key prefix lists the bucket with that prefix, then gets each object the listing returned; with
MANIFEST it gets the manifest object, then each file the manifest lists, and lists nothing (a JSONPaths file is one
more get). The plan's lake (LAKE) is mapped onto the deployed lake bucket, which holds what a run leaves for the
day: written by the real ``S3Lake`` (its ``promote`` writes the part files, the COPY manifest and the partition
manifest) on moto, in-process. Each call is put to the template's COPY role through the IAM evaluator of
tests/fakes/cfn_template.py, both ways: every call the load makes is allowed, and every Allow of the role is used
by some call.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from retail_core import dialect, layout
from retail_core.lake import S3Lake
from tests.fakes import cfn_template
from tests.fakes.cfn_template import Request
from warehouse.redshift_plan import COPY_ROLE, INGEST_DATE, LAKE, render_plan

pytestmark = pytest.mark.integration

S3_READS = {"s3:GetObject", "s3:ListBucket"}
_S3_LITERAL = re.compile(r"'s3://[^']*'")
# The generation a COPY manifest's name carries (layout.copy_manifest_name).
_COPY_MANIFEST = re.compile(r"/_copy_manifest-(?P<generation>[^/]+)\.json$")
# The generation of a day the plan loads no lines of (its run report only).
_OTHER_GENERATION = "0123456789ab"


@dataclass(frozen=True)
class Copy:
    """One COPY of the plan: where it is written, what it reads from, and how."""

    where: str
    source: str
    manifest: bool = False
    also_reads: tuple[str, ...] = ()  # other s3:// objects the statement names (a JSONPaths file)


@dataclass(frozen=True)
class Read:
    """One S3 call a COPY makes, already mapped onto the deployed lake, and the COPY it is for."""

    request: Request
    copy: Copy

    def __str__(self) -> str:
        return f"{self.copy.where}: COPY from '{self.copy.source}' makes {self.request}"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("redshift_plan")
    render_plan(out)
    return out


def _planned_files(plan: Path) -> list[Path]:
    """Every phase's files but dbt's own; _sequence.sql (every statement again) last, so reads name their node's."""
    files = [p for p in plan.rglob("*.sql") if ".dbt" not in p.parts and p.name != "_catalog.sql"]
    return sorted(files, key=lambda p: (p.name.startswith("_"), p))


def _s3_texts(node: exp.Expression) -> list[str]:
    """Every s3:// string under ``node``: sqlglot keeps some COPY options' values as Var, not Literal."""
    return [n.name for n in node.find_all(exp.Literal, exp.Var) if n.name.startswith("s3://")]


def copies(plan: Path) -> list[Copy]:
    """Every COPY the plan's files hold; fails when an s3:// string of a file is not a COPY's."""
    found: list[Copy] = []
    for path in _planned_files(plan):
        text = path.read_text(encoding="utf-8")
        if "s3://" not in text:
            continue
        where = str(path.relative_to(plan))
        in_file: list[str] = []
        for statement in sqlglot.parse(text, read="redshift", error_level=ErrorLevel.RAISE):
            for node in statement.find_all(exp.Copy) if statement else []:
                assert node.args.get("kind") is not False, f"{where}: COPY TO (an unload) is not a read"
                credentials = node.args.get("credentials")
                role = credentials.args.get("iam_role") if credentials else None
                assert role is not None and role.name == COPY_ROLE, (
                    f"{where}: a COPY without the load's iam_role"
                )
                params = [v.name.upper() for p in node.args.get("params", []) for v in p.find_all(exp.Var)]
                sources = [f.name for f in node.args["files"]]
                extra = [s for p in node.args.get("params", []) for s in _s3_texts(p)]
                for source in sources:
                    found.append(Copy(where, source, "MANIFEST" in params, tuple(extra)))
                in_file += sources + extra
        literals = [m.strip("'") for m in _S3_LITERAL.findall(text)]
        assert sorted(in_file) == sorted(literals), f"{where}: s3:// strings outside a COPY: {literals}"
    return found


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _deployed_lake() -> tuple[str, str]:
    """(bucket, key prefix) of the lake the deployed build task loads from (its RETAIL_LAKE)."""
    [container] = cfn_template.load()["Resources"]["BuildTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    bucket, prefix = _split_s3(cfn_template.evaluate(env["RETAIL_LAKE"]).rstrip("/"))
    return bucket, f"{prefix}/" if prefix else ""


def _lake_key(uri: str, copy: Copy) -> str:
    """The plan's s3://LAKE/<key> as the deployed lake's key."""
    plan_bucket, plan_prefix = _split_s3(LAKE.rstrip("/"))
    bucket, key = _split_s3(uri)
    assert bucket == plan_bucket and key.startswith(f"{plan_prefix}/"), (
        f"{copy.where}: COPY reads {uri}, outside the lake {LAKE}: no template role is checked for it"
    )
    return key.removeprefix(f"{plan_prefix}/")


def _write_day(lake: S3Lake, day: dt.date, generation: str) -> None:
    """What a complete run leaves for ``day``, written as the stages write it: the raw file and its manifest,
    the zones promoted from staging as ``generation`` (two processed part files, one of returns, one
    quarantined), the run
    report, another run's staging, the dbt artifacts and the date's lease."""
    lake.write_bytes(layout.raw_key(day), b"x")
    lake.write_json(layout.raw_manifest_key(day), {"rows": 1})
    for zone, published, parts in (
        (layout.PROCESSED_ZONE, layout.processed_prefix(day), 2),
        (layout.RETURNS_ZONE, layout.returns_prefix(day), 1),
        (layout.QUARANTINE_ZONE, layout.quarantine_prefix(day), 1),
    ):
        staging = layout.staging_prefix(zone, day, generation)
        for number in range(parts):
            lake.write_bytes(f"{staging}/part-{number:05d}{dialect.FILE_SUFFIX}", b"a\tb\n")
        lake.write_bytes(f"{staging}/{layout.SUCCESS_NAME}", b"")
        lake.promote(staging, published, generation=generation)
    lake.write_json(
        layout.run_report_key(day), {"status": "succeeded", "generation": generation, "rows_returns": 1}
    )
    lake.write_bytes(f"{layout.staging_prefix(layout.PROCESSED_ZONE, day, 'run-1')}/part-00000.tsv", b"x")
    lake.write_bytes(
        f"{layout.staging_prefix(layout.QUALITY_ZONE, day, 'run-1')}/{layout.RUN_REPORT_NAME}", b"{}"
    )
    lake.write_json(layout.lease_key(day), {"stage": "transform"})
    lake.write_bytes(f"{layout.ARTIFACTS_ZONE}/{layout.DATASET}/run_id=run-1/run_results.json", b"{}")


def lake_objects(generations: dict[dt.date, str]) -> dict[str, bytes]:
    """The deployed lake after a run of each day (as ``generation``): its keys relative to the lake root, and
    their bytes."""
    import boto3
    from moto import mock_aws

    bucket, root = _deployed_lake()
    region = cfn_template.DEPLOYED["AWS::Region"]
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with mock.patch.dict(os.environ, credentials), mock_aws():
        client = boto3.client("s3", region_name=region)
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        lake = S3Lake(f"s3://{bucket}/{root}".rstrip("/"), client=client)
        for day, generation in sorted(generations.items()):
            _write_day(lake, day, generation)
        return {key: lake.read_bytes(key) for key in lake.list_keys("")}


def _bucket_arn(bucket: str) -> str:
    return f"arn:{cfn_template.DEPLOYED['AWS::Partition']}:s3:::{bucket}"


def lake_for(found: list[Copy]) -> dict[str, bytes]:
    """What the lake holds when the COPYs run: every object of each day they name (a plan may load several),
    each day published as the generation its COPY manifest names."""
    generations: dict[dt.date, str] = {}
    for copy in found:
        for uri in (copy.source, *copy.also_reads):
            day = layout.parse_ingest_date(uri)
            if day is None:
                continue
            named = _COPY_MANIFEST.search(uri) if copy.manifest and uri == copy.source else None
            if named:
                assert generations.get(day, named["generation"]) == named["generation"], (
                    f"{copy.where}: two generations of {day} loaded"
                )
                generations[day] = named["generation"]
            else:
                generations.setdefault(day, _OTHER_GENERATION)
    assert generations, "no COPY names an ingest_date= partition"
    return lake_objects(generations)


def reads(found: list[Copy], objects: dict[str, bytes]) -> list[Read]:
    """The S3 calls Redshift makes for ``found`` in a lake holding ``objects`` (keys relative to its root)."""
    bucket, root = _deployed_lake()
    bucket_arn = _bucket_arn(bucket)
    calls: dict[Request, Read] = {}

    def add(request: Request, copy: Copy) -> None:
        calls.setdefault(request, Read(request, copy))

    for copy in found:
        key = _lake_key(copy.source, copy)
        if copy.manifest:  # the manifest names the files; they are not in the SQL
            add(Request("s3:GetObject", f"{bucket_arn}/{root}{key}"), copy)
            assert key in objects, f"{copy.where}: COPY manifest '{copy.source}' is not in the lake"
            for entry in json.loads(objects[key])["entries"]:
                listed_bucket, listed = _split_s3(entry["url"])
                assert listed_bucket == bucket and listed.startswith(root), (
                    f"{copy.where}: the manifest lists {entry['url']}, outside the lake"
                )
                assert listed.removeprefix(root) in objects, f"{copy.where}: {entry['url']} is not there"
                add(Request("s3:GetObject", f"{bucket_arn}/{listed}"), copy)
        else:
            add(Request("s3:ListBucket", bucket_arn, (("s3:prefix", f"{root}{key}"),)), copy)
            listed = [o for o in objects if o.startswith(key)]
            assert listed, f"{copy.where}: COPY from '{copy.source}' finds no object of a run's in the lake"
            for obj in listed:
                add(Request("s3:GetObject", f"{bucket_arn}/{root}{obj}"), copy)
        for uri in copy.also_reads:
            add(Request("s3:GetObject", f"{bucket_arn}/{root}{_lake_key(uri, copy)}"), copy)
    return list(calls.values())


def _copy_role() -> str:
    resources = cfn_template.load()["Resources"]
    [role] = resources["RedshiftNamespace"]["Properties"]["DefaultIamRoleArn"]["Fn::GetAtt"][:1]
    [build] = resources["BuildTaskDefinition"]["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in build["Environment"]}
    # The COPYs name REDSHIFT_COPY_IAM_ROLE (COPY_ROLE in the plan): the build task's is the namespace's role.
    assert env["REDSHIFT_COPY_IAM_ROLE"] == {"Fn::GetAtt": [role, "Arn"]}
    return role


@pytest.fixture(scope="module")
def load_reads(plan: Path) -> list[Read]:
    found = copies(plan)
    assert found, "the rendered plan holds no COPY"
    assert any(layout.parse_ingest_date(c.source) == INGEST_DATE for c in found)
    return reads(found, lake_for(found))


def test_the_load_copies_exactly_the_files_the_partition_manifest_names_and_the_run_report(
    load_reads: list[Read],
) -> None:
    bucket, root = _deployed_lake()
    objects = lake_for([r.copy for r in load_reads])
    gets = {
        r.request.resource.removeprefix(f"{_bucket_arn(bucket)}/{root}")
        for r in load_reads
        if r.request.action == "s3:GetObject"
    }
    for prefix, parts in ((layout.processed_prefix(INGEST_DATE), 2), (layout.returns_prefix(INGEST_DATE), 1)):
        partition = json.loads(objects[f"{prefix}/{layout.MANIFEST_NAME}"])
        named = {f"{prefix}/{entry['name']}" for entry in partition["files"]}
        assert len(named) == parts
        read_in_partition = {key for key in gets if key.startswith(f"{prefix}/")}
        # The part files the partition manifest names, through the COPY manifest it names; not the partition
        # manifest itself (COPY would read its JSON as lines), nor anything else of the folder.
        assert read_in_partition == {*named, f"{prefix}/{partition['copy_manifest']}"}
        assert not any(r.request.action == "s3:ListBucket" and prefix in str(r.request) for r in load_reads)
    assert layout.run_report_key(INGEST_DATE) in gets


def test_the_copy_role_allows_every_read_the_load_makes(load_reads: list[Read]) -> None:
    role = _copy_role()
    statements = cfn_template.role_statements(role)
    denied = [str(r) for r in load_reads if not cfn_template.allows(statements, r.request)]
    assert denied == [], f"{role} does not allow:\n" + "\n".join(denied)


def _other_day(uri: str) -> str:
    """``uri`` with its ingest date moved eight years on."""
    day = layout.parse_ingest_date(uri)
    return uri.replace(layout.partition(day), layout.partition(day + dt.timedelta(days=2923))) if day else uri


def test_the_copy_role_allows_the_same_reads_on_any_other_day(plan: Path) -> None:
    """The role is not pinned to the rendered dates: the load runs for a new ingest date every day."""
    found = [
        Copy(c.where, _other_day(c.source), c.manifest, tuple(_other_day(u) for u in c.also_reads))
        for c in copies(plan)
    ]
    assert not {c.source for c in found} & {c.source for c in copies(plan)}
    statements = cfn_template.role_statements(_copy_role())
    denied = [str(r) for r in reads(found, lake_for(found)) if not cfn_template.allows(statements, r.request)]
    assert denied == [], "\n".join(denied)


def test_the_copy_role_grants_no_read_the_load_does_not_make(load_reads: list[Read]) -> None:
    role = _copy_role()
    statements = cfn_template.role_statements(role)
    lake_key = cfn_template.evaluate({"Fn::GetAtt": ["PipelineKey", "Arn"]})
    requests = [r.request for r in load_reads]
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        actions = set(cfn_template.as_list(statement["Action"]))
        if actions == {"kms:Decrypt"}:  # the lake is SSE-KMS with this key: every get decrypts
            assert cfn_template.as_list(statement["Resource"]) == [lake_key]
            # ...as S3 does it for the COPY, never a Decrypt of the role's own.
            assert cfn_template.allows([statement], Request("kms:Decrypt", lake_key, cfn_template.via("s3")))
            assert not cfn_template.allows([statement], Request("kms:Decrypt", lake_key))
            continue
        assert actions <= S3_READS and len(actions) == 1, f"{role}: {statement}"
        [action] = actions
        used = [q for q in requests if q.action == action]
        for resource in cfn_template.as_list(statement["Resource"]):
            assert any(cfn_template.wildcard_match(resource, q.resource) for q in used), (
                f"{role} allows {action} on {resource}, which no COPY of the load reads"
            )
        if action == "s3:ListBucket":
            # Only by prefix: a list of the whole bucket reads every key's name.
            assert statement.get("Condition", {}).keys() == {"StringLike"}, f"{role}: {statement}"
            assert statement["Condition"]["StringLike"].keys() == {"s3:prefix"}, f"{role}: {statement}"
            for pattern in cfn_template.as_list(statement["Condition"]["StringLike"]["s3:prefix"]):
                assert any(
                    cfn_template.wildcard_match(pattern, dict(q.context)["s3:prefix"]) for q in used
                ), f"{role} lists the prefix {pattern}, which no COPY of the load lists"
    # Concretely: of what the lake holds for the days loaded, what the load does not read stays closed.
    bucket, root = _deployed_lake()
    bucket_arn = _bucket_arn(bucket)
    read_objects = {q.resource for q in requests if q.action == "s3:GetObject"}
    unread = [f"{bucket_arn}/{root}{key}" for key in lake_for([r.copy for r in load_reads])]
    unread = [arn for arn in unread if arn not in read_objects]
    assert unread, "the lake model holds nothing the load leaves alone: this check would check nothing"
    opened = [arn for arn in unread if cfn_template.allows(statements, Request("s3:GetObject", arn))]
    assert opened == [], f"{role} may read objects the load does not: {opened}"
    partition = f"{layout.processed_prefix(INGEST_DATE)}/"
    for prefix in [
        "",
        f"{layout.PROCESSED_ZONE}/",
        f"{layout.QUALITY_ZONE}/",
        f"{layout.QUARANTINE_ZONE}/",
        partition,  # the lines' COPY lists nothing: the COPY manifest names its files
        f"{partition}{layout.PART_PREFIX}",
    ]:
        request = Request("s3:ListBucket", bucket_arn, (("s3:prefix", f"{root}{prefix}"),))
        assert not cfn_template.allows(statements, request), f"{role} may list {prefix or 'the whole bucket'}"
    assert not cfn_template.allows(statements, Request("s3:ListBucket", bucket_arn))


def test_a_manifest_copy_gets_its_manifest_and_a_jsonpaths_file_without_listing(tmp_path: Path) -> None:
    """The extraction itself, on a hand-written plan: a JSONPaths file, which the rendered plan does not have."""
    day = f"{LAKE}/{layout.processed_prefix(INGEST_DATE)}"
    (tmp_path / "load").mkdir()
    (tmp_path / "load" / "load.sql").write_text(
        f"copy t from '{day}/{layout.copy_manifest_name('g1')}' iam_role '{COPY_ROLE}' manifest "
        f"format as json '{LAKE}/quality/jsonpaths.json';\n\ncommit;\n"
    )
    (tmp_path / "load" / "_catalog.sql").write_text(
        f"copy t from '{LAKE}/ignored/' iam_role '{COPY_ROLE}';\n"
    )
    [found] = copies(tmp_path)
    assert (found.where, found.manifest, found.also_reads) == (
        "load/load.sql",
        True,
        (f"{LAKE}/quality/jsonpaths.json",),
    )
    calls = {
        (r.request.action, r.request.resource.split(":::", 1)[1]) for r in reads([found], lake_for([found]))
    }
    bucket, root = _deployed_lake()
    prefix = f"{bucket}/{root}{layout.processed_prefix(INGEST_DATE)}"
    assert calls == {
        ("s3:GetObject", f"{prefix}/{layout.copy_manifest_name('g1')}"),
        ("s3:GetObject", f"{prefix}/part-00000-g1{dialect.FILE_SUFFIX}"),
        ("s3:GetObject", f"{prefix}/part-00001-g1{dialect.FILE_SUFFIX}"),
        ("s3:GetObject", f"{bucket}/{root}quality/jsonpaths.json"),
    }
    (tmp_path / "load" / "unload.sql").write_text(
        f"unload ('select 1') to '{LAKE}/out/' iam_role 'arn:aws:iam::123456789012:role/r';\n"
    )
    with pytest.raises(AssertionError, match="s3:// strings outside a COPY"):
        copies(tmp_path)
