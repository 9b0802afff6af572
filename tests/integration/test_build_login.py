"""How the build task logs in to Redshift, as the template configures it: no password, no secret.

The Build task definition's environment (infra/template.yaml, evaluated as deployed) is given to the profile the
image ships (profiles.yml.example, the wheel's profiles.yml), and ``dbt debug --target prod`` opens a connection
the way every dbt-redshift invocation of the build does. dbt-redshift's ``iam_role`` method hands the job to
redshift_connector, which asks Redshift Serverless for temporary credentials (``GetCredentials``) with the
task's AWS credentials. That call goes through botocore to a stand-in of the Redshift Serverless API on
127.0.0.1, which records the request and answers as AWS does; the connection itself is recorded instead of
opened (there is no Redshift here). The container has no AWS config file, as on Fargate: a profile name in the
connection would make boto3 fail before any call.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fakes import cfn_template
from tests.fakes.cfn_template import Request

pytestmark = pytest.mark.integration

DEPLOYED = cfn_template.DEPLOYED
# The role's name as the deployed stack has it: what GetCredentials maps the task to, and what the deploy grants.
BUILD_ROLE_NAME = cfn_template.evaluate({"Ref": "BuildTaskRole"})


class _Recorded(Exception):
    """Raised by the stand-in Connection once it has recorded its arguments: there is no server to open."""


class _ServerlessApi(BaseHTTPRequestHandler):
    """Redshift Serverless's JSON API (``X-Amz-Target: RedshiftServerless.<Operation>``), GetCredentials only."""

    requests: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        target = self.headers.get("X-Amz-Target", "")
        self.server.requests.append(  # type: ignore[attr-defined]
            {"target": target, "body": body, "authorization": self.headers.get("Authorization", "")}
        )
        if target != "RedshiftServerless.GetCredentials":
            self._reply(400, {"__type": "ValidationException", "message": f"not stood in: {target}"})
            return
        now = time.time()
        # What AWS answers for an assumed role: the database user is IAMR:<role name>.
        self._reply(
            200,
            {
                "dbUser": f"IAMR:{BUILD_ROLE_NAME}",
                "dbPassword": "temporary-password",
                "expiration": now + 900,
                "nextRefreshTime": now + 600,
            },
        )

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serverless_api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ServerlessApi)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def login(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``dbt debug --target prod`` in the build task's environment: the GetCredentials requests the stand-in API
    received and the arguments redshift_connector opened its connection with."""
    import redshift_connector
    from dbt.cli.main import dbtRunner

    from warehouse import project

    home = tmp_path_factory.mktemp("task_home")
    profiles = project.copy_profiles_example(home / "profiles")
    env = cfn_template.task_environment("BuildTaskDefinition")
    connections: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> Any:
        connections.append(kwargs)
        raise _Recorded("recorded")

    with serverless_api() as (endpoint, requests), pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        # The container: the task role's credentials (ECS serves them; static keys stand in), no AWS config file.
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "REDSHIFT_USER", "REDSHIFT_PASSWORD"):
            patch.delenv(name, raising=False)
        patch.setenv("HOME", str(home))
        patch.setenv("AWS_CONFIG_FILE", str(home / "no-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-credentials"))
        patch.setenv("AWS_ACCESS_KEY_ID", "ASIATASKROLE")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "task-role-secret")
        patch.setenv("AWS_SESSION_TOKEN", "task-role-session")
        patch.setenv("AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS", endpoint)
        patch.setenv("DBT_TARGET_PATH", str(home / "target"))
        patch.setenv("DBT_LOG_PATH", str(home / "logs"))
        patch.setattr(redshift_connector, "Connection", record)
        dbtRunner().invoke(
            [
                "debug",
                "--target",
                "prod",
                "--project-dir",
                str(project.PROJECT_DIR),
                "--profiles-dir",
                str(profiles),
            ]
        )
    return {"env": env, "requests": list(requests), "connections": connections}


def test_the_build_task_is_given_no_secret_and_no_password() -> None:
    env = cfn_template.task_environment("BuildTaskDefinition")
    assert env["REDSHIFT_METHOD"] == "iam_role"
    assert not [name for name in env if "SECRET" in name or "PASSWORD" in name or name == "REDSHIFT_USER"]


def test_the_build_asks_serverless_for_credentials_for_the_stacks_workgroup_and_database(
    login: dict[str, Any],
) -> None:
    workgroup = cfn_template.evaluate({"Ref": "RedshiftWorkgroup"})
    assert workgroup == cfn_template.evaluate({"Fn::Sub": "${ResourcePrefix}-warehouse"})
    calls = [(r["target"], r["body"]) for r in login["requests"]]
    assert calls and set(map(json.dumps, calls)) == {
        json.dumps(("RedshiftServerless.GetCredentials", {"dbName": "retail", "workgroupName": workgroup}))
    }, calls
    # Signed with the task role's credentials, for the stack's region.
    assert all("Credential=ASIATASKROLE/" in r["authorization"] for r in login["requests"])
    assert all(
        f"/{DEPLOYED['AWS::Region']}/redshift-serverless/" in r["authorization"] for r in login["requests"]
    )


def test_the_connection_opens_as_the_temporary_user_on_the_workgroup_endpoint(login: dict[str, Any]) -> None:
    assert login["connections"], "redshift_connector never opened a connection"
    env = login["env"]
    for kwargs in login["connections"]:
        assert kwargs["user"] == f"IAMR:{BUILD_ROLE_NAME}"
        assert kwargs["password"] == "temporary-password"
        assert (kwargs["host"], str(kwargs["port"]), kwargs["database"]) == (
            env["REDSHIFT_HOST"],
            env["REDSHIFT_PORT"],
            env["REDSHIFT_DATABASE"],
        )


def test_the_build_role_may_get_credentials_for_its_workgroup_only() -> None:
    statements = cfn_template.role_statements("BuildTaskRole")
    workgroup_arn = cfn_template.evaluate({"Fn::GetAtt": ["RedshiftWorkgroup", "Workgroup.WorkgroupArn"]})
    assert cfn_template.allows(statements, Request("redshift-serverless:GetCredentials", workgroup_arn))
    other = "arn:aws:redshift-serverless:eu-west-1:123456789012:workgroup/another"
    assert not cfn_template.allows(statements, Request("redshift-serverless:GetCredentials", other))
    for secret in ("RedshiftSecret", "KaggleSecret"):
        arn = cfn_template.evaluate({"Ref": secret})
        assert not cfn_template.allows(statements, Request("secretsmanager:GetSecretValue", arn)), secret


def test_the_database_user_is_named_after_the_role_the_deploy_grants() -> None:
    """infra/warehouse_user.py grants IAMR:<BuildTaskRoleName>; the stack outputs that name and the build's
    database, and the task definition runs as that role."""
    expected = f"{DEPLOYED.get('ResourcePrefix', 'online-retail')}-build-task-{DEPLOYED['AWS::Region']}"
    assert expected == BUILD_ROLE_NAME
    assert len(BUILD_ROLE_NAME) <= 64  # IAM's limit; ResourcePrefix is at most 31 characters
    outputs = cfn_template.load()["Outputs"]
    assert cfn_template.evaluate(outputs["BuildTaskRoleName"]["Value"]) == BUILD_ROLE_NAME
    task = cfn_template.load()["Resources"]["BuildTaskDefinition"]["Properties"]
    assert task["TaskRoleArn"] == {"Fn::GetAtt": ["BuildTaskRole", "Arn"]}
    database = cfn_template.evaluate(outputs["RedshiftDatabase"]["Value"])
    assert database == cfn_template.task_environment("BuildTaskDefinition")["REDSHIFT_DATABASE"]
    namespace = cfn_template.load()["Resources"]["RedshiftNamespace"]["Properties"]
    assert cfn_template.evaluate(namespace["DbName"]) == database
