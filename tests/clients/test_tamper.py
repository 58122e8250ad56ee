"""Tampering with stored objects: the client must get an error, never wrong (or silently shortened) bytes."""

import base64
from dataclasses import dataclass
from typing import Callable

import pytest
from botocore.exceptions import ClientError

from atrest import (FsObject, RawObject, assert_raw_get_never_complete, assert_unreadable, fs_locate_new,
                    fs_put_and_locate, moto_locate_new, moto_put_and_locate, raw_get_received)
from instances import MOTO_KEY, MOTO_SECRET
from s3util import (MIN_PART, SEG, TAG, abort_all_uploads, client_error, empty_and_delete, multipart_put, random_bytes,
                    s3_client,
                    sha256_hex, stored_size, unique_bucket)

BIG = 1024 * 1024 + 1000  # > 1 MiB: 17 segments, the last one short


@pytest.fixture
def fs_bucket(bs_fs):
    s3 = bs_fs.client()
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    yield s3, name
    empty_and_delete(s3, name)


@pytest.fixture
def moto_bucket(bs_moto):
    s3 = bs_moto.client()
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    yield s3, name
    empty_and_delete(s3, name)


def _flip(blob: bytes, offset: int) -> bytes:
    out = bytearray(blob)
    out[offset] ^= 0x01
    return bytes(out)


# --- filesystem backend: edit the files under the data dir ---------------------------------------------------------

@pytest.mark.parametrize("where", ["last byte", "first body byte", "middle"])
def test_fs_bit_flip(bs_fs, fs_bucket, where):
    s3, bucket = fs_bucket
    data = random_bytes(200_000)
    path = fs_put_and_locate(s3, bucket, "flip", data, bs_fs.data_dir)
    blob = path.read_bytes()
    body_start = len(blob) - stored_size(len(data))  # the ciphertext body is at the end of the file
    offset = {"last byte": len(blob) - 1, "first body byte": body_start, "middle": body_start + 100_000}[where]
    path.write_bytes(_flip(blob, offset))
    assert_unreadable(s3, bucket, "flip")


@pytest.mark.parametrize("change", ["truncate 16", "truncate 1", "append 16", "drop last segment"])
def test_fs_length_changes(bs_fs, fs_bucket, change):
    s3, bucket = fs_bucket
    data = random_bytes(3 * SEG + 500)
    path = fs_put_and_locate(s3, bucket, "len", data, bs_fs.data_dir)
    blob = path.read_bytes()
    new = {"truncate 16": blob[:-16], "truncate 1": blob[:-1], "append 16": blob + bytes(16),
           "drop last segment": blob[:-(500 + TAG)]}[change]
    path.write_bytes(new)
    assert_unreadable(s3, bucket, "len")


def test_fs_swapped_files(bs_fs, fs_bucket):
    s3, bucket = fs_bucket
    a, b = random_bytes(5000), random_bytes(5000)
    path_a = fs_put_and_locate(s3, bucket, "a", a, bs_fs.data_dir)
    path_b = fs_put_and_locate(s3, bucket, "b", b, bs_fs.data_dir)
    blob_a, blob_b = path_a.read_bytes(), path_b.read_bytes()
    path_a.write_bytes(blob_b)
    path_b.write_bytes(blob_a)
    assert_unreadable(s3, bucket, "a")
    assert_unreadable(s3, bucket, "b")


def test_fs_big_object_tampered_in_last_segment(bs_fs, fs_bucket):
    s3, bucket = fs_bucket
    data = random_bytes(BIG)
    path = fs_put_and_locate(s3, bucket, "big", data, bs_fs.data_dir)
    blob = path.read_bytes()
    path.write_bytes(_flip(blob, len(blob) - 20))
    assert_unreadable(s3, bucket, "big")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"}, ExpiresIn=300)
    assert_raw_get_never_complete(url, data)
    # A range inside the untouched segments may be served, but only with the right bytes.
    try:
        got = s3.get_object(Bucket=bucket, Key="big", Range="bytes=0-99")["Body"].read()
    except Exception:  # an error is acceptable too
        return
    assert got == data[:100]


# --- S3 backend: edit raw objects on moto, keeping their metadata --------------------------------------------------

