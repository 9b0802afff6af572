"""Rules over the parsed template, the Dockerfile and the state machine: each one a kind of first-deploy failure
that cfn-lint and checkov let through (issue 12).

* A non-root image with a read-only root filesystem declares a VOLUME for every container path it writes, the
  task definitions mount exactly those, and each is the task user's before its VOLUME line.
* Tags propagated to a task imply ecs:TagResource (with ecs:CreateAction = RunTask) for whoever runs it.
* Every EventBridge rule an alarm watches has a target that may receive its events.
* A lifecycle rule's expiration comes after its last transition, at the smallest value its parameter allows.
* No alarm fires before the first run: on the deploy-day parameters nothing evaluates missing data as breaching,
  and the schedule that would start runs is off until enabled (docs/operations.md, First deploy).
* What is done well is kept: the trust policies, the KMS key policy, the S3 gateway endpoint's shape.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.fakes import cfn_template
from tests.fakes.cfn_template import Request

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
ASL = REPO / "orchestration" / "state_machine.asl.json"


def _resources() -> dict[str, Any]:
    return cfn_template.load()["Resources"]


# --- the image's writable paths ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def final_stage(path: Path = DOCKERFILE) -> list[Instruction]:
    """The instructions of the Dockerfile's last stage (the image ECS runs), continuation lines joined."""
    stages: list[list[Instruction]] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        pending, start = (pending + " " + line.rstrip("\\").strip()).strip(), start or number
        if line.endswith("\\"):
            continue
        keyword, _, args = pending.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), args.strip(), start))
        pending, start = "", 0
    return stages[-1]


def image_env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for item in shlex.split(instruction.args):
                name, _, value = item.partition("=")
                env[name] = re.sub(r"\$(\w+)", lambda m: env.get(m[1], ""), value)
    return env


def volumes(stage: list[Instruction]) -> dict[str, int]:
    """Each VOLUME path and the index of its instruction in the stage."""
    found = {}
    for index, instruction in enumerate(stage):
        if instruction.keyword == "VOLUME":
            args = instruction.args
            paths = json.loads(args) if args.startswith("[") else args.split()
            found.update({p.rstrip("/") or "/": index for p in paths})
    return found


def user_uid(stage: list[Instruction]) -> str:
    users = [i.args.split(":")[0] for i in stage if i.keyword == "USER"]
    assert users, "the image runs as root: no USER"
    return users[-1]


def made_the_users(stage: list[Instruction], path: str, uid: str, before: int) -> bool:
    """Whether a RUN before instruction ``before`` gives ``path`` to ``uid`` (chown, or install -d -o)."""
    for instruction in stage[:before]:
        if instruction.keyword != "RUN":
            continue
        for command in re.split(r"&&|;", instruction.args):
            words = shlex.split(command)
            if not words:
                continue
            if words[0] == "chown" and words[1].split(":")[0] == uid and path in words[2:]:
                return True
            if words[0] == "install" and "-d" in words and path in words:
                owner = words[words.index("-o") + 1] if "-o" in words else ""
                if owner == uid:
                    return True
    return False


# Environment variables that say where the task's code writes, and who writes there. The image must set each to
# a path inside one of its volumes (or the task definition must): left unset, each falls back to a path on the
# read-only root (dbt's target/ and logs/ inside the installed project, the home of a user with none).
WRITTEN_BY = {
    "TMPDIR": "tempfile: S3Lake.writer's local copy, the Kaggle download (ingestion/sources/kaggle.py)",
    "HOME": "the Kaggle client's and dbt's own files (~/.kaggle, ~/.dbt)",
    "DBT_TARGET_PATH": "dbt's target/ (warehouse/project.py target_dir; entrypoint.ship_artifacts reads it)",
    "DBT_LOG_PATH": "dbt's logs/",
}


# Where a variable left unset sends the writes: tempfile's first choice (it falls back to /var/tmp, then the working
# directory, only when /tmp is not writable).
DEFAULTS = {"TMPDIR": "/tmp"}


def _readers(variable: str) -> list[str]:
    """Where the variable is read: our code, dbt's command line (its envvar names) or the standard library."""
    import importlib.util

    def module_text(name: str) -> str:  # found and read, not imported: dbt.cli takes seconds to import
        top, *rest = name.split(".")
        spec = importlib.util.find_spec(top)
        folder = Path(next(iter(spec.submodule_search_locations or []), Path(spec.origin).parent))
        path = folder.joinpath(*rest).with_suffix(".py") if rest else Path(spec.origin)
        return path.read_text()

    sources = {
        **{
            str(p.relative_to(REPO)): p.read_text()
            for f in ("orchestration", "warehouse", "ingestion", "retail_core")
            for p in (REPO / f).rglob("*.py")
        },
        "dbt.cli.params": module_text("dbt.cli.params"),
        "tempfile": module_text("tempfile"),
    }
    return [where for where, text in sources.items() if variable in text]


