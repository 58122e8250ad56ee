"""Conditional requests: read preconditions on GET/HEAD, copy-source preconditions on CopyObject, and the
conditional writes blobseal supports (`If-None-Match: *`) or refuses clearly (`If-Match` on PutObject)."""

from __future__ import annotations

import datetime

import pytest
from botocore.exceptions import ClientError

from s3util import client_error

FUTURE = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
PAST = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


def _with_header(s3, event: str, name: str, value: str) -> None:
    """Make every later `event` call of `s3` send `name: value` (for headers boto3 does not model)."""
    s3.meta.events.register(f"before-call.s3.{event}",
                            lambda params, **_: params["headers"].__setitem__(name, value))


@pytest.mark.parametrize("op", ["get_object", "head_object"])
def test_preconditions(s3, bucket, op):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")["ETag"]
    call = getattr(s3, op)
    # Passing conditions serve the object; quotes around the ETag are optional.
    for kw in (dict(IfMatch=etag), dict(IfMatch=etag.strip('"')), dict(IfMatch="*"),
               dict(IfNoneMatch='"other-1"'), dict(IfModifiedSince=PAST), dict(IfUnmodifiedSince=FUTURE),
               # If-Match true + If-Unmodified-Since false: served (S3's documented precedence).
               dict(IfMatch=etag, IfUnmodifiedSince=PAST),
               # If-None-Match true + If-Modified-Since false: served (If-Modified-Since is not evaluated).
               dict(IfNoneMatch='"other-1"', IfModifiedSince=FUTURE)):
        call(Bucket=bucket, Key="c", **kw)
    for kw, status in ((dict(IfMatch='"other-1"'), 412), (dict(IfUnmodifiedSince=PAST), 412),
                       (dict(IfNoneMatch=etag), 304), (dict(IfNoneMatch=etag.strip('"')), 304),
                       (dict(IfModifiedSince=FUTURE), 304), (dict(IfNoneMatch="*"), 304),
                       # If-None-Match false + If-Modified-Since true: 304 (S3's documented precedence).
                       (dict(IfNoneMatch=etag, IfModifiedSince=PAST), 304),
                       # If-Match false wins over If-Unmodified-Since true.
                       (dict(IfMatch='"other-1"', IfUnmodifiedSince=FUTURE), 412)):
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Key="c", **kw)
        assert client_error(e.value)[0] == status, kw
        if status == 304:
            # A 304 carries the object's validators, as S3 sends them.
            headers = e.value.response["ResponseMetadata"]["HTTPHeaders"]
            assert headers.get("etag") == etag, kw
            assert "last-modified" in headers, kw
    # The connection stays usable after a 304/412: the object still reads back whole.
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"conditional"


def test_preconditions_on_a_missing_key_answer_404(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="absent", IfMatch='"x-1"')
    assert client_error(e.value) == (404, "NoSuchKey")


def test_copy_source_preconditions(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"source bytes")["ETag"]
    src = {"Bucket": bucket, "Key": "src"}
    passing = (dict(CopySourceIfMatch=etag), dict(CopySourceIfMatch=etag.strip('"')),
               dict(CopySourceIfNoneMatch='"other-1"'), dict(CopySourceIfModifiedSince=PAST),
               dict(CopySourceIfUnmodifiedSince=FUTURE),
               # if-match true + if-unmodified-since false: copied (S3's documented precedence).
               dict(CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=PAST))
    for i, kw in enumerate(passing):
        s3.copy_object(Bucket=bucket, Key=f"ok{i}", CopySource=src, **kw)
        assert s3.get_object(Bucket=bucket, Key=f"ok{i}")["Body"].read() == b"source bytes", kw
    failing = (dict(CopySourceIfMatch='"other-1"'), dict(CopySourceIfNoneMatch=etag),
               dict(CopySourceIfNoneMatch="*"), dict(CopySourceIfModifiedSince=FUTURE),
               dict(CopySourceIfUnmodifiedSince=PAST),
               # if-none-match false + if-modified-since true: 412 (S3's documented precedence).
               dict(CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=PAST))
    for kw in failing:
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=bucket, Key="bad", CopySource=src, **kw)
        assert client_error(e.value) == (412, "PreconditionFailed"), kw
    # Nothing was written by a refused copy.
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad")
    assert client_error(e.value)[0] == 404


def test_copy_source_preconditions_on_a_missing_source_answer_404(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "absent"},
                       CopySourceIfMatch='"x-1"')
    assert client_error(e.value) == (404, "NoSuchKey")


def test_put_if_none_match_star_creates_only(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert client_error(e.value) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_copy_if_none_match_star_creates_only(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    s3.put_object(Bucket=bucket, Key="taken", Body=b"keep me")
    _with_header(s3, "CopyObject", "If-None-Match", "*")
    s3.copy_object(Bucket=bucket, Key="fresh", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object(Bucket=bucket, Key="fresh")["Body"].read() == b"source"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="taken", CopySource={"Bucket": bucket, "Key": "src"})
    assert client_error(e.value) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"keep me"


@pytest.mark.parametrize("header,value", [("If-Match", '"x-1"'), ("If-Match", "*"), ("If-None-Match", '"x-1"')])
def test_unsupported_conditional_writes_are_refused_not_ignored(s3, bucket, header, value):
    # Conditional overwrite needs a compare-and-swap the backends do not offer: refusing it is the only
    # honest answer (ignoring it would silently overwrite a newer object).
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    _with_header(s3, "PutObject", header, value)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"replacement")
    assert client_error(e.value) == (501, "NotImplemented")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"
