"""moto's server mode on 127.0.0.1: real HTTP between boto3 and a fake S3."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import requests

from tests.fakes import cfn_template


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start a ThreadedMotoServer on an ephemeral loopback port and yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # moto keeps its accounts in the process, not in the server: without a reset, a server starts with what
        # an earlier server (or mock_aws) of this process left, e.g. another file's CloudWatch datapoints.
        requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
        yield url
    finally:
        server.stop()


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def fake_aws_env(monkeypatch) -> None:
    """Credentials and region for the fake: never the developer's own."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@contextlib.contextmanager
def moto_with_bucket(bucket: str) -> Iterator[str]:
    """A moto server holding one empty bucket; yields the endpoint URL."""
    with moto_server() as url:
        s3_client(url).create_bucket(Bucket=bucket)
        yield url


# --- S3's authorization, for one identity policy --------------------------------------------------------------

# moto checks no s3:prefix conditions and answers a missing key with 404 whoever asks; S3 does neither. The client
# as_role() returns makes the decisions S3 makes for a caller with ``statements`` as its identity policy, before
# each request goes to moto over HTTP: what the policy denies never leaves the client, answered as S3 answers it.
_KEY_ACTIONS = cfn_template.S3_OBJECT_ACTIONS


@dataclasses.dataclass
class RoleCalls:
    """Every S3 call the client made as the role: (operation, its parameters, the status S3 answered or None
    when the request went on to moto)."""

    calls: list[tuple[str, dict[str, Any], int | None]] = dataclasses.field(default_factory=list)

    def operations(self) -> list[tuple[str, dict[str, Any]]]:
        return [(operation, params) for operation, params, _ in self.calls]


def as_role(endpoint: str, statements: list[dict[str, Any]]) -> tuple[Any, RoleCalls]:
    """An S3 client on moto that S3 would treat as a caller whose identity policy is ``statements`` (evaluated
    as tests/fakes/cfn_template.allows does, conditions included), and the record of its calls.

    * HeadObject/GetObject: 403 unless s3:GetObject on the key is allowed. A missing key then answers 404 only
      if s3:ListBucket on the bucket is allowed with no ``s3:prefix`` (a HEAD or GET carries none), else 403:
      S3 tells only callers who could list the bucket that a key is absent.
    * ListObjectsV2: s3:ListBucket on the bucket with ``s3:prefix`` = the request's Prefix ("" without one).
    * Writes and deletes of one key: their action on the key.
    Any other operation raises: it is not modelled, so no test may lean on it.
    """
    from botocore.awsrequest import AWSResponse

    from tests.fakes.cfn_template import Request, allows

    client = s3_client(endpoint)
    admin = s3_client(endpoint)  # what is really in the bucket, whatever the role may see
    record = RoleCalls()

    def keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["as_role_params"] = dict(params)

    def denial(operation: str, params: dict[str, Any]) -> tuple[int, str] | None:
        bucket = params["Bucket"]
        bucket_arn = f"arn:aws:s3:::{bucket}"
        if operation == "ListObjectsV2":
            prefix = params.get("Prefix", "")
            listed = allows(statements, Request("s3:ListBucket", bucket_arn, (("s3:prefix", prefix),)))
            return None if listed else (403, "AccessDenied")
        if operation not in _KEY_ACTIONS:
            raise NotImplementedError(f"as_role() does not model {operation}")
        key_arn = f"{bucket_arn}/{params['Key']}"
        refused = (403, "403") if operation == "HeadObject" else (403, "AccessDenied")
        if not allows(statements, Request(_KEY_ACTIONS[operation], key_arn)):
            return refused
        if operation in ("HeadObject", "GetObject") and not _present(admin, bucket, params["Key"]):
            may_list = allows(statements, Request("s3:ListBucket", bucket_arn))
            return None if may_list else refused  # None: moto answers its 404
        return None

    def decide(model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        params = context["as_role_params"]
        refused = denial(model.name, params)
        record.calls.append((model.name, params, refused[0] if refused else None))
        if refused is None:
            return None
        status, code = refused
        message = "Forbidden" if code == "403" else "Access Denied"
        parsed = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
        }
        return AWSResponse(endpoint, status, {}, None), parsed

    # provide-client-params: the parameters as the caller passed them, before botocore adds its own (EncodingType).
    client.meta.events.register("provide-client-params.s3", keep_params)
    client.meta.events.register("before-call.s3", decide)
    return client, record


def _present(client: Any, bucket: str, key: str) -> bool:
    page = client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(obj["Key"] == key for obj in page.get("Contents", []))