def _task_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (name, properties, container)
        for name, properties in cfn_template.resources("AWS::ECS::TaskDefinition").items()
        for container in properties["ContainerDefinitions"]
    ]


def test_every_path_the_task_writes_is_inside_a_volume_the_image_declares_and_the_task_mounts():
    stage = final_stage()
    uid = user_uid(stage)
    assert uid.isdigit() and int(uid) != 0, f"USER {uid}: run as a numeric, non-root uid"
    declared = volumes(stage)
    env = image_env(stage)
    workdirs = [i.args for i in stage if i.keyword == "WORKDIR"]
    containers = _task_containers()
    assert containers
    for task, properties, container in containers:
        assert container["ReadonlyRootFilesystem"] is True, task  # the rule below is what makes that work
        task_env = {e["Name"]: str(e["Value"]) for e in container.get("Environment", [])}
        written = {name: task_env.get(name, env.get(name, DEFAULTS.get(name))) for name in WRITTEN_BY}
        written["WORKDIR"] = workdirs[-1] if workdirs else None
        for name, path in written.items():
            assert path, (
                f"{task}: {name} is not set, so its writes go to the read-only root: {WRITTEN_BY.get(name)}"
            )
            assert PurePosixPath(path).is_absolute(), f"{task}: {name}={path} is not absolute"
            inside = [v for v in declared if PurePosixPath(path).is_relative_to(v)]
            assert inside, f"{task}: {name}={path} is in no VOLUME of the image {sorted(declared)}"
        # ECS gives a bind mount the owner and mode of the image's folder only where a VOLUME names that path.
        volume_names = {v["Name"] for v in properties.get("Volumes", [])}
        mounts = {m["ContainerPath"].rstrip("/"): m for m in container.get("MountPoints", [])}
        assert set(mounts) == set(declared), (
            f"{task} mounts {sorted(mounts)}, the image declares {sorted(declared)}"
        )
        for path, mount in mounts.items():
            assert mount["SourceVolume"] in volume_names and not mount.get("ReadOnly", False), (task, path)
    for path, index in declared.items():
        assert made_the_users(stage, path, uid, index), (
            f"VOLUME {path}: no RUN before it gives the folder to uid {uid} (chown / install -d -o): ECS would "
            "create it owned by root, mode 0755, and the task could not write there"
        )


def test_the_variables_that_place_the_tasks_writes_are_the_ones_the_code_reads():
    readers = {variable: _readers(variable) for variable in WRITTEN_BY}
    assert all(readers.values()), readers
    assert "tempfile" in readers["TMPDIR"] and "dbt.cli.params" in readers["DBT_LOG_PATH"]
    assert (
        "warehouse/project.py" in readers["DBT_TARGET_PATH"]
        and "orchestration/entrypoint.py" in readers["DBT_TARGET_PATH"]
    )


# --- tags propagated imply ecs:TagResource -------------------------------------------------------------------


def test_a_role_that_starts_tagged_tasks_may_tag_them():
    """RunTask with PropagateTags (or Tags) tags the task it creates; ECS authorizes that as ecs:TagResource with
    ecs:CreateAction = RunTask. Stack-level tags reach every task definition, so any propagation tags."""
    definition = json.loads(ASL.read_text())
    statements = cfn_template.role_statements("StateMachineRole")
    cluster = cfn_template.evaluate({"Ref": "Cluster"})
    region, account = cfn_template.DEPLOYED["AWS::Region"], cfn_template.DEPLOYED["AWS::AccountId"]
    task = f"arn:aws:ecs:{region}:{account}:task/{cluster}/0123456789abcdef"
    tagged = [
        name
        for name, state in definition["States"].items()
        if state.get("Resource", "").startswith("arn:aws:states:::ecs:runTask")
        and (state["Parameters"].get("PropagateTags", "NONE") != "NONE" or "Tags" in state["Parameters"])
    ]
    assert tagged, "no Task state tags its task: this rule checks nothing (drop it, or the propagation)"
    request = Request("ecs:TagResource", task, (("ecs:CreateAction", "RunTask"),))
    assert cfn_template.allows(statements, request), f"{tagged} tag their tasks; StateMachineRole may not"
    # Only on creation, through RunTask: not tagging at large.
    assert not cfn_template.allows(statements, Request("ecs:TagResource", task))
    for name, properties in cfn_template.resources("AWS::ECS::Service").items():  # none today
        assert properties.get("PropagateTags", "NONE") == "NONE", name


