"""The lake's storage: a local folder or an S3 prefix, behind one small interface.

This module knows storage and nothing about Kaggle, Spark or dbt. Every write is atomic from a reader's point
of view:

* Local: bytes go to a hidden temporary file beside the target (``.tmp-<uuid>-<name>``), are flushed to disk,
  then ``os.replace``d into place. A killed writer leaves at most a hidden temp file, which readers never
  match (Spark, Hive and DuckDB globs skip names starting with ``.`` or ``_``) and the next write sweeps.
* S3: an object only becomes visible when its upload completes. Uploads carry SHA-256 checksums (S3
  verifies each part on receipt) and the stored checksum is compared with the one computed locally before
  the call returns; on a mismatch the object is deleted.

Folders of many files (Spark output) are published with :meth:`Lake.promote`, the same steps on both stores
(docs/adr/0002-partition-manifests.md):

1. the new part files are placed beside the old ones under names no earlier run used (``part-00000-<gen>.tsv``)
   and verified (size, SHA-256); the old files are not touched, and nothing names the new ones yet;
2. the partition manifest (``_manifest.json``: the exact files, their sizes and checksums) is written in one
   atomic step. This is the switch: readers read what the manifest names and nothing else;
3. the files the manifest does not name (the previous generation, a dead run's leftovers) are swept.

A failure before step 2 leaves the old manifest, which names the old files, untouched: the last good output stays
readable, and the placed files are removed (or swept by the next run if the process died).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retail_core import faults, layout
from retail_core.config import Settings
from retail_core.errors import InputError, UpstreamError

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
_READ_CHUNK = 8 * 1024 * 1024
# The partition manifest's version; a reader refuses one it does not know rather than misread it.
PARTITION_FORMAT = 1


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
    def content_sha256(self, key: str) -> str | None:
        """The SHA-256 (hex) of the object's bytes as the lake knows it, or None when it is not there (or, on S3,
        was not written by :meth:`put_file`, which records it)."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key below ``prefix`` (recursively), sorted; hidden temp files excluded."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key below ``prefix``; return how many were deleted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object ``key`` (no error if it is not there)."""

    @abstractmethod
    def _sizes(self, prefix: str) -> dict[str, int]:
        """Every key below ``prefix`` with its size in bytes."""

    @abstractmethod
    def _place(self, source_key: str, target_key: str, size: int) -> str:
        """Put ``source_key``'s bytes at ``target_key`` (a new name), verify them; return their SHA-256 (hex)."""

    def promote(
        self,
        staging_prefix: str,
        final_prefix: str,
        *,
        generation: str,
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Publish the part files of ``staging_prefix`` (a finished Spark output, with ``_SUCCESS``) as the
        partition ``final_prefix``; return the partition manifest written. See the module docstring."""
        staged = self._sizes(staging_prefix)
        if f"{staging_prefix}/{layout.SUCCESS_NAME}" not in staged:
            raise UpstreamError(
                "refusing to promote a folder without _SUCCESS", self.uri(staging_prefix), "rerun the job"
            )
        parts = sorted(k for k in staged if k.rsplit("/", 1)[-1].startswith(layout.PART_PREFIX))
        manifest_key = f"{final_prefix}/{layout.MANIFEST_NAME}"
        placed: list[str] = []
        files: list[dict[str, Any]] = []
        try:
            for key in parts:
                name = layout.generation_name(key.rsplit("/", 1)[-1], generation)
                target = f"{final_prefix}/{name}"
                placed.append(target)
                sha = self._place(key, target, staged[key])
                files.append({"name": name, "bytes": staged[key], "sha256": sha})
                faults.point("promote.after_part")
            # Redshift's COPY reads exactly the files a COPY manifest lists (MANIFEST option): one per generation,
            # written before the switch and named by the partition manifest, so COPY reads what readers read.
            copy_manifest = layout.copy_manifest_name(generation)
            entries = [
                {
                    "url": self.uri(f"{final_prefix}/{f['name']}"),
                    "mandatory": True,
                    "meta": {"content_length": f["bytes"]},
                }
                for f in files
            ]
            placed.append(f"{final_prefix}/{copy_manifest}")
            self.write_json(f"{final_prefix}/{copy_manifest}", {"entries": entries})
            manifest = {
                "format": PARTITION_FORMAT,
                "generation": generation,
                "files": files,
                "copy_manifest": copy_manifest,
                "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                **(meta or {}),
            }
            faults.point("promote.before_manifest")
            self.write_json(manifest_key, manifest)
        except BaseException:
            # Unless the switch happened after all (an S3 PUT can fail after it landed), the old manifest still
            # names the old files: remove what was placed, which nothing names. A process that dies here leaves
            # them to the next run's sweep.
            if (self.read_partition(final_prefix) or {}).get("generation") != generation:
                for target in placed:
                    with contextlib.suppress(Exception):
                        self.delete(target)
            raise
        faults.point("promote.after_manifest")
        self.sweep_partition(final_prefix)
        faults.point("promote.after_sweep")
        self.delete_prefix(staging_prefix)
        return manifest

    def read_partition(self, prefix: str) -> dict[str, Any] | None:
        """The partition manifest of the folder ``prefix``, or None if it has none (never promoted)."""
        key = f"{prefix}/{layout.MANIFEST_NAME}"
        if not self.exists(key):
            return None
        manifest = self.read_json(key)
        if manifest.get("format") != PARTITION_FORMAT or not isinstance(manifest.get("files"), list):
            raise UpstreamError(
                "not a partition manifest this version reads",
                self.uri(key),
                "rerun the transform of that date",
            )
        return manifest

    def partition_files(self, prefix: str) -> list[str] | None:
        """The keys the partition manifest of ``prefix`` names, in order; None if the folder has no manifest.

        Every reader of processed and quarantined rows reads these and nothing else."""
        manifest = self.read_partition(prefix)
        if manifest is None:
            return None
        return [f"{prefix}/{entry['name']}" for entry in manifest["files"]]

    def sweep_partition(self, prefix: str) -> int:
        """Delete what the manifest of ``prefix`` does not name (older generations, a dead run's files, a
        ``_SUCCESS`` from the layout before manifests); return how many. A folder without a manifest is left
        alone: it holds nothing newer to keep instead."""
        manifest = self.read_partition(prefix)  # read once: exists() and a GET on S3
        if manifest is None:
            return 0
        named = [
            manifest.get("copy_manifest"),
            layout.MANIFEST_NAME,
            *(entry["name"] for entry in manifest["files"]),
        ]
        keep = {f"{prefix}/{name}" for name in named}
        stale = [k for k in self._sizes(prefix) if k not in keep]
        for key in stale:
            self.delete(key)
        return len(stale)

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

        try:
            return json.loads(self.read_bytes(key).decode("utf-8"))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError: a file cut short or overwritten
            raise InputError(
                f"a lake file is not valid JSON ({type(exc).__name__}: {exc})",
                self.uri(key),
                "it was damaged or cut short outside the pipeline: run the stage that writes it again "
                "(a manifest or run report: `retail-pipeline transform --ingest-date <its date>`)",
            ) from None

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

    def content_sha256(self, key: str) -> str | None:
        path = self.path(key)
        return sha256_file(path) if path.is_file() else None

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

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def _sizes(self, prefix: str) -> dict[str, int]:
        return {key: self.path(key).stat().st_size for key in self.list_keys(prefix)}

    def _place(self, source_key: str, target_key: str, size: int) -> str:
        # A rename within the lake's file system: no copy, and atomic. Hashing reads the file once.
        source, target = self.path(source_key), self.path(target_key)
        sha = sha256_file(source)
        if source.stat().st_size != size:
            raise UpstreamError("a staged file changed while promoting", str(source), "rerun the job")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        _fsync_dir(target.parent)
        return sha


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
        from boto3.exceptions import S3UploadFailedError
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
        except S3UploadFailedError as exc:
            # boto3's transfer manager wraps S3's refusal (a ClientError) in its own error, keeping only the text.
            raise _s3_error("could not upload", self.uri(key), exc) from None
        stored = (head.get("ChecksumSHA256") or "").split("-")[0]
        if stored != expected or head.get("ContentLength") != size:
            try:
                self._s3.delete_object(Bucket=self._loc.bucket, Key=target)
            except ClientError as exc:
                raise _s3_error("could not delete a bad upload", self.uri(key), exc) from None
            raise UpstreamError(
                "upload verification failed: S3 holds different bytes",
                self.uri(key),
                "the object was deleted; run the ingest again",
            )

    def content_sha256(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(Bucket=self._loc.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound", *_DENIED):
                return None
            raise _s3_error("could not read", self.uri(key), exc) from None
        return head.get("Metadata", {}).get("sha256")

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
        from botocore.exceptions import ClientError

        keys = self.list_keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            try:
                answer = self._s3.delete_objects(
                    Bucket=self._loc.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except ClientError as exc:
                raise _s3_error("could not delete", self.uri(prefix), exc) from None
            # With Quiet, S3 lists only the keys it could not delete, with a 200 for the call as a whole.
            if failed := answer.get("Errors"):
                first = failed[0]
                raise UpstreamError(
                    f"S3 could not delete {len(failed)} object(s) ({first.get('Code')})",
                    self.uri(self._rel(first.get("Key", ""))),
                    "check the bucket policy and your AWS credentials",
                )
        return len(keys)

    def delete(self, key: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._s3.delete_object(Bucket=self._loc.bucket, Key=self._key(key))
        except ClientError as exc:
            raise _s3_error("could not delete", self.uri(key), exc) from None

    # Conditional writes (S3's If-None-Match / If-Match), for the lease (retail_core/lease.py). Each returns None
    # when the condition does not hold (412, or 409 for a concurrent conditional write) and raises otherwise.

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        """Create ``key`` only if no object has that name; its ETag, or None."""
        return self._conditional_put(key, data, IfNoneMatch="*")

    def put_if_match(self, key: str, data: bytes, etag: str) -> str | None:
        """Replace ``key`` only if its ETag is still ``etag``; the new ETag, or None."""
        return self._conditional_put(key, data, IfMatch=etag)

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._s3.get_object(Bucket=self._loc.bucket, Key=self._key(key))
        except ClientError as exc:
            code = _error_code(exc)
            # A GET of a missing key is a 403 to a role that may not list the whole bucket (see exists()). The
            # pipeline's roles may not list leases/ either: for them a lease released between a refused create and
            # this read is a one-line "could neither read nor list" error (exit 4), and the run is retried.
            if code in ("404", "NoSuchKey") or (code in _DENIED and not self._listed(key)):
                return None
            raise _s3_error("could not read", self.uri(key), exc) from None
        return answer["Body"].read(), answer["ETag"]

    def delete_if_match(self, key: str, etag: str) -> bool:
        """Delete ``key`` only if its ETag is still ``etag``; whether it was deleted."""
        from botocore.exceptions import ClientError

        try:
            self._s3.delete_object(Bucket=self._loc.bucket, Key=self._key(key), IfMatch=etag)
        except ClientError as exc:
            if _error_code(exc) in _CONDITION_FAILED:
                return False
            raise _s3_error("could not delete", self.uri(key), exc) from None
        return True

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._s3.put_object(Bucket=self._loc.bucket, Key=self._key(key), Body=data, **condition)
        except ClientError as exc:
            if _error_code(exc) in _CONDITION_FAILED:
                return None
            raise _s3_error("could not write", self.uri(key), exc) from None
        return str(answer["ETag"])

    def _sizes(self, prefix: str) -> dict[str, int]:
        from botocore.exceptions import ClientError

        full = self._key(prefix).rstrip("/") + "/"
        sizes: dict[str, int] = {}
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._loc.bucket, Prefix=full
            ):
                sizes.update({self._rel(obj["Key"]): obj["Size"] for obj in page.get("Contents", [])})
        except ClientError as exc:
            raise _s3_error("could not list", self.uri(prefix), exc) from None
        return sizes

    def _place(self, source_key: str, target_key: str, size: int) -> str:
        """A server-side copy (S3 has no rename) under a new name, with S3 computing the copy's SHA-256; the
        copy is then read back by HEAD and must have the staged size. Over 5 GiB a single copy is refused by
        S3: a one-line error, and the old output stays published."""
        from botocore.exceptions import ClientError

        target = self._key(target_key)
        try:
            self._s3.copy_object(
                Bucket=self._loc.bucket,
                Key=target,
                CopySource={"Bucket": self._loc.bucket, "Key": self._key(source_key)},
                ChecksumAlgorithm="SHA256",
            )
            head = self._s3.head_object(Bucket=self._loc.bucket, Key=target, ChecksumMode="ENABLED")
        except ClientError as exc:
            raise _s3_error(
                "could not copy", f"{self.uri(source_key)} -> {self.uri(target_key)}", exc
            ) from None
        checksum = head.get("ChecksumSHA256") or ""
        if head.get("ContentLength") != size or not checksum or "-" in checksum:
            raise UpstreamError(
                "copy verification failed: S3 holds a different object",
                self.uri(target_key),
                "nothing was published; rerun the job",
            )
        return base64.b64decode(checksum).hex()


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
# A conditional write whose condition failed; 409 when another conditional write to the key was in flight. A
# missing key under If-Match is the same answer to a lease: it is not ours any more.
_CONDITION_FAILED = ("412", "PreconditionFailed", "409", "ConditionalRequestConflict", "404", "NoSuchKey")


def _error_code(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    if code is None:
        # boto3's S3UploadFailedError has no response, only the wrapped error's text: "... An error occurred
        # (AccessDenied) when calling the PutObject operation: ...".
        found = re.search(r"An error occurred \(([^)]+)\)", str(exc))
        code = found.group(1) if found else "error"
    return str(code)


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
