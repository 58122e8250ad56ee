"""Bucket-level operations and versioning."""

import pytest
from botocore.exceptions import ClientError

from s3util import client_error, empty_and_delete, unique_bucket


def test_create_list_head_delete_bucket(instance, s3):
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    try:
        assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
        # The backend's region as blobseal knows it: S3's own (us-east-1: no constraint), or the region an fs or
        # Azure backend is declared in (the azure instance: uksouth).
        want = ("uksouth",) if instance.name == "azure" else (None, "", "us-east-1")
        assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in want
    finally:
        s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket=name)
    assert client_error(err.value)[0] == 404


def test_head_missing_bucket_is_404(s3):
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket=unique_bucket())
    assert client_error(err.value)[0] == 404


def test_list_missing_bucket_is_nosuchbucket(s3):
    with pytest.raises(ClientError) as err:
        s3.list_objects_v2(Bucket=unique_bucket())
    assert client_error(err.value) == (404, "NoSuchBucket")


def test_delete_nonempty_bucket_is_409(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket=bucket)
    assert client_error(err.value) == (409, "BucketNotEmpty")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_create_existing_bucket_is_conflict(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket=bucket)
    assert client_error(err.value) in ((409, "BucketAlreadyOwnedByYou"), (409, "BucketAlreadyExists"))


def test_fs_bucket_is_unversioned(bs_fs):
    s3 = bs_fs.client()
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    try:
        resp = s3.get_bucket_versioning(Bucket=name)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert "Status" not in resp
    finally:
        empty_and_delete(s3, name)


def test_versioning_on_moto(bs_moto):
    s3 = bs_moto.client()
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    try:
        assert "Status" not in s3.get_bucket_versioning(Bucket=name)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"

        v1 = s3.put_object(Bucket=name, Key="k", Body=b"version one")["VersionId"]
        v2 = s3.put_object(Bucket=name, Key="k", Body=b"version two, longer")["VersionId"]
        assert v1 and v2 and v1 != v2

        assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"version two, longer"
        got1 = s3.get_object(Bucket=name, Key="k", VersionId=v1)
        assert got1["Body"].read() == b"version one" and got1["VersionId"] == v1
        head1 = s3.head_object(Bucket=name, Key="k", VersionId=v1)
        assert head1["ContentLength"] == len(b"version one") and head1["VersionId"] == v1
        assert s3.get_object(Bucket=name, Key="k", VersionId=v1, Range="bytes=8-")["Body"].read() == b"one"

        marker = s3.delete_object(Bucket=name, Key="k")
        assert marker["DeleteMarker"] is True and marker["VersionId"] not in (v1, v2)
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket=name, Key="k")
        assert client_error(err.value)[0] == 404
        assert s3.get_object(Bucket=name, Key="k", VersionId=v2)["Body"].read() == b"version two, longer"

        listing = s3.list_object_versions(Bucket=name)
        versions = {v["VersionId"]: v for v in listing.get("Versions", [])}
        assert set(versions) == {v1, v2}
        assert versions[v1]["Size"] == len(b"version one")
        markers = listing.get("DeleteMarkers", [])
        assert [m["VersionId"] for m in markers] == [marker["VersionId"]] and markers[0]["IsLatest"]

        # Removing the delete marker brings v2 back; deleting v1 by id removes just that version.
        s3.delete_object(Bucket=name, Key="k", VersionId=marker["VersionId"])
        assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"version two, longer"
        s3.delete_object(Bucket=name, Key="k", VersionId=v1)
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket=name, Key="k", VersionId=v1)
        assert client_error(err.value)[0] in (400, 404)
        assert [v["VersionId"] for v in s3.list_object_versions(Bucket=name).get("Versions", [])] == [v2]
    finally:
        empty_and_delete(s3, name)
