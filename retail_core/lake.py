"""The lake's storage: a local folder or an S3 prefix, behind one small interface.

This module knows storage and nothing about Kaggle, Spark or dbt. Every write is atomic from a reader's point
of view:

* Local: bytes go to a hidden temporary file beside the target (``.tmp-<uuid>-<name>``), are flushed to disk,
  then ``os.replace``d into place. A killed writer leaves at most a hidden temp file, which readers never
  match (Spark, Hive and DuckDB globs skip names starting with ``.`` or ``_``) and the next write sweeps.
* S3: an object only becomes visible when its upload completes. Uploads carry SHA-256 checksums (S3
  verifies each part on receipt) and the stored checksum is compared with the one computed locally before
  the call returns; on a mismatch the object is deleted.

Folders of many files (Spark output) are replaced with :meth:`Lake.promote`: build the new folder under a
staging prefix, then swap it in, ``_SUCCESS`` last.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import logging
import math
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retail_core import layout
from retail_core.config import Settings
from retail_core.errors import InputError, UpstreamError

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
_READ_CHUNK = 8 * 1024 * 1024


class Lake(ABC):
    """A lake root; keys are ``/``-separated paths relative to it."""

    root: str

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """The absolute location of ``key``: a filesystem path or ``s3://bucket/prefix/key``."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a small object atomically."""

    @abstractmethod
    def put_file(self, key: str, source: Path, *, sha256_hex: str | None = None) -> None:
        """Copy a local file to ``key`` atomically; if ``sha256_hex`` is given, what lands must match it."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key below ``prefix`` (recursively), sorted; hidden temp files excluded."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key below ``prefix``; return how many were deleted."""

    @abstractmethod
    def promote(self, staging_prefix: str, final_prefix: str) -> None:
        """Replace the folder ``final_prefix`` with ``staging_prefix``, ``_SUCCESS`` last."""

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Path]:
        """Yield a local path to write ``key``'s content into; it lands atomically when the block succeeds.

        A failing block lands nothing. Local lakes write straight beside the target (no second copy of a
        large file); S3 lakes write to a local temp file, then upload it.
        """
        with tempfile.TemporaryDirectory(prefix="retail-lake-") as tmp:
            path = Path(tmp) / Path(key).name
            yield path
            self.put_file(key, path)

    def read_json(self, key: str) -> Any:
        import json

        return json.loads(self.read_bytes(key).decode("utf-8"))

    def write_json(self, key: str, value: Any) -> None:
        import json

        self.write_bytes(key, (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode())

    def partitions(self, zone: str) -> list[dt.date]:
        """The ingest dates that have a folder directly under ``<zone>/online_retail/``, oldest first."""
        base = f"{zone}/{layout.DATASET}/"
        dates: set[dt.date] = set()
        for key in self.list_keys(base):
            first = key[len(base) :].split("/", 1)[0]
            date = layout.parse_ingest_date(first)
            if date is not None and first == layout.partition(date):
                dates.add(date)
        return sorted(dates)


class LocalLake(Lake):
    """A folder on this machine."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(Path(root).expanduser().resolve())
        self._root = Path(self.root)

    def path(self, key: str) -> Path:
        return self._root / key if key else self._root

    def uri(self, key: str = "") -> str:
        return str(self.path(key))

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise InputError(
                "not found in the lake", self.uri(key), "run the stage that writes it first"
            ) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as tmp:
            tmp.write_bytes(data)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Path]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{target.name}"
        try:
            yield tmp
            _fsync(tmp)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, source: Path, *, sha256_hex: str | None = None) -> None:
        with self.writer(key) as tmp:
            digest = _copy_hashing(source, tmp)
            if sha256_hex is not None and digest != sha256_hex:
                raise UpstreamError(
                    "checksum mismatch while copying into the lake",
                    self.uri(key),
                    f"expected sha256 {sha256_hex}, wrote {digest}; check the disk and run again",
                )

    def list_keys(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.exists():
            return []
        if base.is_file():
            return [prefix]
        keys = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith(TMP_PREFIX):
                keys.append(path.relative_to(self._root).as_posix())
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        target = self.path(prefix)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        return len(keys)

    def sweep_temp_files(self, prefix: str) -> int:
        """Remove temp files a killed writer left below ``prefix``; return how many."""
        base = self.path(prefix)
        if not base.exists():
            return 0
        stale = [p for p in base.rglob(f"{TMP_PREFIX}*") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def promote(self, staging_prefix: str, final_prefix: str) -> None:
        staging, final = self.path(staging_prefix), self.path(final_prefix)
        if not (staging / layout.SUCCESS_NAME).exists():
            raise UpstreamError(
                "refusing to promote a folder without _SUCCESS", str(staging), "rerun the job"
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        # The old folder is renamed aside (a hidden name no reader globs), the new one renamed in: each step is
        # one rename, so a reader sees the old complete folder, briefly none, then the new complete one.
        trash = final.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{final.name}"
        if final.exists():
            os.replace(final, trash)
        try:
            os.replace(staging, final)
        except OSError:
            if trash.exists():
                os.replace(trash, final)
            raise
        _fsync_dir(final.parent)
        shutil.rmtree(trash, ignore_errors=True)


@dataclass(frozen=True)
class _S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty


class S3Lake(Lake):
    """An ``s3://bucket/prefix`` root, through boto3 (honours ``AWS_ENDPOINT_URL``)."""

    MIN_PART = 8 * 1024 * 1024
    MAX_PARTS = 9_000  # S3 allows 10,000; keep headroom

    def __init__(self, root: str, *, endpoint_url: str | None = None, client: Any = None) -> None:
        if not root.startswith("s3://"):
            raise InputError("not an S3 location", root, "use s3://bucket/prefix")
        bucket, _, prefix = root[len("s3://") :].partition("/")
        if not bucket:
            raise InputError("no bucket in the lake location", root, "use s3://bucket/prefix")
        self.root = root.rstrip("/")
        self._loc = _S3Location(bucket, prefix.strip("/"))
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url)
        self._s3 = client

    def _key(self, key: str) -> str:
        return f"{self._loc.prefix}/{key}" if self._loc.prefix else key

    def _rel(self, full_key: str) -> str:
        return full_key[len(self._loc.prefix) + 1 :] if self._loc.prefix else full_key

    def uri(self, key: str = "") -> str:
        return f"s3://{self._loc.bucket}/{self._key(key)}" if key else self.root

    def exists(self, key: str) -> bool:
        """Whether ``key`` is an object in the lake, with no more than the pipeline's roles may do.

        The calls, in order:

        1. ``HeadObject(Key=key)`` (s3:GetObject on the key): 200 is True; 404 is False.
        2. Only if the HEAD answered 403: ``ListObjectsV2(Prefix=key, MaxKeys=1)`` (s3:ListBucket with
           ``s3:prefix`` = the key), True if the one key listed is ``key`` itself (a key sorts before every
           longer key it prefixes, so one is enough).

        Why the list: S3 answers a HEAD of a missing key with 404 only to a caller allowed s3:ListBucket on
        the bucket as a whole; to anyone else it answers 403, so as not to tell them the key is absent. The
        ingest, Glue and build roles may list only under ``s3:prefix`` conditions, which a HEAD does not
        carry: for them every missing manifest or ``_SUCCESS`` is a 403. The listing carries the key as its
        prefix, which those conditions allow. If the listing is denied too, the caller may neither read nor
        list the key: a one-line UpstreamError naming it.
        """
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=self._loc.bucket, Key=self._key(key))
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            if code in _DENIED:
                return self._listed(key)
            raise _s3_error("could not read", self.uri(key), exc) from None
        return True

    def _listed(self, key: str) -> bool:
        """Whether a listing with ``key`` as its prefix finds ``key`` itself (see :meth:`exists`)."""
        from botocore.exceptions import ClientError

        full = self._key(key)
        try:
            page = self._s3.list_objects_v2(Bucket=self._loc.bucket, Prefix=full, MaxKeys=1)
        except ClientError as exc:
            raise _s3_error("could neither read nor list", self.uri(key), exc) from None
        return any(obj["Key"] == full for obj in page.get("Contents", []))

    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; InputError if it is not there (told apart from a denial as :meth:`exists` does)."""
        from botocore.exceptions import ClientError

        try:
            return self._s3.get_object(Bucket=self._loc.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            code = _error_code(exc)
            # A GET of a missing key is a 403 for the same callers a HEAD is (see exists()).
            if code in ("404", "NoSuchKey") or (code in _DENIED and not self._listed(key)):
                raise InputError(
                    "not found in the lake", self.uri(key), "run the stage that writes it first"
                ) from None
            raise _s3_error("could not read", self.uri(key), exc) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        digest = hashlib.sha256(data).digest()
        try:
            self._s3.put_object(
                Bucket=self._loc.bucket,
                Key=self._key(key),
                Body=data,
                ChecksumSHA256=base64.b64encode(digest).decode(),
            )
        except ClientError as exc:
            raise _s3_error("could not write", self.uri(key), exc) from None

    def put_file(self, key: str, source: Path, *, sha256_hex: str | None = None) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import ClientError

        size = source.stat().st_size
        part = self.part_size(size)
        full_hex, expected = _sha256_and_s3_checksum(source, part)
        if sha256_hex is not None and full_hex != sha256_hex:
            raise UpstreamError(
                "the file changed before upload",
                str(source),
                f"expected sha256 {sha256_hex}, found {full_hex}",
            )
        config = TransferConfig(multipart_threshold=part, multipart_chunksize=part, use_threads=True)
        target = self._key(key)
        try:
            self._s3.upload_file(
                str(source),
                self._loc.bucket,
                target,
                ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": full_hex}},
                Config=config,
            )
            head = self._s3.head_object(Bucket=self._loc.bucket, Key=target, ChecksumMode="ENABLED")
        except ClientError as exc:
            raise _s3_error("could not upload", self.uri(key), exc) from None
        stored = (head.get("ChecksumSHA256") or "").split("-")[0]
        if stored != expected or head.get("ContentLength") != size:
            self._s3.delete_object(Bucket=self._loc.bucket, Key=target)
            raise UpstreamError(
                "upload verification failed: S3 holds different bytes",
                self.uri(key),
                "the object was deleted; run the ingest again",
            )

    @classmethod
    def part_size(cls, size: int) -> int:
        """Multipart chunk size for a file of ``size`` bytes: at least 8 MiB, at most MAX_PARTS parts."""
        mib = 1024 * 1024
        return max(cls.MIN_PART, math.ceil(size / cls.MAX_PARTS / mib) * mib)

    def list_keys(self, prefix: str) -> list[str]:
        from botocore.exceptions import ClientError

        full = self._key(prefix)
        if full and not full.endswith("/"):
            full += "/"
        keys: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._loc.bucket, Prefix=full)
            for page in pages:
                keys.extend(self._rel(obj["Key"]) for obj in page.get("Contents", []))
        except ClientError as exc:
            raise _s3_error("could not list", self.uri(prefix), exc) from None
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            self._s3.delete_objects(Bucket=self._loc.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def promote(self, staging_prefix: str, final_prefix: str) -> None:
        # S3 has no rename. The order keeps readers safe: they only read a folder whose _SUCCESS exists, and
        # _SUCCESS is deleted first and copied last.
        staged = self.list_keys(staging_prefix)
        success = f"{staging_prefix}/{layout.SUCCESS_NAME}"
        if success not in staged:
            raise UpstreamError(
                "refusing to promote a folder without _SUCCESS", self.uri(staging_prefix), "rerun"
            )
        final_success = f"{final_prefix}/{layout.SUCCESS_NAME}"
        if self.exists(final_success):
            self._s3.delete_object(Bucket=self._loc.bucket, Key=self._key(final_success))
        self.delete_prefix(final_prefix)
        for key in [k for k in staged if k != success] + [success]:
            rel = key[len(staging_prefix) + 1 :]
            self._s3.copy_object(
                Bucket=self._loc.bucket,
                Key=self._key(f"{final_prefix}/{rel}"),
                CopySource={"Bucket": self._loc.bucket, "Key": self._key(key)},
            )
        self.delete_prefix(staging_prefix)


def open_lake(settings: Settings) -> Lake:
    """The lake the settings point at."""
    if settings.lake_is_s3:
        return S3Lake(settings.lake, endpoint_url=settings.aws_endpoint_url)
    return LocalLake(settings.lake)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(_READ_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


def _sha256_and_s3_checksum(path: Path, part_size: int) -> tuple[str, str]:
    """The file's SHA-256 (hex) and the base64 checksum S3 will report for an upload in ``part_size`` parts.

    One part: the object's SHA-256. Several: SHA-256 over the concatenated part digests (S3's "composite").
    """
    full = hashlib.sha256()
    parts: list[bytes] = []
    size = path.stat().st_size
    with path.open("rb") as handle:
        while chunk := handle.read(part_size):
            full.update(chunk)
            parts.append(hashlib.sha256(chunk).digest())
    if size < part_size:
        return full.hexdigest(), base64.b64encode(full.digest()).decode()
    composite = hashlib.sha256(b"".join(parts)).digest()
    return full.hexdigest(), base64.b64encode(composite).decode()


# What S3 answers a caller it will not tell whether a key exists: "403" to a HEAD (no body), AccessDenied otherwise.
_DENIED = ("403", "AccessDenied", "Forbidden")


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "error"))


def _s3_error(verb: str, where: str, exc: Exception) -> UpstreamError:
    code = _error_code(exc)
    return UpstreamError(
        f"S3 {verb} ({code})", where, "check the bucket, its policy and your AWS credentials"
    )


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
