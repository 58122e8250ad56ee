"""`blobseal decrypt` (issue 15, item 7): with the server stopped, the data dir's key material and the stored
objects alone give back the exact bytes of a GET (a single PUT and a multipart upload); a tampered object gives
no file at all."""

from __future__ import annotations

import hashlib
import secrets
import subprocess

from boto3.s3.transfer import TransferConfig

import procs
from atrest import fs_locate_new
from s3util import MIB, random_bytes, s3_client


def test_decrypt_matches_a_get_without_a_server_and_refuses_tampered_bytes(workdir):
    data_dir = workdir / "decrypt-data"
    ak, sk = "DECRYPTKEY" + secrets.token_hex(3).upper(), secrets.token_hex(20)
    env = {"BLOBSEAL_DATA_DIR": str(data_dir), "BLOBSEAL_ACCESS_KEY_ID": ak, "BLOBSEAL_SECRET_ACCESS_KEY": sk}
    server = procs.blobseal(workdir, "decrypt", env)
    single, multi = random_bytes(200_000), random_bytes(11 * MIB + 123)
    try:
        s3 = s3_client(server.endpoint, ak, sk)
        s3.create_bucket(Bucket="docs")
        s3.put_object(Bucket="docs", Key="contracts/one.pdf", Body=single)
        cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
        s3.upload_fileobj(__import__("io").BytesIO(multi), "docs", "recordings/call.wav", Config=cfg)
        assert "-" in s3.head_object(Bucket="docs", Key="recordings/call.wav")["ETag"]  # a multipart object
        tampered_file = fs_locate_new(data_dir, lambda: s3.put_object(Bucket="docs", Key="tampered", Body=single))
        via_get = s3.get_object(Bucket="docs", Key="recordings/call.wav")["Body"].read()
    finally:
        server.stop()

    full = procs.clean_env()
    full.update(env)

    def decrypt(key: str, out: str) -> subprocess.CompletedProcess:
        return subprocess.run([procs.blobseal_bin(), "decrypt", "--bucket", "docs", "--key", key, "--out", out],
                              env=full, cwd=workdir, capture_output=True, text=True, timeout=120)

    for key, want in (("contracts/one.pdf", single), ("recordings/call.wav", via_get)):
        out = workdir / (key.replace("/", "_") + ".out")
        res = decrypt(key, str(out))
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == want, key
        assert hashlib.sha256(want).hexdigest() in res.stderr
    assert via_get == multi
    # One flipped bit in the stored ciphertext: refused, and nothing is left behind.
    raw = bytearray(tampered_file.read_bytes())
    raw[-100] ^= 0x04
    tampered_file.write_bytes(bytes(raw))
    res = decrypt("tampered", str(workdir / "tampered.out"))
    assert res.returncode != 0 and not (workdir / "tampered.out").exists(), res.stderr
    # An existing file is never overwritten.
    res = decrypt("contracts/one.pdf", str(workdir / "contracts_one.pdf.out"))
    assert res.returncode != 0 and "cannot create" in res.stderr