def test_moto_bit_flip(bs_moto, moto_bucket, moto_raw):
    s3, bucket = moto_bucket
    raw = moto_put_and_locate(s3, moto_raw, bucket, "flip", random_bytes(100_000))
    raw.write(moto_raw, body=_flip(raw.body, len(raw.body) // 2))
    assert_unreadable(s3, bucket, "flip")


def test_moto_drop_last_segment(bs_moto, moto_bucket, moto_raw):
    s3, bucket = moto_bucket
    data = random_bytes(3 * SEG + 5)
    raw = moto_put_and_locate(s3, moto_raw, bucket, "drop", data)
    assert len(raw.body) == stored_size(len(data))
    raw.write(moto_raw, body=raw.body[:-(5 + TAG)])
    assert_unreadable(s3, bucket, "drop")


def test_moto_drop_last_full_segment(bs_moto, moto_bucket, moto_raw):
    # With a plaintext of exactly two segments, dropping one leaves a well-formed looking one-segment object.
    s3, bucket = moto_bucket
    data = random_bytes(2 * SEG)
    raw = moto_put_and_locate(s3, moto_raw, bucket, "drop2", data)
    raw.write(moto_raw, body=raw.body[:-(SEG + TAG)])
    assert_unreadable(s3, bucket, "drop2")


def test_moto_object_copied_to_other_key(bs_moto, moto_bucket, moto_raw):
    s3, bucket = moto_bucket
    a, b = random_bytes(4000), random_bytes(4000)
    raw_a = moto_put_and_locate(s3, moto_raw, bucket, "a", a)
    raw_b = moto_put_and_locate(s3, moto_raw, bucket, "b", b)
    raw_a.write(moto_raw, key=raw_b.key)  # A's bytes and metadata under B's name
    assert_unreadable(s3, bucket, "b")
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == a


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_moto_envelope_metadata_edited(bs_moto, moto_bucket, moto_raw, where):
    s3, bucket = moto_bucket
    raw = moto_put_and_locate(s3, moto_raw, bucket, "env", random_bytes(70_000))
    envelope = base64.b64decode(raw.metadata["blobseal-envelope"])
    offset = {"first": 0, "middle": len(envelope) // 2, "last": len(envelope) - 1}[where]
    meta = dict(raw.metadata)
    meta["blobseal-envelope"] = base64.b64encode(_flip(envelope, offset)).decode()
    raw.write(moto_raw, metadata=meta)
    assert_unreadable(s3, bucket, "env")


def test_moto_envelope_metadata_removed(bs_moto, moto_bucket, moto_raw):
    s3, bucket = moto_bucket
    raw = moto_put_and_locate(s3, moto_raw, bucket, "noenv", random_bytes(1000))
    raw.write(moto_raw, metadata={k: v for k, v in raw.metadata.items() if k != "blobseal-envelope"})
    assert_unreadable(s3, bucket, "noenv")


def test_moto_big_object_tampered_in_last_segment(bs_moto, moto_bucket, moto_raw):
    s3, bucket = moto_bucket
    data = random_bytes(BIG)
    raw = moto_put_and_locate(s3, moto_raw, bucket, "big", data)
    raw.write(moto_raw, body=_flip(raw.body, len(raw.body) - 20))
    assert_unreadable(s3, bucket, "big")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"}, ExpiresIn=300)
    assert_raw_get_never_complete(url, data)


def test_moto_plaintext_planted_behind_blobseal(bs_moto, moto_bucket, moto_raw):
    # An object written to the backend without blobseal (no envelope) is not served as if it were plaintext.
    s3, bucket = moto_bucket
    raw = moto_put_and_locate(s3, moto_raw, bucket, "planted", random_bytes(10))
    RawObject(raw.bucket, raw.key, b"I am not ciphertext", {}, "text/plain").write(moto_raw)
    assert_unreadable(s3, bucket, "planted")


def test_hidden_objects_cannot_be_copied_out(bs_moto, moto_bucket, moto_raw):
    # blobseal's own objects (under `.blobseal/`) are absent to clients: a copy from one answers 404 whether
    # it exists on the backend or not, and is not an internal error (it answered 500 when it existed).
    s3, bucket = moto_bucket
    real = moto_put_and_locate(s3, moto_raw, bucket, "real", b"a sealed object")
    hidden = ".blobseal/mpu/real/planted"
    RawObject(real.bucket, hidden, real.body, real.metadata, real.content_type).write(moto_raw)
    log_before = len(bs_moto.server.log())
    for source in (hidden, ".blobseal/mpu/real/absent"):
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=bucket, Key="stolen", CopySource={"Bucket": bucket, "Key": source})
        assert client_error(e.value)[:2] == (404, "NoSuchKey"), (source, client_error(e.value))
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(Bucket=bucket, Key="stolen", UploadId="x", PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": source})
        assert client_error(e.value)[0] == 404, (source, client_error(e.value))
    assert " ERROR " not in bs_moto.server.log()[log_before:]
    assert "stolen" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


# --- multipart objects (FORMAT.md §13): parts moved, dropped, mixed between uploads; the layout edited ----------

PART = MIN_PART  # 5 MiB, a multiple of 64 KiB: on the segment grid, so the object is stored unpadded
TAIL = 1000  # a short last part, so the layout has two runs
PART_STORED = stored_size(PART)
LAYOUT = f"1:1+3x{PART},4+1x{TAIL}"


@dataclass
class StoredMp:
    """A completed multipart object as the backend holds it, and a way to overwrite it behind blobseal."""
    s3: object
    bucket: str
    key: str
    parts: list[bytes]  # plaintext parts 1..4
    body: bytes  # stored ciphertext
    metadata: dict[str, str]  # stored user metadata (blobseal-envelope, blobseal-layout)
    other_body: bytes  # stored ciphertext of a second upload of the same parts under another key
    write: Callable[..., None]  # write(body=None, metadata=None): replace the stored object, keeping the rest

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)

    def stored_part(self, n: int, body: bytes | None = None) -> bytes:
        """Stored bytes of part `n` (1-based) of `body` (default: this object's)."""
        blob = self.body if body is None else body
        return blob[(n - 1) * PART_STORED:n * PART_STORED] if n <= 3 else blob[3 * PART_STORED:]

    def url(self) -> str:
        return self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self.key},
                                              ExpiresIn=300)


