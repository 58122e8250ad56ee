"""Issue 6, retention stamps against real moto: every write (PutObject, multipart Complete, CopyObject) gets the
deadline of the first matching rule (else the tenant's default), rounded up to the next midnight UTC, in the
response header `x-blobseal-delete-after`, in the stored (authenticated) metadata and as an object tag; clients
can neither move it (client_override: never) nor set blobseal's tags; an edited stored deadline is detected.
"""

from __future__ import annotations

import os

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from keyutil import expect_error
from policyutil import (DELETE_AFTER, DELETE_AFTER_HEADER, PREFIX, RETENTION_DAYS_HEADER, Clock, dep,  # noqa: F401
                        raw_tags, response_header, with_headers)
from s3util import MIB, client_error, multipart_put, random_bytes, unique_bucket


@pytest.fixture
def bucket(dep):
    name = unique_bucket()
    dep.client().create_bucket(Bucket=name)
    return name


def _stamped(dep, bucket: str, key: str) -> tuple[str | None, str | None]:
    """(raw metadata deadline, raw tag deadline) of the stored object."""
    meta = dep.raw.head_object(Bucket=PREFIX + bucket, Key=key)["Metadata"]
    return meta.get(DELETE_AFTER), raw_tags(dep.raw, PREFIX + bucket, key).get(DELETE_AFTER)


def _put(c, bucket: str, key: str, **kw) -> tuple[str | None, Clock]:
    with Clock() as clock:
        resp = c.put_object(Bucket=bucket, Key=key, Body=kw.pop("Body", b"data of " + key.encode()), **kw)
    return response_header(resp, DELETE_AFTER_HEADER), clock


def test_put_by_prefix_stamps_header_metadata_and_tag(dep, bucket):
    c = dep.client()
    data = random_bytes(70_000)
    with Clock() as clock:
        resp = c.put_object(Bucket=bucket, Key="calls/1.json", Body=data, Metadata={"a": "1"},
                            ContentType="application/json")
    header = response_header(resp, DELETE_AFTER_HEADER)
    assert header in clock.deadlines(28), (header, clock.deadlines(28))
    assert header.endswith("T00:00:00Z")
    assert _stamped(dep, bucket, "calls/1.json") == (header, header)

    # HEAD and GET are unaffected: same bytes, the client's own metadata and content type, no blobseal entries.
    got = c.get_object(Bucket=bucket, Key="calls/1.json")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"a": "1"} and got["ContentType"] == "application/json"
    head = c.head_object(Bucket=bucket, Key="calls/1.json")
    assert head["ContentLength"] == len(data) and head["Metadata"] == {"a": "1"}


def test_rules_by_content_type_tags_and_keep(dep, bucket):
    c = dep.client()
    header, clock = _put(c, bucket, "rec/a.wav", ContentType="audio/wav")
    assert header in clock.deadlines(180) and _stamped(dep, bucket, "rec/a.wav") == (header, header)

    header, clock = _put(c, bucket, "app/1.log", Tagging="class=log")
    assert header in clock.deadlines(35)
    tags = raw_tags(dep.raw, PREFIX + bucket, "app/1.log")
    assert tags == {"class": "log", DELETE_AFTER: header}, tags

    header, clock = _put(c, bucket, "legal/x")
    assert header is None
    assert _stamped(dep, bucket, "legal/x") == (None, None)

    header, clock = _put(c, bucket, "misc/x")  # no rule: the default
    assert header in clock.deadlines(35)

    header, clock = _put(c, bucket, "calls/rec.wav", ContentType="audio/wav")  # first match wins
    assert header in clock.deadlines(28)


def test_client_may_not_move_the_deadline(dep, bucket):
    c = with_headers(dep.client(), "PutObject", {RETENTION_DAYS_HEADER: "3"})
    expect_error(lambda: c.put_object(Bucket=bucket, Key="calls/short", Body=b"x"), 403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        dep.raw.head_object(Bucket=PREFIX + bucket, Key="calls/short")
    assert client_error(e.value)[0] == 404


def test_client_may_not_set_blobseal_tags(dep, bucket):
    c = dep.client()
    expect_error(lambda: c.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="blobseal-x=1"), 400)
    expect_error(lambda: c.put_object(Bucket=bucket, Key="k", Body=b"x",
                                      Tagging=f"{DELETE_AFTER}=2099-01-01T00:00:00Z"), 400)
    with pytest.raises(ClientError) as e:
        dep.raw.head_object(Bucket=PREFIX + bucket, Key="k")
    assert client_error(e.value)[0] == 404


