"""What blobseal really stored: files under an fs data dir, raw objects on moto; plaintext search; tampering."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import pytest

WINDOW = 32  # a plaintext leak is any 32-byte run of plaintext found in stored bytes
BLOCK = WINDOW // 2


class PlaintextIndex:
    """Every 16-byte window of some plaintexts, to look for any 32-byte plaintext window in stored bytes.

    Any 32-byte run of stored bytes covers a 16-byte block that starts at a multiple of 16 in the stored
    blob, and that block is then a 16-byte window of the plaintext: so looking up the blob's aligned
    16-byte blocks in the set of all 16-byte plaintext windows finds every 32-byte leak (and more).
    """

    def __init__(self, plaintexts: list[bytes]):
        self.windows: set[bytes] = set()
        for p in plaintexts:
            assert len(p) >= WINDOW, "plaintexts must be at least one window long"
            self.windows.update(p[i:i + BLOCK] for i in range(len(p) - BLOCK + 1))

    def leak_offset(self, blob: bytes) -> int | None:
        """Offset in `blob` of a 16-byte block of plaintext, or None when there is none."""
        windows = self.windows
        for off in range(0, len(blob) - BLOCK + 1, BLOCK):
            if blob[off:off + BLOCK] in windows:
                return off
        return None


def fs_snapshot(data_dir: Path) -> dict[Path, tuple[int, int]]:
    """Every regular file under `data_dir` with its (size, mtime_ns)."""
    out = {}
    for path in data_dir.rglob("*"):
        try:
            if path.is_file():
                st = path.stat()
                out[path] = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            continue  # a temporary file that went away while we looked
    return out


def stored_files(data_dir: Path):
    """(path, bytes) of every regular file under `data_dir`, skipping files that go away while we look (a write
    in progress renames its temporary file; the audit trail writes in the background)."""
    for path in fs_snapshot(data_dir):
        try:
            yield path, path.read_bytes()
        except FileNotFoundError:
            continue


def is_audit_trail(path: Path) -> bool:
    """Whether `path` is in a tenant's audit trail bucket (`<prefix>blobseal-audit`): records, not objects."""
    return any(part.endswith("blobseal-audit") for part in path.parts)


def fs_put_and_locate(s3, bucket: str, key: str, data: bytes, data_dir: Path) -> Path:
    """PUT through blobseal and return the one file under `data_dir` that holds the object."""
    before = fs_snapshot(data_dir)
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    after = fs_snapshot(data_dir)
    changed = [p for p, meta in after.items() if before.get(p) != meta and p.suffix not in (".tmp", ".part")]
    # The first write of a tenant also creates its lifetime key in the key store bucket: not this object.
    objects = [p for p in changed if "objects" in p.parts and bucket in p.parts]
    found = objects or changed
    if len(found) != 1:
        pytest.fail(f"expected one new file for {bucket}/{key} under {data_dir}, found: {found}")
    return found[0]


def fs_locate_new(data_dir: Path, action: Callable[[], object]) -> Path:
    """Run `action` (an upload through blobseal) and return the one object file it left under `data_dir`.

    Files that appear and go again while `action` runs (multipart parts, blobseal's hidden upload object)
    do not count: only object files (64 hex characters, FORMAT.md §12) present afterwards and new or changed.
    """
    before = fs_snapshot(data_dir)
    action()
    after = fs_snapshot(data_dir)
    # The tenant's audit trail (a reserved bucket, `<prefix>blobseal-audit`) records the upload too: not an object.
    found = [p for p, meta in after.items() if before.get(p) != meta and len(p.name) == 64
             and not p.name.startswith(".") and "objects" in p.parts
             and not is_audit_trail(p)]
    if len(found) != 1:
        pytest.fail(f"expected one new object file under {data_dir}, found: {found}")
    return found[0]


@dataclass
class FsObject:
    """One object file of the fs backend (FORMAT.md §12), split into its JSON header and its body.

    `write` rewrites the file the way the fs backend itself would have written a body and metadata
    (header `size` and MD5 follow the body), so that only blobseal's own checks can refuse the edit,
    never the fs backend's consistency check of the file.
    """
    path: Path
    header: dict
    body: bytes

    @classmethod
    def read(cls, path: Path) -> "FsObject":
        blob = path.read_bytes()
        assert blob[:5] == b"BSOB\x01", f"{path} is not a version 1 object file"
        json_len = int.from_bytes(blob[21:25], "big")
        header = json.loads(blob[25:25 + json_len])
        body = blob[25 + json_len:]
        assert header["size"] == len(body), "object file header and body disagree"
        return cls(path, header, body)

    @property
    def metadata(self) -> dict[str, str]:
        return self.header["metadata"]

    def write(self, body: bytes | None = None, metadata: dict | None = None) -> None:
        """Replace the file (atomically) with this object's header, `body` and `metadata` substituted."""
        body = self.body if body is None else body
        header = dict(self.header, size=len(body), metadata=self.metadata if metadata is None else metadata)
        js = json.dumps(header, separators=(",", ":")).encode()
        blob = b"BSOB\x01" + hashlib.md5(body).digest() + len(js).to_bytes(4, "big") + js + body
        # A name starting with "." is a write in progress to the fs backend: never read as an object.
        tmp = self.path.with_name(".tamper-" + self.path.name)
        tmp.write_bytes(blob)
        os.replace(tmp, self.path)