@pytest.fixture(scope="module", params=["fs", "moto"])
def stored_mp(request):
    """Per instance: one 3 x 5 MiB + 1000 B multipart object `a` and the same parts uploaded again as `b`."""
    inst = request.getfixturevalue("bs_fs" if request.param == "fs" else "bs_moto")
    s3 = inst.client()
    bucket = unique_bucket()
    s3.create_bucket(Bucket=bucket)
    parts = [random_bytes(PART) for _ in range(3)] + [random_bytes(TAIL)]
    try:
        if inst.name == "fs":
            def locate(key):
                return FsObject.read(fs_locate_new(inst.data_dir, lambda: multipart_put(s3, bucket, key, parts)))
            a, b = locate("a"), locate("b")
            write = a.write
        else:
            raw = s3_client(inst.moto_endpoint, MOTO_KEY, MOTO_SECRET)  # moto_raw is per test, this fixture is not

            def locate(key):
                return moto_locate_new(raw, lambda: multipart_put(s3, bucket, key, parts))
            a, b = locate("a"), locate("b")

            def write(body=None, metadata=None):
                a.write(raw, body=body, metadata=metadata)
        yield StoredMp(s3, bucket, "a", parts, a.body, dict(a.metadata), b.body, write)
    finally:
        abort_all_uploads(s3, bucket)
        empty_and_delete(s3, bucket)


def _range_in_part(n: int, offset: int = 1000, length: int = 100) -> str:
    """A Range header for `length` plaintext bytes starting `offset` bytes into part `n` (1-based)."""
    start = (n - 1) * PART + offset
    return f"bytes={start}-{start + length - 1}"


def _assert_refused(mp: StoredMp, *affected_parts: int) -> None:
    """The whole object, and a range inside each affected part, are never served (boto3 and a raw GET)."""
    assert_unreadable(mp.s3, mp.bucket, mp.key)
    assert_raw_get_never_complete(mp.url(), mp.data)
    for n in affected_parts:
        assert_unreadable(mp.s3, mp.bucket, mp.key, Range=_range_in_part(n))


def test_mp_stored_as_documented_and_control_reads_back(stored_mp):
    # The control for every test below: the stored object, rewritten by the same means as the tampered ones,
    # still reads back exactly, whole and by ranges; so a refusal below is caused by the edit and nothing else.
    mp = stored_mp
    assert mp.metadata["blobseal-layout"] == LAYOUT
    assert len(mp.body) == 3 * PART_STORED + stored_size(TAIL) == stored_size(len(mp.data))
    assert mp.stored_part(2) != mp.stored_part(2, mp.other_body), "another upload must use another key"
    mp.write(body=mp.body, metadata=dict(mp.metadata))
    got = mp.s3.get_object(Bucket=mp.bucket, Key=mp.key)["Body"].read()
    assert sha256_hex(got) == sha256_hex(mp.data)
    for n in (1, 2, 3):
        want = mp.parts[n - 1][1000:1100]
        assert mp.s3.get_object(Bucket=mp.bucket, Key=mp.key, Range=_range_in_part(n))["Body"].read() == want
    tail = mp.s3.get_object(Bucket=mp.bucket, Key=mp.key, Range=f"bytes=-{TAIL}")["Body"].read()
    assert tail == mp.parts[3]