# --- alarms on EventBridge rules -----------------------------------------------------------------------------


def _log_group_arn(target_arn: str) -> str | None:
    match = re.fullmatch(r"(arn:aws:logs:[^:]+:\d+:log-group:[^:]+)", target_arn)
    return match[1] if match else None


def test_every_rule_an_alarm_watches_has_a_target_that_may_receive_its_events():
    watched = []
    for alarm_id, alarm in cfn_template.resources("AWS::CloudWatch::Alarm").items():
        for metric in cfn_template.alarm_metrics(alarm):
            if metric["Namespace"] != "AWS/Events":
                continue
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert "RuleName" in dims, f"{alarm_id} watches AWS/Events without a RuleName"
            kind, rule = dims["RuleName"]
            assert kind == "Ref", f"{alarm_id} names its rule by hand: Ref the rule"
            watched.append((alarm_id, rule))
    assert watched, "no alarm watches a rule: this rule checks nothing"
    policies = [
        json.loads(cfn_template.evaluate(p["PolicyDocument"]))
        for p in cfn_template.resources("AWS::Logs::ResourcePolicy").values()
    ]
    for alarm_id, rule in watched:
        properties = _resources()[rule]["Properties"]
        assert properties.get("State", "ENABLED") == "ENABLED", rule
        targets = properties.get("Targets", [])
        assert targets, (
            f"{alarm_id} watches {rule}, which has no target: its TriggeredRules is not guaranteed"
        )
        for target in targets:
            arn = cfn_template.evaluate(target["Arn"])
            group = _log_group_arn(arn)
            assert group, f"{rule}'s target {arn}: only log group targets are checked here; add its kind"
            assert "RoleArn" not in target, (
                "EventBridge writes to CloudWatch Logs under a resource policy, not a role"
            )
            assert group.split("log-group:")[1].startswith("/aws/events/"), (
                "EventBridge's log groups are /aws/events/..."
            )
            stream = f"{group}:log-stream:some-stream"
            for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
                allowed = any(
                    cfn_template.allows(
                        cfn_template.for_service(p["Statement"], "events.amazonaws.com"),
                        Request(action, stream),
                    )
                    for p in policies
                )
                assert allowed, f"no log resource policy lets EventBridge {action} into {group}"


# --- lifecycle -------------------------------------------------------------------------------------------------


def _smallest(value: Any, where: str) -> int:
    """A number of days, or the smallest value its parameter allows."""
    if isinstance(value, dict):
        [(fn, name)] = value.items()
        assert fn == "Ref", f"{where}: {value}"
        parameter = cfn_template.load()["Parameters"][name]
        assert "MinValue" in parameter, (
            f"{where}: parameter {name} has no MinValue, so any number of days goes"
        )
        return int(parameter["MinValue"])
    return int(value)


def test_every_lifecycle_expiration_comes_after_the_rules_last_transition():
    rules = [
        (bucket, rule)
        for bucket, properties in cfn_template.resources("AWS::S3::Bucket").items()
        for rule in properties.get("LifecycleConfiguration", {}).get("Rules", [])
    ]
    transitions_seen = 0
    for bucket, rule in rules:
        where = f"{bucket} rule {rule['Id']}"
        days = [_smallest(t["TransitionInDays"], where) for t in rule.get("Transitions", [])]
        transitions_seen += len(days)
        assert days == sorted(days), f"{where}: transitions out of order"
        for transition, day in zip(rule.get("Transitions", []), days, strict=True):
            if transition["StorageClass"] in ("STANDARD_IA", "ONEZONE_IA"):
                assert day >= 30, (
                    f"{where}: S3 moves objects to {transition['StorageClass']} after 30 days at the soonest"
                )
        if "ExpirationInDays" in rule and days:
            expiration = _smallest(rule["ExpirationInDays"], where)
            assert expiration > max(days), (
                f"{where}: expiration at {expiration} days is not after the last transition at {max(days)}; "
                "S3 refuses the configuration"
            )
        noncurrent = [
            _smallest(t["TransitionInDays"], where) for t in rule.get("NoncurrentVersionTransitions", [])
        ]
        if "NoncurrentVersionExpiration" in rule and noncurrent:
            assert _smallest(rule["NoncurrentVersionExpiration"]["NoncurrentDays"], where) > max(
                noncurrent
            ), where
    assert transitions_seen, "no lifecycle transition: this rule checks nothing"


