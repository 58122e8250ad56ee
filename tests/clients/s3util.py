"""Client-side helpers: boto3 clients, hand-signed raw requests, presigned URLs, S3 XML errors, random data."""

from __future__ import annotations

import hashlib
import http.client
import os
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REGION = "us-east-1"
SEG = 64 * 1024  # blobseal's plaintext segment size
TAG = 16  # AES-GCM tag per segment


def s3_client(endpoint: str, access_key: str, secret_key: str, verify: str | bool | None = None, **config):
    """A boto3 S3 client for `endpoint`: path-style, us-east-1, explicit credentials, no retries.

    Retries are off so that a server error shows up as the error it is instead of being hidden
    by a retry that happened to succeed. Extra keyword arguments go into botocore's `Config`; `verify` is
    the CA bundle for an https endpoint.
    """
    cfg = {"s3": {"addressing_style": "path"}, "signature_version": "s3v4",
           "retries": {"total_max_attempts": 1, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 60}
    cfg.update(config)
    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                    region_name=REGION)
    return session.client("s3", endpoint_url=endpoint, config=Config(**cfg), verify=verify)


@dataclass
class Response:
    """A raw HTTP response: status, lower-cased headers, body bytes."""
    status: int
    headers: dict[str, str]
    body: bytes

    def error_code(self) -> str | None:
        """The `<Code>` of an S3 XML error body, or None when the body is not one."""
        return error_code(self.body)


def error_code(body: bytes) -> str | None:
    """The `<Code>` of an S3 XML `<Error>` document, or None when `body` is not such a document."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if root.tag.split("}")[-1] != "Error":
        return None
    code = root.find("Code")
    return code.text if code is not None else None


def raw_request(method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b"",
                timeout: float = 30) -> Response:
    """Send one request with http.client (no retries, no checksum handling) and read the whole answer."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def signed_request(endpoint: str, access_key: str, secret_key: str, method: str, path: str, query: str = "",
                   body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
    """A SigV4-signed request built by hand, for bodies and headers that boto3 would never send."""
    url = endpoint + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", REGION).add_auth(req)
    prepared = req.prepare()
    return raw_request(method, prepared.url, dict(prepared.headers.items()), body)


@dataclass
class Instance:
    """One running blobseal under test, and how to reach what sits behind it."""
    name: str  # "fs" (embedded default), "moto" (S3 backend on moto_server) or "azure" (Azure backend on Azurite)
    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path | None = None  # fs instance: where the ciphertext files are
    moto_endpoint: str | None = None  # moto instance: the backend, reachable directly
    azure_url: str | None = None  # azure instance: the Azurite account's blob URL
    server: object = field(default=None, repr=False)

    def client(self, **config):
        return s3_client(self.endpoint, self.access_key, self.secret_key, **config)

    def signed(self, method: str, path: str, query: str = "", body: bytes = b"",
               headers: dict[str, str] | None = None) -> Response:
        return signed_request(self.endpoint, self.access_key, self.secret_key, method, path, query, body, headers)


def unique_bucket() -> str:
    """A fresh, valid, lower-case bucket name."""
    return "bst-" + uuid.uuid4().hex[:16]


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def stored_size(plain: int) -> int:
    """Ciphertext body size for a plaintext of `plain` bytes: one 16-byte tag per 64 KiB segment, at least one."""
    return plain + TAG * max(1, -(-plain // SEG))


def client_error(exc: ClientError) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a boto3 ClientError."""
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"].get("Code", "")


def empty_and_delete(client, bucket: str) -> None:
    """Best-effort clean-up: remove every version, delete marker and object, then the bucket."""
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    except ClientError:
        pass
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=o["Key"])
        client.delete_bucket(Bucket=bucket)
    except ClientError:
        pass


# --- multipart helpers (tests/clients/test_multipart.py, test_two_process.py, test_volume.py) --------------------

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3's smallest non-last part


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_parts(clients, bucket: str, key: str, upload_id: str, parts: dict[int, bytes],
                 workers: int = 4) -> dict[int, str]:
    """UploadPart every `number → bytes` of `parts` in parallel threads; returns `number → ETag`.

    `clients` is one boto3 client or a list of them: part i then goes to `clients[i % len(clients)]`
    (a round-robin over several endpoints). Parts are submitted in the order of the dict.
    """
    pool = clients if isinstance(clients, list) else [clients]

    def one(number: int, body: bytes) -> tuple[int, str]:
        c = pool[number % len(pool)]
        return number, c.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                     Body=body)["ETag"]

    with ThreadPoolExecutor(max_workers=workers) as ex:
        return dict(f.result() for f in [ex.submit(one, n, b) for n, b in parts.items()])


def complete(client, bucket: str, key: str, upload_id: str, etags: dict[int, str], **extra) -> dict:
    """CompleteMultipartUpload with `etags` (number → ETag) in ascending part order."""
    listed = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
    return client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                            MultipartUpload={"Parts": listed}, **extra)


def multipart_put(client, bucket: str, key: str, parts: list[bytes], **create) -> dict:
    """Create, upload `parts` (numbered from 1, in parallel), complete; returns Complete's response."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    etags = upload_parts(client, bucket, key, upload_id, dict(enumerate(parts, start=1)))
    return complete(client, bucket, key, upload_id, etags)


def abort_all_uploads(client, bucket: str) -> None:
    """Best-effort clean-up: abort every multipart upload still in progress in `bucket`."""
    try:
        for up in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    except ClientError:
        pass
