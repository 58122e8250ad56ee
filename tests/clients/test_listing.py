"""Listing (v1, v2, versions) and deletion, with sizes and ETags as the client saw them on PUT."""

import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from s3util import client_error, random_bytes

LAYOUT = {"a/1": 10, "a/2": 0, "a/b/3": 70000, "a/b/4": 1, "c": 65536, "d/e/f": 5}


@pytest.fixture
def filled(s3, bucket):
    """`bucket` holding LAYOUT; returns {key: (bytes, PUT ETag)}."""
    out = {}
    for key, size in LAYOUT.items():
        data = random_bytes(size)
        out[key] = (data, s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"])
    return out


def test_list_v2_sizes_and_etags(s3, bucket, filled):
    page = s3.list_objects_v2(Bucket=bucket)
    assert page["KeyCount"] == len(LAYOUT)
    assert not page["IsTruncated"]
    assert [o["Key"] for o in page["Contents"]] == sorted(LAYOUT)
    for o in page["Contents"]:
        data, etag = filled[o["Key"]]
        assert o["Size"] == len(data), o
        assert o["ETag"] == etag, o
        assert s3.head_object(Bucket=bucket, Key=o["Key"])["ETag"] == etag


def test_list_v2_prefix_and_delimiter(s3, bucket, filled):
    page = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in page.get("Contents", [])] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in page.get("CommonPrefixes", [])] == ["a/b/"]

    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top.get("Contents", [])] == ["c"]
    assert [p["Prefix"] for p in top.get("CommonPrefixes", [])] == ["a/", "d/"]

    none = s3.list_objects_v2(Bucket=bucket, Prefix="zzz")
    assert none["KeyCount"] == 0 and "Contents" not in none


def test_list_v2_paging_with_continuation(s3, bucket, filled):
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"Bucket": bucket, "MaxKeys": 2}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        pages += 1
        assert len(page.get("Contents", [])) <= 2
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
        assert pages < 10, "paging does not end"
    assert seen == sorted(LAYOUT)
    assert pages == 3

    after = s3.list_objects_v2(Bucket=bucket, StartAfter="a/b/4")
    assert [o["Key"] for o in after["Contents"]] == ["c", "d/e/f"]


def test_empty_delimiter_means_none(instance, bucket, filled):
    # rclone 1.60 lists with `delimiter=&prefix=` (empty values): that is a flat listing, not a delimiter of "".
    resp = instance.signed("GET", f"/{bucket}", query="delimiter=&max-keys=1000&prefix=")
    assert resp.status == 200, resp.body[:500]
    root = ET.fromstring(resp.body)
    keys = [el.text for el in root.iter() if el.tag.endswith("}Key") or el.tag == "Key"]
    prefixes = [el for el in root.iter() if el.tag.endswith("CommonPrefixes")]
    assert keys == sorted(LAYOUT) and not prefixes, resp.body[:1000]
    page = instance.client().list_objects_v2(Bucket=bucket, Delimiter="", Prefix="")
    assert [o["Key"] for o in page["Contents"]] == sorted(LAYOUT) and not page.get("CommonPrefixes")


def test_list_v1_with_marker(s3, bucket, filled):
    page = s3.list_objects(Bucket=bucket, Marker="a/2")
    assert [o["Key"] for o in page["Contents"]] == ["a/b/3", "a/b/4", "c", "d/e/f"]
    assert page["Contents"][0]["Size"] == 70000
    first = s3.list_objects(Bucket=bucket, MaxKeys=3)
    assert first["IsTruncated"]
    keys = [o["Key"] for o in first["Contents"]]
    assert keys == ["a/1", "a/2", "a/b/3"]
    marker = first.get("NextMarker", keys[-1])
    rest = s3.list_objects(Bucket=bucket, Marker=marker)
    assert [o["Key"] for o in rest["Contents"]] == ["a/b/4", "c", "d/e/f"]


def test_list_object_versions_lists_each_object(s3, bucket, filled):
    page = s3.list_object_versions(Bucket=bucket)
    versions = page.get("Versions", [])
    assert sorted(v["Key"] for v in versions) == sorted(LAYOUT)
    for v in versions:
        assert v["Size"] == len(filled[v["Key"]][0]), v
        assert v["IsLatest"] is True


def test_delete_object_and_delete_objects(s3, bucket, filled):
    s3.delete_object(Bucket=bucket, Key="c")
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="c")
    assert client_error(err.value)[0] == 404

    # Deleting a key that does not exist succeeds (S3 answers 204 either way).
    s3.delete_object(Bucket=bucket, Key="never-existed")

    res = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a/1"}, {"Key": "a/b/3"}, {"Key": "nope"}]})
    assert sorted(d["Key"] for d in res.get("Deleted", [])) == ["a/1", "a/b/3", "nope"]
    assert not res.get("Errors")
    remaining = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert remaining == ["a/2", "a/b/4", "d/e/f"]

    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a/2"}], "Quiet": True})
    assert not quiet.get("Deleted") and not quiet.get("Errors")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/b/4", "d/e/f"]