# --- no alarm before the first run ------------------------------------------------------------------------------

# The parameters of a first deploy: the template's defaults, and what `make deploy` passes (infra/deploy.sh), which
# never includes ScheduleState unless SCHEDULE_STATE is set.
FIRST_DEPLOY = dict(cfn_template.DEPLOYED)


def test_the_schedule_is_off_on_a_first_deploy_and_only_the_parameter_turns_it_on():
    [schedule] = cfn_template.resources("AWS::Scheduler::Schedule").values()
    state = cfn_template.evaluate(schedule["State"], context=FIRST_DEPLOY)
    assert state == "DISABLED", (
        f"the schedule is {state} on a first deploy, while the Kaggle secret is a placeholder"
    )
    assert schedule["State"] == {"Ref": "ScheduleState"}
    assert cfn_template.load()["Parameters"]["ScheduleState"]["AllowedValues"] == ["ENABLED", "DISABLED"]
    for rule, properties in cfn_template.resources("AWS::Events::Rule").items():
        assert "ScheduleExpression" not in properties, f"{rule} would start runs on its own schedule"


@pytest.mark.parametrize("state", ["DISABLED", "ENABLED"])
def test_no_alarm_treats_missing_data_as_breaching_while_the_schedule_is_off(state):
    """Before the first run every metric is missing: an alarm that counts that as breaching fires on deploy day.
    Such an alarm may exist only together with the schedule (the checklist enables it after a first run)."""
    context = {**FIRST_DEPLOY, "ScheduleState": state}
    breaching = [
        alarm
        for alarm, properties in cfn_template.resources("AWS::CloudWatch::Alarm").items()
        if cfn_template.exists(alarm, context=context)
        and properties.get("TreatMissingData", "missing") == "breaching"
    ]
    if state == "DISABLED":
        assert breaching == [], f"{breaching} would fire before the first run"
    else:
        assert breaching == ["NoSuccessfulRunAlarm"]  # the pipeline that stopped running still alarms


# --- what is done well, kept -------------------------------------------------------------------------------------

TRUSTED = {
    "GlueJobRole": "glue.amazonaws.com",
    "IngestTaskRole": "ecs-tasks.amazonaws.com",
    "BuildTaskRole": "ecs-tasks.amazonaws.com",
    "TaskExecutionRole": "ecs-tasks.amazonaws.com",
    "StateMachineRole": "states.amazonaws.com",
    "ScheduleRole": "scheduler.amazonaws.com",
    "RedshiftCopyRole": ["redshift.amazonaws.com", "redshift-serverless.amazonaws.com"],
}


def test_each_role_trusts_its_one_service_and_only_from_this_account():
    roles = cfn_template.resources("AWS::IAM::Role")
    assert set(roles) == set(TRUSTED)
    for role, properties in roles.items():
        [statement] = cfn_template.evaluate(properties["AssumeRolePolicyDocument"])["Statement"]
        assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole", role
        assert statement["Principal"] == {"Service": TRUSTED[role]}, role
        assert statement["Condition"] == {
            "StringEquals": {"aws:SourceAccount": cfn_template.DEPLOYED["AWS::AccountId"]}
        }, role


