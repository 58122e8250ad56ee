"""Read preconditions: If-Match / If-None-Match / If-(Un)Modified-Since on GET and HEAD."""

from __future__ import annotations

import datetime

import pytest
from botocore.exceptions import ClientError

from s3util import client_error

FUTURE = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
PAST = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("op", ["get_object", "head_object"])
def test_preconditions(s3, bucket, op):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")["ETag"]
    call = getattr(s3, op)
    # Passing conditions serve the object.
    for kw in (dict(IfMatch=etag), dict(IfNoneMatch='"other-1"'), dict(IfModifiedSince=PAST),
               dict(IfUnmodifiedSince=FUTURE), dict(IfMatch=etag, IfUnmodifiedSince=PAST)):
        call(Bucket=bucket, Key="c", **kw)
    for kw, status in ((dict(IfMatch='"other-1"'), 412), (dict(IfUnmodifiedSince=PAST), 412),
                       (dict(IfNoneMatch=etag), 304), (dict(IfModifiedSince=FUTURE), 304),
                       (dict(IfNoneMatch="*"), 304)):
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Key="c", **kw)
        assert client_error(e.value)[0] == status, kw
    # The connection stays usable after a 304/412: the object still reads back whole.
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"conditional"
