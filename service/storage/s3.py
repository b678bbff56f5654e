"""The ``s3://`` backend: S3 or anything that speaks it (MinIO, moto), through boto3."""

from __future__ import annotations

import builtins  # ``list`` is a method here, which shadows the builtin in class scope
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from service.storage.base import ObjectNotFound, ObjectStore, ObjectWriter, _validate_prefix, validate_key

DEFAULT_PART_SIZE = 8 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3 rejects smaller multipart parts (except the last one)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: Exception) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")


class _S3Writer(ObjectWriter):
    """Buffers exactly one part; the first full part turns the upload into a multipart upload."""

    def __init__(self, store: S3ObjectStore, key: str) -> None:
        super().__init__(key)
        self._store = store
        self._full_key = store._full_key(key)
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        part_size = self._store.part_size
        view = memoryview(data).cast("B")
        while view:
            room = part_size - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) == part_size:
                self._upload_part()

    def _upload_part(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=self._full_key)["UploadId"]
        number = len(self._parts) + 1
        response = client.upload_part(
            Bucket=bucket, Key=self._full_key, UploadId=self._upload_id, PartNumber=number, Body=self._buf
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buf = bytearray()

    def _commit(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            client.put_object(Bucket=bucket, Key=self._full_key, Body=self._buf)
        else:
            if self._buf:
                self._upload_part()
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._full_key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buf = bytearray()

    def _abort(self) -> None:
        self._buf = bytearray()
        if self._upload_id is not None:
            self._store.client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._full_key, UploadId=self._upload_id
            )


class S3ObjectStore(ObjectStore):
    """Objects live in ``bucket`` under ``prefix/``; boto3 does the talking."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        part_size: int = DEFAULT_PART_SIZE,
        client: Any = None,
        max_attempts: int = 6,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if not bucket:
            raise ValueError("S3 object store needs a bucket: s3://bucket/prefix")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (the S3 minimum)")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.root = prefix + "/" if prefix else ""
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.endpoint_url, self.region = endpoint_url, region
        self.part_size = part_size
        self.client = client or self._make_client(endpoint_url, region, max_attempts, connect_timeout_s)

    @staticmethod
    def _make_client(endpoint_url: str | None, region: str, max_attempts: int, connect_timeout_s: float) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            region_name=region,
            signature_version="s3v4",
            # A refused or reset connection is retried with exponential backoff, then raised (a bounded wait)
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout_s,
            max_pool_connections=32,
            # MinIO/moto behind a host:port have no per-bucket DNS names.
            s3={"addressing_style": "path"} if endpoint_url else {},
            # botocore >= 1.36 adds CRC checksums to every upload by default; several S3-compatible servers
            # reject them, and TLS already protects the bytes in flight.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)

    def _full_key(self, key: str) -> str:
        return self.root + validate_key(key)

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.part_size, multipart_chunksize=self.part_size, max_concurrency=8
        )

    def _get_object(self, key: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            response: dict[str, Any] = self.client.get_object(Bucket=self.bucket, Key=self._full_key(key))
            return response
        except ClientError as e:
            if _is_not_found(e):
                raise ObjectNotFound(key) from None
            raise

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            response: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self._full_key(key))
            return response
        except ClientError as e:
            if _is_not_found(e):
                return None
            raise

    def writer(self, key: str) -> ObjectWriter:
        validate_key(key)
        return _S3Writer(self, key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._full_key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        full_key = self._full_key(key)
        self.client.upload_file(str(path), self.bucket, full_key, Config=self._transfer_config())

    def get_bytes(self, key: str) -> bytes:
        body = self._get_object(key)["Body"]
        with body:
            data: bytes = body.read()
        return data

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        body = self._get_object(key)["Body"]

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(chunk_size)

        return chunks()

    def download_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        full_key = self._full_key(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # s3transfer downloads to a temp name next to ``path`` and renames it at the end.
            self.client.download_file(self.bucket, full_key, str(path), Config=self._transfer_config())
        except ClientError as e:
            if _is_not_found(e):
                raise ObjectNotFound(key) from None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise ObjectNotFound(key)
        return int(head["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        _validate_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root + prefix):
            keys.extend(obj["Key"][len(self.root) :] for obj in page.get("Contents", ()))
        return sorted(keys)

    def list_modified(self, prefix: str) -> builtins.list[tuple[str, float]]:
        _validate_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        listed: list[tuple[str, float]] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root + prefix):
            listed.extend(
                (obj["Key"][len(self.root) :], obj["LastModified"].timestamp()) for obj in page.get("Contents", ())
            )
        return sorted(listed)

    def abort_stale_uploads(self, before: float) -> int:
        from botocore.exceptions import ClientError

        aborted = 0
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.root):
            for upload in page.get("Uploads", ()):
                if upload["Initiated"].timestamp() >= before or self._last_part_at(upload) >= before:
                    continue
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
                except ClientError as e:
                    if _error_code(e) != "NoSuchUpload":  # another API process's janitor was first
                        raise
        return aborted

    def _last_part_at(self, upload: dict[str, Any]) -> float:
        """When the newest part arrived (0 for none): a 512 MB upload may be in flight long after it began."""
        from botocore.exceptions import ClientError

        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        try:
            return max((p["LastModified"].timestamp() for page in pages for p in page.get("Parts", ())), default=0.0)
        except ClientError as e:
            if _error_code(e) == "NoSuchUpload":  # completed or aborted since it was listed: nothing to do
                return float("inf")
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._full_key(key))

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete the whole store: prefix must not be empty")
        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": self.root + k} for k in keys[start : start + 1000]]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise OSError(f"S3 delete failed for {len(response['Errors'])} keys, first: {first}")
        return len(keys)

    def presigned_url(self, key: str, expires_s: int = 3600) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._full_key(key)}, ExpiresIn=expires_s
        )
        return url

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if _error_code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as e:
            if _error_code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