def test_the_key_policy_gives_services_only_what_they_need_under_conditions():
    policy = cfn_template.evaluate(_resources()["PipelineKey"]["Properties"]["KeyPolicy"])
    account = cfn_template.DEPLOYED["AWS::AccountId"]
    for statement in policy["Statement"]:
        principal = statement["Principal"]
        if "AWS" in principal:  # the account administers the key through IAM
            assert principal == {"AWS": f"arn:aws:iam::{account}:root"} and statement["Action"] == "kms:*"
            continue
        assert "Condition" in statement, (
            f"{statement['Sid']}: a service may use the key only under a condition"
        )
        assert not any(
            a in ("kms:*", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion")
            for a in cfn_template.as_list(statement["Action"])
        )
    services = {s["Principal"].get("Service") for s in policy["Statement"]} - {None}
    assert services == {
        "cloudwatch.amazonaws.com",
        f"logs.{cfn_template.DEPLOYED['AWS::Region']}.amazonaws.com",
    }
    assert _resources()["PipelineKey"]["Properties"]["EnableKeyRotation"] is True


def test_the_s3_gateway_endpoint_serves_the_route_tables_deploy_finds_and_only_when_there_are_some():
    endpoint = _resources()["S3GatewayEndpoint"]
    properties = endpoint["Properties"]
    assert properties["VpcEndpointType"] == "Gateway"
    assert (
        cfn_template.evaluate(properties["ServiceName"])
        == f"com.amazonaws.{cfn_template.DEPLOYED['AWS::Region']}.s3"
    )
    assert properties["RouteTableIds"] == {"Ref": "S3GatewayRouteTableIds"}
    assert properties["VpcId"] == {"Ref": "VpcId"}
    assert not cfn_template.exists(
        "S3GatewayEndpoint"
    )  # the default: the VPC has one already, or deploy said none
    assert cfn_template.exists(
        "S3GatewayEndpoint", context={**FIRST_DEPLOY, "S3GatewayRouteTableIds": ["rtb-1"]}
    )


# --- the Glue job's Python dependencies -----------------------------------------------------------------------


def glue_module_problems(template: dict[str, Any]) -> list[str]:
    """What would make a Glue job reach a package index at start: every Glue job must take its modules from
    wheels (s3://...whl only, which the parameter's pattern enforces) and install them with pip --no-index."""
    problems = []
    parameters = template.get("Parameters", {})
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Glue::Job":
            continue
        arguments = resource["Properties"].get("DefaultArguments", {})
        modules = arguments.get("--additional-python-modules")
        if modules is None:
            continue
        if "--no-index" not in str(arguments.get("--python-modules-installer-option", "")).split():
            problems.append(
                f"{name}: --additional-python-modules without --python-modules-installer-option --no-index"
            )
        if not (isinstance(modules, dict) and set(modules) == {"Ref"} and modules["Ref"] in parameters):
            problems.append(
                f"{name}: --additional-python-modules is {modules!r}, not a parameter of wheel URIs"
            )
            continue
        pattern = parameters[modules["Ref"]].get("AllowedPattern", "")
        wheels = "s3://artifacts/glue/wheelhouse/abc/great_expectations-1.24.1-py3-none-any.whl"
        for value, allowed in (
            (wheels, True),
            (f"{wheels},{wheels.replace('great_expectations-1.24.1', 'scipy-1.17.1')}", True),
            ("great-expectations==1.24.1", False),
            (f"{wheels},great-expectations==1.24.1", False),
        ):
            if bool(re.fullmatch(pattern, value)) != allowed:
                problems.append(
                    f"{name}: {modules['Ref']}'s AllowedPattern {'refuses' if allowed else 'takes'} {value}"
                )
    return problems


def test_the_glue_job_installs_wheels_from_the_artifact_bucket_without_an_index() -> None:
    assert glue_module_problems(cfn_template.load()) == []


def test_the_glue_rule_catches_a_job_that_installs_from_pypi() -> None:
    template = cfn_template.load()
    job = next(r for r in template["Resources"].values() if r["Type"] == "AWS::Glue::Job")
    job["Properties"]["DefaultArguments"]["--additional-python-modules"] = "great-expectations==1.24.1"
    del job["Properties"]["DefaultArguments"]["--python-modules-installer-option"]
    problems = glue_module_problems(template)
    assert len(problems) == 2 and "--no-index" in problems[0] and "not a parameter" in problems[1]


# --- timeouts ----------------------------------------------------------------------------------------------------


def test_every_task_times_out_before_the_execution_and_a_timed_out_execution_alarms():
    """A task's timeout is caught (NotifyFailure says so); the execution's own is not: a run past it ends TIMED_OUT
    silently unless an alarm counts ExecutionsTimedOut. The execution's must outlast its tasks' in a row, and the
    Transform state's must outlast the Glue job's own, so that Glue's TIMEOUT, with its message, comes first."""
    definition = json.loads(ASL.read_text())
    states = definition["States"]
    # The tasks that wait for a job (.sync); the others are single API calls.
    tasks = {
        name: state.get("TimeoutSeconds")
        for name, state in states.items()
        if state["Type"] == "Task" and state["Resource"].endswith(".sync")
    }
    assert set(tasks) == {"Ingest", "Transform", "Build"} and None not in tasks.values()
    assert definition["TimeoutSeconds"] > sum(tasks.values())
    glue_minutes = _resources()["GlueJob"]["Properties"]["Timeout"]
    assert tasks["Transform"] > glue_minutes * 60
    counted = {
        query["MetricStat"]["Metric"]["MetricName"]
        for query in _resources()["ExecutionsFailedAlarm"]["Properties"]["Metrics"]
        if "MetricStat" in query
    }
    assert counted == {"ExecutionsFailed", "ExecutionsTimedOut"}
