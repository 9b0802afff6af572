"""moto's server mode on 127.0.0.1: real HTTP between boto3 and a fake S3."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import boto3


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start a ThreadedMotoServer on an ephemeral loopback port and yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
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
