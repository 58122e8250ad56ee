"""No plaintext at rest: nothing blobseal stores (fs files, raw moto objects) contains a 32-byte run of plaintext."""

import base64

from atrest import PlaintextIndex, fs_put_and_locate, moto_keys, moto_put_and_locate, stored_files
from s3util import random_bytes, stored_size, unique_bucket

SIZES = [100, 65536 + 7, 1536 * 1024]


def test_fs_data_dir_holds_no_plaintext(bs_fs, tmp_path):
    s3 = bs_fs.client()
    bucket = unique_bucket()
    s3.create_bucket(Bucket=bucket)
    plains = [random_bytes(n) for n in SIZES]
    for i, p in enumerate(plains):
        path = fs_put_and_locate(s3, bucket, f"secret/{i}", p, bs_fs.data_dir)
        # Header + JSON metadata + ciphertext: at least the ciphertext's size.
        assert path.stat().st_size >= stored_size(len(p)), (path, path.stat().st_size)
    # A copy is stored too, and must be ciphertext as well.
    s3.copy_object(Bucket=bucket, Key="secret/copy", CopySource={"Bucket": bucket, "Key": "secret/2"})
    assert s3.get_object(Bucket=bucket, Key="secret/copy")["Body"].read() == plains[2]

    index = PlaintextIndex(plains)
    files = list(stored_files(bs_fs.data_dir))
    assert len(files) >= len(SIZES) + 1
    for path, blob in files:
        off = index.leak_offset(blob)
        assert off is None, f"plaintext found in {path} at offset {off}"
    # The check itself must be able to fail: a file holding plaintext is caught.
    planted = tmp_path / "planted"
    planted.write_bytes(b"header" + plains[1][1000:1040])
    assert index.leak_offset(planted.read_bytes()) is not None


def test_moto_raw_objects_hold_no_plaintext(bs_moto, moto_raw):
    s3 = bs_moto.client()
    bucket = unique_bucket()
    s3.create_bucket(Bucket=bucket)
    plains = [random_bytes(n) for n in SIZES]
    for i, p in enumerate(plains):
        raw = moto_put_and_locate(s3, moto_raw, bucket, f"secret/{i}", p)
        assert len(raw.body) == stored_size(len(p)), (raw.key, len(raw.body), len(p))
        envelope = raw.metadata.get("blobseal-envelope")
        assert envelope, f"no blobseal-envelope metadata on {raw.bucket}/{raw.key}: {raw.metadata}"
        base64.b64decode(envelope, validate=True)
    s3.copy_object(Bucket=bucket, Key="secret/copy", CopySource={"Bucket": bucket, "Key": "secret/2"})

    index = PlaintextIndex(plains)
    seen = 0
    for b in moto_raw.list_buckets()["Buckets"]:
        for page in moto_raw.get_paginator("list_object_versions").paginate(Bucket=b["Name"]):
            for v in page.get("Versions", []):
                got = moto_raw.get_object(Bucket=b["Name"], Key=v["Key"], VersionId=v["VersionId"])
                blob = got["Body"].read()
                seen += 1
                off = index.leak_offset(blob)
                assert off is None, f"plaintext found in moto {b['Name']}/{v['Key']} at offset {off}"
                for name, value in got.get("Metadata", {}).items():
                    assert index.leak_offset(value.encode()) is None, name
    assert seen >= len(SIZES) + 1
    assert len(moto_keys(moto_raw)) >= len(SIZES) + 1