@dataclass
class RawObject:
    """An object as moto stores it: body and user metadata (which carries `blobseal-envelope`)."""
    bucket: str
    key: str
    body: bytes
    metadata: dict[str, str]
    content_type: str

    @classmethod
    def read(cls, raw, bucket: str, key: str) -> "RawObject":
        got = raw.get_object(Bucket=bucket, Key=key)
        return cls(bucket, key, got["Body"].read(), got.get("Metadata", {}), got.get("ContentType", ""))

    def write(self, raw, key: str | None = None, body: bytes | None = None, metadata: dict | None = None) -> None:
        """Store this object (or a variant of it) straight on moto, bypassing blobseal."""
        raw.put_object(Bucket=self.bucket, Key=key or self.key, Body=self.body if body is None else body,
                       Metadata=self.metadata if metadata is None else metadata, ContentType=self.content_type)


def moto_keys(raw) -> set[tuple[str, str]]:
    """(bucket, key) of every object version on moto, in every bucket."""
    out = set()
    for b in raw.list_buckets()["Buckets"]:
        for page in raw.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            out.update((b["Name"], o["Key"]) for o in page.get("Contents", []))
    return out


def moto_locate_new(raw, action: Callable[[], object]) -> RawObject:
    """Run `action` (an upload through blobseal) and return the one raw object on moto it left behind."""
    before = moto_keys(raw)
    action()
    # Ignore key-store records (a tenant's first write creates its lifetime key).
    new = {(b, k) for b, k in moto_keys(raw) - before if not k.startswith(("keys/", "receipts/"))}
    if len(new) != 1:
        pytest.fail(f"expected one new raw object on moto, found: {sorted(new)}")
    b, k = new.pop()
    return RawObject.read(raw, b, k)


def moto_put_and_locate(s3, raw, bucket: str, key: str, data: bytes) -> RawObject:
    """PUT through blobseal and return the raw object that appeared on moto for it."""
    before = moto_keys(raw)
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    # The first write of a tenant also creates its lifetime key in the key store bucket: not this object.
    new = {(b, k) for b, k in moto_keys(raw) - before if b.endswith(bucket)}
    if len(new) != 1:
        pytest.fail(f"expected one new raw object on moto for {bucket}/{key}, found: {sorted(new)}")
    b, k = new.pop()
    return RawObject.read(raw, b, k)


def assert_unreadable(s3, bucket: str, key: str, **get_args) -> Exception:
    """GET must fail (error status or broken body); returning any complete body is a failure.

    `get_args` go to `get_object` as they are (e.g. `Range="bytes=0-99"`).
    """
    try:
        resp = s3.get_object(Bucket=bucket, Key=key, **get_args)
        body = resp["Body"].read()
    except AssertionError:
        raise
    except Exception as err:  # ClientError, IncompleteReadError, ResponseStreamingError, connection reset …
        return err
    pytest.fail(f"tampered object {bucket}/{key} {get_args or ''} read back {len(body)} bytes with status "
                f"{resp['ResponseMetadata']['HTTPStatusCode']}")


def assert_raw_get_never_complete(url: str, original: bytes) -> str:
    """Plain http.client GET of a (presigned) URL: either an error status, or a body that breaks off.

    Returns a description of how it failed. A complete 200 body is a failure, whatever its bytes. A
    connection closed before any status line (blobseal found the first segment bad after deciding on 200
    but before the head went out) is a refusal too: the client received nothing.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        try:
            resp = conn.getresponse()
        except http.client.RemoteDisconnected as err:
            return f"closed before a status: {err}"
        if resp.status != 200:
            body = resp.read()
            assert resp.status >= 400, resp.status
            assert original[:64] not in body
            return f"status {resp.status}"
        try:
            body = resp.read()
        except (http.client.IncompleteRead, ConnectionError, http.client.HTTPException) as err:
            return f"200 then {type(err).__name__}"
        pytest.fail(f"complete 200 body of {len(body)} bytes (original {len(original)}, "
                    f"content-length {resp.getheader('content-length')}) from a tampered object")
    finally:
        conn.close()


def raw_get_received(url: str) -> tuple[int, bytes, bool]:
    """Plain http.client GET of a (presigned) URL: (status, the body bytes that arrived, whether it was complete).

    A connection closed before the status line is `(0, b"", False)`; a body cut short is the bytes
    received before the cut and `False`. For asserting that whatever a refused GET let through was
    only ever authenticated plaintext.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        try:
            resp = conn.getresponse()
        except http.client.RemoteDisconnected:
            return 0, b"", False
        try:
            return resp.status, resp.read(), True
        except http.client.IncompleteRead as err:
            return resp.status, err.partial, False
        except (ConnectionError, http.client.HTTPException):
            return resp.status, b"", False  # what arrived before a reset is not kept by http.client
    finally:
        conn.close()
