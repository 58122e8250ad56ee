"""Presigned URLs (boto3 generate_presigned_url, then plain HTTP) and authentication failures."""

import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from s3util import client_error, random_bytes, raw_request, s3_client


def _urlopen(req):
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_presigned_get_and_put(s3, bucket):
    data = random_bytes(100_000)
    s3.put_object(Bucket=bucket, Key="g", Body=data)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "g"}, ExpiresIn=300)
    status, body = _urlopen(urllib.request.Request(url))
    assert status == 200 and body == data

    ranged = raw_request("GET", url, headers={"Range": "bytes=65530-65540"})
    assert ranged.status == 206 and ranged.body == data[65530:65541]
    assert ranged.headers["content-range"] == "bytes 65530-65540/100000"

    upload = random_bytes(70_000)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    # urllib would add `Content-Type: application/x-www-form-urlencoded`, which moto mangles (it parses the
    # body as a form): say what the body is, as S3 clients do.
    status, body = _urlopen(urllib.request.Request(put_url, data=upload, method="PUT",
                                                   headers={"Content-Type": "application/octet-stream"}))
    assert status == 200, body[:500]
    assert s3.get_object(Bucket=bucket, Key="p")["Body"].read() == upload
    assert s3.head_object(Bucket=bucket, Key="p")["ContentLength"] == len(upload)


def test_presigned_head(s3, bucket):
    s3.put_object(Bucket=bucket, Key="h", Body=b"12345")
    url = s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "h"}, ExpiresIn=300)
    resp = raw_request("HEAD", url)
    assert resp.status == 200 and resp.headers["content-length"] == "5"


def test_expired_presigned_url_is_403(s3, bucket):
    s3.put_object(Bucket=bucket, Key="e", Body=b"secret data")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "e"}, ExpiresIn=1)
    time.sleep(2.5)
    resp = raw_request("GET", url)
    assert resp.status == 403, resp.body[:500]
    assert b"secret data" not in resp.body
    assert resp.error_code() == "AccessDenied"


def test_wrong_secret_is_signature_mismatch(instance, bucket):
    bad = s3_client(instance.endpoint, instance.access_key, instance.secret_key + "x")
    with pytest.raises(ClientError) as err:
        bad.list_objects_v2(Bucket=bucket)
    assert client_error(err.value) == (403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as err:
        bad.put_object(Bucket=bucket, Key="nope", Body=b"x")
    assert client_error(err.value) == (403, "SignatureDoesNotMatch")

    url = bad.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    resp = raw_request("GET", url)
    assert resp.status == 403 and resp.error_code() == "SignatureDoesNotMatch", resp.body[:500]


def test_unknown_access_key_is_invalid_access_key_id(instance, bucket):
    bad = s3_client(instance.endpoint, "AKIDUNKNOWNUNKNOWN", instance.secret_key)
    with pytest.raises(ClientError) as err:
        bad.list_objects_v2(Bucket=bucket)
    assert client_error(err.value) == (403, "InvalidAccessKeyId")
    url = bad.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    resp = raw_request("GET", url)
    assert resp.status == 403 and resp.error_code() == "InvalidAccessKeyId", resp.body[:500]


def test_anonymous_request_is_refused(instance, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"private bytes")
    resp = raw_request("GET", f"{instance.endpoint}/{bucket}/private")
    assert resp.status == 403 and b"private bytes" not in resp.body
