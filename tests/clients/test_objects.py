"""boto3 with its default settings: PUT/GET/HEAD round trips, ETags and byte ranges (S3's documented behaviour)."""

import re

import pytest
from botocore.exceptions import ClientError

from s3util import client_error, random_bytes

SIZES = [0, 1, 65535, 65536, 65537, 1024 * 1024]


def etag_ok(etag: str) -> bool:
    """blobseal's ETag: quoted, and with a dash so that no tool takes it for the plaintext's MD5."""
    return re.fullmatch(r'"[0-9a-zA-Z]+-[0-9]+"', etag) is not None


@pytest.mark.parametrize("size", SIZES)
def test_put_get_head_roundtrip(s3, bucket, size):
    data = random_bytes(size)
    key = f"obj-{size}"
    put = s3.put_object(Bucket=bucket, Key=key, Body=data)
    assert etag_ok(put["ETag"]), put["ETag"]

    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ContentLength"] == size
    assert got["ETag"] == put["ETag"]

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"] == put["ETag"]


def test_overwrite_changes_etag_and_content(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"first version")
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"second, longer version")
    assert first["ETag"] != second["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second, longer version"


def test_keys_with_odd_characters(s3, bucket):
    keys = ["dir/sub/file.txt", "with space", "ümlaut/ß", "a+b=c&d", "trailing/", "..dots..", "%41percent"]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=f"body {i}".encode())
    for i, key in enumerate(keys):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == f"body {i}".encode()
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert listed == sorted(keys)


def _range_cases(size):
    """(Range header, first, last) for a `size`-byte object; segment boundaries are at multiples of 65536."""
    cases = [("bytes=0-0", 0, 0), (f"bytes=0-{size - 1}", 0, size - 1), (f"bytes={size - 1}-", size - 1, size - 1),
             ("bytes=-1", size - 1, size - 1), (f"bytes=-{size + 100}", 0, size - 1),
             (f"bytes=0-{size + 100}", 0, size - 1)]
    if size > 70000:
        cases += [("bytes=65530-65545", 65530, 65545), ("bytes=65536-65536", 65536, 65536),
                  ("bytes=1000-", 1000, size - 1), ("bytes=-70000", size - 70000, size - 1),
                  ("bytes=131071-131073", 131071, 131073)]
    return cases


@pytest.mark.parametrize("size", [1, 65537, 1024 * 1024])
def test_ranges(s3, bucket, size):
    data = random_bytes(size)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    for header, first, last in _range_cases(size):
        try:
            got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        except ClientError as err:
            pytest.fail(f"Range {header} on a {size}-byte object: {err}")
        status = got["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 206, (header, status)
        assert got["ContentRange"] == f"bytes {first}-{last}/{size}", header
        assert got["ContentLength"] == last - first + 1, header
        assert got["Body"].read() == data[first:last + 1], header


@pytest.mark.parametrize("header_of", [lambda n: f"bytes={n}-", lambda n: f"bytes={n + 10}-{n + 20}"])
def test_unsatisfiable_range_is_416(s3, bucket, header_of):
    s3.put_object(Bucket=bucket, Key="r", Body=random_bytes(1000))
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="r", Range=header_of(1000))
    assert client_error(err.value) == (416, "InvalidRange")


def test_get_missing_key_is_404_nosuchkey(instance, s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="no/such/key")
    assert client_error(err.value) == (404, "NoSuchKey")
    raw = instance.signed("GET", f"/{bucket}/no/such/key")
    assert raw.status == 404
    assert raw.error_code() == "NoSuchKey", raw.body[:500]
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="no/such/key")
    assert client_error(err.value)[0] == 404


def test_get_in_missing_bucket_is_404(s3):
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="bst-no-such-bucket-at-all", Key="k")
    assert client_error(err.value) == (404, "NoSuchBucket")


def test_tags_on_writes_are_checked_and_reserved_names_refused(s3, bucket):
    """x-amz-tagging on a PUT is stored (retention rules can match it); blobseal's own tag names and
    malformed tag sets are refused and store nothing."""
    s3.put_object(Bucket=bucket, Key="tagged", Body=b"x", Tagging="a=b&c=d%20e")
    assert s3.get_object(Bucket=bucket, Key="tagged")["Body"].read() == b"x"
    for bad in ("blobseal-delete-after=2000-01-01T00:00:00Z", "a=1&a=2", "&".join(f"k{i}=v" for i in range(11))):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="refused", Body=b"x", Tagging=bad)
        assert client_error(e.value)[0] == 400, (bad, client_error(e.value))
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="refused")
