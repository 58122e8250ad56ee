"""Multipart uploads with boto3's low-level API: S3 semantics as a client sees them, on both instances.

One module-scoped upload per instance (`mp`) is built the awkward way (parts out of order and in parallel,
a part re-sent with different bytes, Complete with a gap) and then read every way a client can: whole,
ranges across part boundaries, `partNumber=N`, HEAD, LIST, copy. Part sizes are deliberately not
multiples of blobseal's 64 KiB segment, so any size bookkeeping that assumes whole segments shows.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError

from atrest import fs_snapshot, moto_keys, stored_files
from s3util import (MIB, MIN_PART, abort_all_uploads, client_error, complete, empty_and_delete, multipart_put,
                    random_bytes, sha256_hex, stored_size, unique_bucket, upload_parts)

# Parts 1..4 as first sent; part 3 is sent again with other bytes, part 2 is left out of Complete.
SIZES = {1: MIN_PART + 12_345, 2: MIN_PART + 7, 3: MIN_PART + 1, 4: 777_777}
META = {"colour": "teal", "owner": "multipart-suite"}
CTYPE = "application/x-blobseal-test"


@dataclass
class Uploaded:
    """A completed multipart object: where it is and what it must read back as."""
    client: object
    bucket: str
    key: str
    parts: list[bytes]  # the parts Complete named, in order (plaintext)
    etag: str  # Complete's ETag

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


@pytest.fixture(scope="module", params=["fs", "moto"])
def mp(request) -> Uploaded:
    inst = request.getfixturevalue("bs_fs" if request.param == "fs" else "bs_moto")
    s3 = inst.client()
    bucket, key = unique_bucket(), "mp/object.bin"
    s3.create_bucket(Bucket=bucket)
    try:
        first = {n: random_bytes(size) for n, size in SIZES.items()}
        uid = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=CTYPE, Metadata=META)["UploadId"]
        # Out of order and four at a time.
        etags = upload_parts(s3, bucket, key, uid, {n: first[n] for n in (4, 2, 3, 1)})
        assert len(set(etags.values())) == 4, etags
        second3 = random_bytes(SIZES[3])
        etags[3] = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=3, Body=second3)["ETag"]
        del etags[2]
        done = complete(s3, bucket, key, uid, etags)
        yield Uploaded(s3, bucket, key, [first[1], second3, first[4]], done["ETag"])
    finally:
        abort_all_uploads(s3, bucket)
        empty_and_delete(s3, bucket)


def _get(mp: Uploaded, **kw) -> tuple[dict, bytes]:
    resp = mp.client.get_object(Bucket=mp.bucket, Key=mp.key, **kw)
    return resp, resp["Body"].read()


def test_reads_back_exact_bytes_and_sizes(mp):
    resp, body = _get(mp)
    assert len(body) == len(mp.data)
    assert sha256_hex(body) == sha256_hex(mp.data), "later bytes of part 3 must win, part 2 must be absent"
    assert resp["ContentLength"] == len(mp.data)
    head = mp.client.head_object(Bucket=mp.bucket, Key=mp.key)
    assert head["ContentLength"] == len(mp.data)
    listed = mp.client.list_objects_v2(Bucket=mp.bucket, Prefix="mp/")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(mp.key, len(mp.data))]
    # The ETag is opaque (FORMAT.md §11: its suffix counts the stored object's parts, not the client's,
    # and no tool can recompute it from plaintext anyway), but the same everywhere and never a bare MD5.
    assert resp["ETag"] == head["ETag"] == listed[0]["ETag"] == mp.etag
    assert re.fullmatch(r'"[0-9a-f]{32}-\d+"', mp.etag), mp.etag


def test_metadata_and_content_type_from_create(mp):
    head = mp.client.head_object(Bucket=mp.bucket, Key=mp.key)
    resp, _ = _get(mp)
    for got in (head, resp):
        assert got["ContentType"] == CTYPE
        assert got["Metadata"] == META


def test_ranges_across_part_boundaries(mp):
    data, p1, p2 = mp.data, len(mp.parts[0]), len(mp.parts[1])
    total = len(data)
    cases = [(f"bytes={p1 - 1}-{p1}", p1 - 1, p1),  # last byte of part 1, first of part 2
             (f"bytes={p1 - 70_000}-{p1 + p2 + 70_000}", p1 - 70_000, p1 + p2 + 70_000),  # spans all three
             (f"bytes={p1 + p2 - 5}-", p1 + p2 - 5, total - 1),  # open range from the end of part 2
             ("bytes=-100", total - 100, total - 1),  # suffix
             (f"bytes={total - 1}-{total + 50}", total - 1, total - 1)]  # end clipped to the size
    for header, first, last in cases:
        resp, body = _get(mp, Range=header)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert body == data[first:last + 1], header
        assert resp["ContentRange"] == f"bytes {first}-{last}/{total}", header
        assert resp["ContentLength"] == last - first + 1, header


def test_part_number_get_and_head(mp):
    total, start = len(mp.data), 0
    for n, part in enumerate(mp.parts, start=1):
        crange = f"bytes {start}-{start + len(part) - 1}/{total}"
        resp, body = _get(mp, PartNumber=n)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206, n
        assert body == part, f"partNumber={n} returned other bytes"
        assert resp["ContentLength"] == len(part) and resp["ContentRange"] == crange, n
        assert resp["PartsCount"] == len(mp.parts), n
        head = mp.client.head_object(Bucket=mp.bucket, Key=mp.key, PartNumber=n)
        assert head["ResponseMetadata"]["HTTPStatusCode"] in (200, 206), n
        assert head["ContentLength"] == len(part) and head["ContentRange"] == crange, n
        assert head["PartsCount"] == len(mp.parts), n
        start += len(part)
    with pytest.raises(ClientError) as err:
        _get(mp, PartNumber=len(mp.parts) + 1)
    # What S3 answers in practice and s3-tests expects (AWS's reference says 416 InvalidPartNumber).
    assert client_error(err.value) == (400, "InvalidPart")


def test_copy_object_of_multipart_object(mp):
    mp.client.copy_object(Bucket=mp.bucket, Key="copies/whole", CopySource={"Bucket": mp.bucket, "Key": mp.key})
    got = mp.client.get_object(Bucket=mp.bucket, Key="copies/whole")
    assert sha256_hex(got["Body"].read()) == sha256_hex(mp.data)
    assert got["ContentLength"] == len(mp.data) and got["Metadata"] == META and got["ContentType"] == CTYPE
    listed = {o["Key"]: o["Size"] for o in mp.client.list_objects_v2(Bucket=mp.bucket, Prefix="copies/")["Contents"]}
    assert listed == {"copies/whole": len(mp.data)}


def test_upload_part_copy(mp):
    s3, bucket = mp.client, mp.bucket
    single = random_bytes(MIN_PART + 300_001)
    s3.put_object(Bucket=bucket, Key="src/single", Body=single)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="upc/out")["UploadId"]
    p1 = len(mp.parts[0])
    sources = [  # (source key, range or None, expected bytes)
        ("src/single", None, single),
        ("src/single", f"bytes=100-{100 + MIN_PART + 9}", single[100:100 + MIN_PART + 10]),
        (mp.key, None, mp.data),
        (mp.key, f"bytes={p1 - 1000}-{p1 + 1000}", mp.data[p1 - 1000:p1 + 1001]),  # across its part boundary
    ]
    etags = {}
    for n, (src, rng, _) in enumerate(sources, start=1):
        extra = {"CopySourceRange": rng} if rng else {}
        resp = s3.upload_part_copy(Bucket=bucket, Key="upc/out", UploadId=uid, PartNumber=n,
                                   CopySource={"Bucket": bucket, "Key": src}, **extra)
        etags[n] = resp["CopyPartResult"]["ETag"]
    sizes = {p["PartNumber"]: p["Size"] for p in s3.list_parts(Bucket=bucket, Key="upc/out", UploadId=uid)["Parts"]}
    assert sizes == {n: len(exp) for n, (_, _, exp) in enumerate(sources, start=1)}
    complete(s3, bucket, "upc/out", uid, etags)
    expected = b"".join(exp for _, _, exp in sources)
    got = s3.get_object(Bucket=bucket, Key="upc/out")["Body"].read()
    assert len(got) == len(expected) and sha256_hex(got) == sha256_hex(expected)
    assert s3.head_object(Bucket=bucket, Key="upc/out")["ContentLength"] == len(expected)


@pytest.fixture
def clean(s3, bucket):
    """`bucket`, with every upload still open at the end aborted."""
    yield bucket
    abort_all_uploads(s3, bucket)


def _code(call, **kw) -> tuple[int, str]:
    with pytest.raises(ClientError) as err:
        call(**kw)
    return client_error(err.value)


def test_complete_errors(s3, clean):
    bucket, key = clean, "errors/obj"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    small, big, tail = random_bytes(MIB), random_bytes(MIN_PART), random_bytes(10)
    etags = upload_parts(s3, bucket, key, uid, {1: small, 2: big, 3: tail, 4: big})
    # A 1 MiB part that is not the last one is accepted on upload, refused at Complete.
    assert _code(complete, client=s3, bucket=bucket, key=key, upload_id=uid,
                 etags={1: etags[1], 2: etags[2]}) == (400, "EntityTooSmall")
    wrong = {**etags, 2: '"0123456789abcdef0123456789abcdef"'}
    assert _code(complete, client=s3, bucket=bucket, key=key, upload_id=uid,
                 etags={2: wrong[2], 3: etags[3]}) == (400, "InvalidPart")
    unsent = {2: etags[2], 5: etags[3]}
    assert _code(complete, client=s3, bucket=bucket, key=key, upload_id=uid, etags=unsent) == (400, "InvalidPart")
    # Descending, with only full-size parts (so that the order is the only thing wrong).
    backwards = {"Parts": [{"PartNumber": 4, "ETag": etags[4]}, {"PartNumber": 2, "ETag": etags[2]}]}
    assert _code(s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=uid,
                 MultipartUpload=backwards) == (400, "InvalidPartOrder")
    # None of the failures consumed the upload, and nothing was written under the key.
    assert _code(s3.head_object, Bucket=bucket, Key=key)[0] == 404
    complete(s3, bucket, key, uid, {2: etags[2], 3: etags[3]})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == big + tail
    # After Complete the upload is gone.
    assert _code(s3.upload_part, Bucket=bucket, Key=key, UploadId=uid, PartNumber=5,
                 Body=b"late") == (404, "NoSuchUpload")
    assert _code(s3.list_parts, Bucket=bucket, Key=key, UploadId=uid) == (404, "NoSuchUpload")


def test_abort_then_no_such_upload(s3, clean):
    bucket, key = clean, "errors/aborted"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = upload_parts(s3, bucket, key, uid, {1: random_bytes(1000)})
    assert s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert _code(s3.upload_part, Bucket=bucket, Key=key, UploadId=uid, PartNumber=2,
                 Body=b"late") == (404, "NoSuchUpload")
    assert _code(complete, client=s3, bucket=bucket, key=key, upload_id=uid, etags=etags) == (404, "NoSuchUpload")
    assert _code(s3.list_parts, Bucket=bucket, Key=key, UploadId=uid) == (404, "NoSuchUpload")
    assert _code(s3.abort_multipart_upload, Bucket=bucket, Key=key, UploadId=uid) == (404, "NoSuchUpload")
    assert _code(s3.head_object, Bucket=bucket, Key=key)[0] == 404
    # A made-up upload id is refused the same way, not with a 500.
    assert _code(s3.upload_part, Bucket=bucket, Key=key, UploadId="not-an-upload-id", PartNumber=1,
                 Body=b"x")[0] in (400, 404)


def test_list_parts_and_uploads(s3, clean):
    bucket = clean
    key, other = "lp/one", "lp/two"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key=other)["UploadId"]
    sent = {1: random_bytes(MIN_PART + 3), 2: random_bytes(1234), 3: random_bytes(65_537)}
    etags = upload_parts(s3, bucket, key, uid, sent)

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == \
        [(n, len(sent[n]), etags[n]) for n in (1, 2, 3)], "ListParts must show plaintext sizes and UploadPart's ETags"
    page = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2] and page["IsTruncated"]
    rest = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid, PartNumberMarker=int(page["NextPartNumberMarker"]))
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and not rest["IsTruncated"]

    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert sorted((u["Key"], u["UploadId"]) for u in uploads) == sorted([(key, uid), (other, uid2)])
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, Prefix="lp/t")["Uploads"]] == [other]
    # The UploadId from the listing works for UploadPart, Complete and Abort.
    listed_ids = {u["Key"]: u["UploadId"] for u in uploads}
    etags[4] = s3.upload_part(Bucket=bucket, Key=key, UploadId=listed_ids[key], PartNumber=4, Body=b"tail")["ETag"]
    # No upload in progress shows up as an object, under its key or under any internal name.
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    s3.abort_multipart_upload(Bucket=bucket, Key=other, UploadId=listed_ids[other])
    # Parts 2 and 3 are under 5 MiB, so they may only be left out (a part that is not last must be 5 MiB).
    complete(s3, bucket, key, listed_ids[key], {1: etags[1], 4: etags[4]})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == sent[1] + b"tail"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_overwrite_and_delete(s3, clean):
    bucket = clean
    parts = [random_bytes(MIN_PART), random_bytes(4321)]
    s3.put_object(Bucket=bucket, Key="ow", Body=b"single put first")
    multipart_put(s3, bucket, "ow", parts)
    assert s3.get_object(Bucket=bucket, Key="ow")["Body"].read() == b"".join(parts)
    s3.put_object(Bucket=bucket, Key="ow", Body=b"single put again")
    assert s3.get_object(Bucket=bucket, Key="ow")["Body"].read() == b"single put again"
    assert s3.head_object(Bucket=bucket, Key="ow")["ContentLength"] == len(b"single put again")
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["Size"] == len(b"single put again")

    multipart_put(s3, bucket, "gone", parts)
    s3.delete_object(Bucket=bucket, Key="gone")
    assert _code(s3.get_object, Bucket=bucket, Key="gone") == (404, "NoSuchKey")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["ow"]


def test_if_none_match_on_complete(s3, clean):
    bucket, key = clean, "inm"
    s3.put_object(Bucket=bucket, Key=key, Body=b"already here")
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = upload_parts(s3, bucket, key, uid, {1: random_bytes(5000)})
    assert _code(complete, client=s3, bucket=bucket, key=key, upload_id=uid, etags=etags,
                 IfNoneMatch="*") == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"already here"
    # On a key that does not exist the same condition passes.
    fresh = s3.create_multipart_upload(Bucket=bucket, Key="inm-new")["UploadId"]
    body = random_bytes(5000)
    fresh_etags = upload_parts(s3, bucket, "inm-new", fresh, {1: body})
    complete(s3, bucket, "inm-new", fresh, fresh_etags, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="inm-new")["Body"].read() == body


def _marked_parts(marker: bytes, sizes: list[int]) -> list[bytes]:
    """Random parts with `marker` written at the start, the middle and the end of each."""
    out = []
    for size in sizes:
        b = bytearray(random_bytes(size))
        for off in (0, size // 2, size - len(marker)):
            b[off:off + len(marker)] = marker
        out.append(bytes(b))
    return out


def _leak(blob: bytes, marker: bytes, parts: list[bytes]) -> str | None:
    """What plaintext `blob` holds: the marker, or a 32-byte sample of a part; None when neither."""
    if marker in blob:
        return f"marker at {blob.find(marker)}"
    for i, p in enumerate(parts):
        for off in (1000, len(p) // 3, len(p) - 1000):
            if p[off:off + 32] in blob:
                return f"part {i + 1} bytes {off}..{off + 32}"
    return None


def _no_internal_keys_listed(s3, bucket: str) -> None:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not [k for k in keys if k.startswith(".blobseal")], keys
    assert s3.list_objects_v2(Bucket=bucket, Prefix=".blobseal/").get("KeyCount") == 0


def _at_rest_run(s3, bucket: str, check_stored) -> list[bytes]:
    """One completed and one aborted upload of marked parts; `check_stored(stage)` runs mid-way and at the end."""
    marker = b"BLOBSEAL-PLAINTEXT-MARKER-" + uuid.uuid4().hex.encode()
    parts = _marked_parts(marker, [MIN_PART + 99, 70_000])
    uid = s3.create_multipart_upload(Bucket=bucket, Key="atrest/done")["UploadId"]
    etags = upload_parts(s3, bucket, "atrest/done", uid, dict(enumerate(parts, start=1)))
    aborted = s3.create_multipart_upload(Bucket=bucket, Key="atrest/aborted")["UploadId"]
    upload_parts(s3, bucket, "atrest/aborted", aborted, {1: parts[0]})
    _no_internal_keys_listed(s3, bucket)
    check_stored("parts uploaded", marker, parts)
    complete(s3, bucket, "atrest/done", uid, etags)
    s3.abort_multipart_upload(Bucket=bucket, Key="atrest/aborted", UploadId=aborted)
    assert s3.get_object(Bucket=bucket, Key="atrest/done")["Body"].read() == b"".join(parts)
    _no_internal_keys_listed(s3, bucket)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["atrest/done"]
    check_stored("completed and aborted", marker, parts)
    return parts


def test_fs_multipart_at_rest(bs_fs):
    s3, bucket = bs_fs.client(), unique_bucket()
    s3.create_bucket(Bucket=bucket)
    before = set(fs_snapshot(bs_fs.data_dir))

    def check(stage, marker, parts):
        files = []
        for path, blob in stored_files(bs_fs.data_dir):
            files.append(path)
            found = _leak(blob, marker, parts)
            assert found is None, f"{stage}: plaintext ({found}) in {path}"
        if stage != "parts uploaded":
            # Parts, temp objects and upload state are all gone: only the final object is new in the bucket (the
            # tenant's key store and audit trail are other buckets).
            new = [p for p in files if p not in before and bucket in p.parts]
            assert len(new) == 1 and new[0].stat().st_size >= sum(stored_size(len(p)) for p in parts), new

    try:
        _at_rest_run(s3, bucket, check)
    finally:
        abort_all_uploads(s3, bucket)
        empty_and_delete(s3, bucket)


def test_moto_multipart_at_rest(bs_moto, moto_raw):
    s3, bucket = bs_moto.client(), unique_bucket()
    s3.create_bucket(Bucket=bucket)
    before = moto_keys(moto_raw)

    def check(stage, marker, parts):
        for b in moto_raw.list_buckets()["Buckets"]:
            for page in moto_raw.get_paginator("list_object_versions").paginate(Bucket=b["Name"]):
                for v in page.get("Versions", []):
                    got = moto_raw.get_object(Bucket=b["Name"], Key=v["Key"], VersionId=v["VersionId"])
                    found = _leak(got["Body"].read(), marker, parts)
                    assert found is None, f"{stage}: plaintext ({found}) in moto {b['Name']}/{v['Key']}"
        if stage != "parts uploaded":
            # Only the final object is new in the bucket (the key store, made on a first write, is another).
            new = {(b, k) for b, k in moto_keys(moto_raw) - before if b.endswith(bucket)}
            assert len(new) == 1 and ".blobseal/" not in next(iter(new))[1], new
            raw_bucket = next(iter(new))[0]
            assert moto_raw.list_multipart_uploads(Bucket=raw_bucket).get("Uploads", []) == []

    try:
        _at_rest_run(s3, bucket, check)
    finally:
        abort_all_uploads(s3, bucket)
        empty_and_delete(s3, bucket)


def test_versioned_bucket_keeps_one_version_per_completion(bs_moto, moto_raw):
    """On a versioned bucket a completion adds exactly one version under the client's key, the
    hidden upload object leaves no version (nor delete marker) behind, and older versions stay readable."""
    s3, bucket = bs_moto.client(), unique_bucket()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    try:
        first = b"v1" * (MIN_PART // 2) + b"tail-1"
        second = b"v2" * (MIN_PART // 2) + b"tail-2"
        v1 = multipart_put(s3, bucket, "doc", [first[:MIN_PART], first[MIN_PART:]])
        v2 = multipart_put(s3, bucket, "doc", [second[:MIN_PART], second[MIN_PART:]])
        versions = s3.list_object_versions(Bucket=bucket)
        listed = [(v["Key"], v["VersionId"]) for v in versions.get("Versions", [])]
        assert sorted(listed) == sorted([("doc", v1["VersionId"]), ("doc", v2["VersionId"])]), listed
        assert versions.get("DeleteMarkers", []) == []
        old = s3.get_object(Bucket=bucket, Key="doc", VersionId=v1["VersionId"])["Body"].read()
        assert old == first
        assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == second
        # Nothing of the hidden upload survives in the backend, not even as an old version.
        raw = [b["Name"] for b in moto_raw.list_buckets()["Buckets"] if b["Name"].endswith(bucket)]
        for name in raw:
            page = moto_raw.list_object_versions(Bucket=name)
            keys = [v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            assert all(not k.startswith(".blobseal/") for k in keys), keys
    finally:
        abort_all_uploads(s3, bucket)
        empty_and_delete(s3, bucket)
