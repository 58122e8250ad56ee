"""Metadata and headers round trip; CopyObject; integrity headers a client sends (Content-MD5, x-amz-checksum-*)."""

import base64
import hashlib
import zlib

import pytest
from botocore.exceptions import ClientError

from s3util import client_error, random_bytes

HEADERS = {"ContentType": "application/x-blobseal-test", "ContentDisposition": 'attachment; filename="r.bin"',
           "CacheControl": "max-age=60, private", "ContentEncoding": "identity", "ContentLanguage": "de-DE"}


def test_user_metadata_and_content_headers_roundtrip(s3, bucket):
    meta = {"owner": "alice", "purpose": "gdpr-test", "empty": ""}
    s3.put_object(Bucket=bucket, Key="m", Body=b"payload", Metadata=meta, **HEADERS)
    for resp in (s3.head_object(Bucket=bucket, Key="m"), s3.get_object(Bucket=bucket, Key="m")):
        assert resp["Metadata"] == meta
        for name, value in HEADERS.items():
            assert resp[name] == value, name
    # The envelope is blobseal's business: a client never sees it among its metadata.
    assert not any("blobseal" in k.lower() for k in s3.head_object(Bucket=bucket, Key="m")["Metadata"])


@pytest.mark.parametrize("size", [0, 5, 200 * 1024])
def test_copy_object_metadata_copy_and_replace(s3, bucket, size):
    data = random_bytes(size)
    s3.put_object(Bucket=bucket, Key="src", Body=data, Metadata={"colour": "blue"}, ContentType="text/x-src")

    copied = s3.copy_object(Bucket=bucket, Key="dst-copy", CopySource={"Bucket": bucket, "Key": "src"})
    got = s3.get_object(Bucket=bucket, Key="dst-copy")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"colour": "blue"}
    assert got["ContentType"] == "text/x-src"
    assert got["ETag"] == copied["CopyObjectResult"]["ETag"]

    s3.copy_object(Bucket=bucket, Key="dst-replace", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"shape": "round"}, ContentType="text/x-new")
    got = s3.get_object(Bucket=bucket, Key="dst-replace")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"shape": "round"}
    assert got["ContentType"] == "text/x-new"
    assert s3.head_object(Bucket=bucket, Key="dst-replace")["ContentLength"] == size


def test_copy_object_across_buckets(s3, bucket):
    other = bucket + "-2"
    s3.create_bucket(Bucket=other)
    try:
        data = random_bytes(70000)
        s3.put_object(Bucket=bucket, Key="x", Body=data)
        s3.copy_object(Bucket=other, Key="y", CopySource={"Bucket": bucket, "Key": "x"})
        assert s3.get_object(Bucket=other, Key="y")["Body"].read() == data
    finally:
        s3.delete_object(Bucket=other, Key="y")
        s3.delete_bucket(Bucket=other)


def _absent(s3, bucket, key):
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key=key)
    return client_error(err.value)[0] == 404


def test_content_md5_checked(s3, bucket):
    data = random_bytes(3000)
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="good", Body=data, ContentMD5=good)
    assert s3.get_object(Bucket=bucket, Key="good")["Body"].read() == data

    wrong = base64.b64encode(hashlib.md5(data + b"x").digest()).decode()
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, ContentMD5=wrong)
    assert client_error(err.value) == (400, "BadDigest")
    assert _absent(s3, bucket, "bad")


def test_content_md5_checked_on_raw_unchunked_put(instance, s3, bucket):
    # Without boto3's aws-chunked encoding: a plain signed PUT with a wrong Content-MD5.
    data = random_bytes(100)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    resp = instance.signed("PUT", f"/{bucket}/raw-bad", body=data, headers={"Content-MD5": wrong})
    assert resp.status == 400 and resp.error_code() == "BadDigest", (resp.status, resp.body[:300])
    assert _absent(s3, bucket, "raw-bad")


def test_wrong_crc32_header_rejected(s3, bucket):
    data = random_bytes(5000)
    right = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    s3.put_object(Bucket=bucket, Key="crc-good", Body=data, ChecksumCRC32=right)
    assert s3.get_object(Bucket=bucket, Key="crc-good")["Body"].read() == data

    wrong = base64.b64encode(((zlib.crc32(data) ^ 1) & 0xFFFFFFFF).to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="crc-bad", Body=data, ChecksumCRC32=wrong)
    status, code = client_error(err.value)
    assert status == 400 and code in ("BadDigest", "XAmzContentChecksumMismatch"), (status, code)
    assert _absent(s3, bucket, "crc-bad")


def test_metadata_above_two_kib_is_refused_everywhere(s3, bucket):
    # S3 counts the UTF-8 bytes of names (without x-amz-meta-) and values: 2048 is the most allowed.
    at_limit = {"a": "x" * 1023, "bb": "y" * 1022}
    s3.put_object(Bucket=bucket, Key="ok", Body=b"fits", Metadata=at_limit)
    assert s3.head_object(Bucket=bucket, Key="ok")["Metadata"] == at_limit
    over = {"a": "x" * 1023, "bb": "y" * 1023}
    refusals = [
        lambda: s3.put_object(Bucket=bucket, Key="big", Body=b"x" * 100_000, Metadata=over),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="big", Metadata=over),
        lambda: s3.copy_object(Bucket=bucket, Key="big", CopySource={"Bucket": bucket, "Key": "ok"},
                               MetadataDirective="REPLACE", Metadata=over),
        lambda: s3.put_object(Bucket=bucket, Key="big", Body=b"x", Metadata={f"k{i}": "v" * 200 for i in range(11)}),
    ]
    for refuse in refusals:
        with pytest.raises(ClientError) as err:
            refuse()
        assert client_error(err.value) == (400, "MetadataTooLarge")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["ok"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