def test_mp_parts_reordered(stored_mp):
    mp = stored_mp
    p = mp.stored_part
    mp.write(body=p(2) + p(1) + p(3) + p(4))
    _assert_refused(mp, 1, 2)


def test_mp_part_dropped(stored_mp):
    mp = stored_mp
    p = mp.stored_part
    mp.write(body=p(1) + p(3) + p(4))
    _assert_refused(mp, 2, 3)


def test_mp_part_duplicated(stored_mp):
    mp = stored_mp
    p = mp.stored_part
    mp.write(body=p(1) + p(1) + p(3) + p(4))
    _assert_refused(mp, 2)


@pytest.mark.parametrize("taken", ["part 2", "every part"])
def test_mp_parts_from_other_upload(stored_mp, taken):
    # The other upload has the same plaintext, part sizes and layout: only its key differs.
    mp = stored_mp
    p = mp.stored_part
    body = p(1) + p(2, mp.other_body) + p(3) + p(4) if taken == "part 2" else mp.other_body
    assert len(body) == len(mp.body)
    mp.write(body=body)
    _assert_refused(mp, 2)


@pytest.mark.parametrize("layout", ["kept", "edited to match"])
def test_mp_truncated_at_part_boundary(stored_mp, layout):
    # Without the tail part the body is exactly C(3 x 5 MiB): a well-formed looking object of another length.
    mp = stored_mp
    meta = dict(mp.metadata)
    if layout == "edited to match":
        meta["blobseal-layout"] = f"1:1+3x{PART}"
    mp.write(body=mp.body[:3 * PART_STORED], metadata=meta)
    _assert_refused(mp, 3, 4)


def test_mp_bit_flipped_in_part_3(stored_mp):
    # Parts 1 and 2 are intact, so a GET may already be streaming when segment 5 of part 3 fails.
    mp = stored_mp
    segment = 5
    body = _flip(mp.body, 2 * PART_STORED + segment * (SEG + TAG) + 123)
    mp.write(body=body)
    start = 2 * PART + segment * SEG
    assert_unreadable(mp.s3, mp.bucket, mp.key)
    assert_raw_get_never_complete(mp.url(), mp.data)
    # Whatever a streaming GET let through before breaking off is authenticated plaintext only: a prefix of
    # the object that stops before the flipped segment.
    status, received, complete = raw_get_received(mp.url())
    if status in (0, 200):
        assert not complete
        assert len(received) <= start and received == mp.data[:len(received)], len(received)
    else:
        assert status >= 500, status
    assert_unreadable(mp.s3, mp.bucket, mp.key, Range=f"bytes={start + 100}-{start + 199}")
    assert_unreadable(mp.s3, mp.bucket, mp.key, Range=f"bytes={2 * PART}-{3 * PART - 1}")
    # A range in an untouched part may be served, but only with the right bytes.
    try:
        got = mp.s3.get_object(Bucket=mp.bucket, Key=mp.key, Range=_range_in_part(1))["Body"].read()
    except Exception:  # an error is acceptable too
        return
    assert got == mp.parts[0][1000:1100]


# Edits of `blobseal-layout`, each of which keeps the sum of the lengths (= the envelope's plaintext length)
# unless its name says otherwise; the layout is authenticated through the envelope's metadata digest.
LAYOUT_EDITS = {
    "runs swapped": f"1:4+1x{TAIL},1+3x{PART}",
    "length moved between runs": f"1:1+3x{PART - 1000},4+1x{TAIL + 3000}",
    "parts renumbered": f"1:2+3x{PART},5+1x{TAIL}",
    "same parts spelled differently": f"1:1+2x{PART},3+1x{PART},4+1x{TAIL}",
    "part left out": f"1:1+2x{PART},4+1x{TAIL}",
    "version changed": f"2:1+3x{PART},4+1x{TAIL}",
    "empty": "",
}


@pytest.mark.parametrize("edit", LAYOUT_EDITS)
def test_mp_layout_edited(stored_mp, edit):
    mp = stored_mp
    meta = dict(mp.metadata, **{"blobseal-layout": LAYOUT_EDITS[edit]})
    mp.write(metadata=meta)
    _assert_refused(mp, 1, 3)


def test_mp_layout_removed(stored_mp):
    mp = stored_mp
    mp.write(metadata={k: v for k, v in mp.metadata.items() if k != "blobseal-layout"})
    _assert_refused(mp, 1, 3)