def test_multipart_and_copy_stamp(dep, bucket, tmp_path):
    c = dep.client()
    # boto3's managed upload above its threshold: CreateMultipartUpload, UploadPart x3, Complete.
    path = tmp_path / "big.bin"
    data = os.urandom(11 * MIB)
    path.write_bytes(data)
    with Clock() as clock:
        c.upload_file(str(path), bucket, "calls/big.bin",
                      Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    meta, tag = _stamped(dep, bucket, "calls/big.bin")
    assert meta in clock.deadlines(28) and tag == meta
    assert c.get_object(Bucket=bucket, Key="calls/big.bin")["Body"].read() == data

    # Complete's response carries the header.
    with Clock() as clock:
        done = multipart_put(c, bucket, "rec/long.wav", [os.urandom(5 * MIB), b"tail"], ContentType="audio/wav")
    assert response_header(done, DELETE_AFTER_HEADER) in clock.deadlines(180)
    assert _stamped(dep, bucket, "rec/long.wav")[0] == response_header(done, DELETE_AFTER_HEADER)

    # CopyObject: the destination's rule decides (misc/ → 35d default, calls/ → 28d, legal/ → none).
    c.put_object(Bucket=bucket, Key="misc/src", Body=b"source")
    with Clock() as clock:
        copied = c.copy_object(Bucket=bucket, Key="calls/copied", CopySource={"Bucket": bucket, "Key": "misc/src"})
    header = response_header(copied, DELETE_AFTER_HEADER)
    assert header in clock.deadlines(28), header
    assert _stamped(dep, bucket, "calls/copied") == (header, header)
    assert c.get_object(Bucket=bucket, Key="calls/copied")["Body"].read() == b"source"

    copied = c.copy_object(Bucket=bucket, Key="legal/copied", CopySource={"Bucket": bucket, "Key": "calls/copied"})
    assert response_header(copied, DELETE_AFTER_HEADER) is None
    assert _stamped(dep, bucket, "legal/copied") == (None, None)


def _raw_rewrite_metadata(dep, bucket: str, key: str, change: dict[str, str]) -> None:
    """Self-copy on moto with REPLACE: same bytes, metadata changed by `change` (what an admin could do)."""
    raw_bucket = PREFIX + bucket
    head = dep.raw.head_object(Bucket=raw_bucket, Key=key)
    extra = {"ContentType": head["ContentType"]} if head.get("ContentType") else {}
    dep.raw.copy_object(Bucket=raw_bucket, Key=key, CopySource={"Bucket": raw_bucket, "Key": key},
                        MetadataDirective="REPLACE", Metadata={**head["Metadata"], **change}, **extra)


def test_edited_stored_deadline_fails_the_read(dep, bucket):
    c = dep.client()
    data = random_bytes(10_000)
    c.put_object(Bucket=bucket, Key="calls/t", Body=data)
    meta, _ = _stamped(dep, bucket, "calls/t")
    assert meta

    # Control: rewriting the same metadata changes nothing blobseal authenticates.
    _raw_rewrite_metadata(dep, bucket, "calls/t", {})
    assert c.get_object(Bucket=bucket, Key="calls/t")["Body"].read() == data

    # Moving the deadline a year out (to escape the sweeper) is detected when the object is opened.
    later = str(int(meta[:4]) + 1) + meta[4:]
    _raw_rewrite_metadata(dep, bucket, "calls/t", {DELETE_AFTER: later})
    assert dep.raw.head_object(Bucket=PREFIX + bucket, Key="calls/t")["Metadata"][DELETE_AFTER] == later
    expect_error(lambda: c.get_object(Bucket=bucket, Key="calls/t"), 500, "InternalError")
