"""The `pkcs11` key provider end to end: blobseal serve + the keys/shred CLI on a real SoftHSM2 token over moto S3.

Root keys are AES objects on a fresh SoftHSM2 token (tests/softhsm.sh: label "blobseal", user PIN 1234), with root
ids `pkcs11:<tenant>:<n>`; lifetime keys are in the tenant's key store bucket on moto; data keys in each object's
envelope. Every step that needs a root (first write, rotate, rewrap, retire, shred, reads after the 1 s cache TTL)
therefore goes to the token, from the server process and from the CLI processes alike.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

import procs
from instances import MOTO_KEY, MOTO_SECRET
from keyutil import (expect_error, kek_id, parse_json_out, raw_kek_ids, raw_keys, raw_s3, read, restore,
                     rewrap_counts, run_cli, snapshot, subject_key_id, unique_name)
from s3util import REGION, random_bytes, s3_client, unique_bucket

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234"  # the user PIN tests/softhsm.sh gives its token
TTL = 1  # key_cache ttl_seconds: how long a replica may use a key it cached
SOFTHSM_TIMEOUT = 600  # seconds; the script may have to apt-get install softhsm2 first
START_TIMEOUT = 30  # seconds for `blobseal serve` to either listen or exit
GONE = ("destroyed", "shredded")  # a read of a shredded object says why
REFUSED = ("write refused",)


def make_token(dir_: Path) -> str:
    """A fresh SoftHSM2 token in `dir_` (tests/softhsm.sh); returns its SOFTHSM2_CONF path. Fails loudly."""
    script = Path(__file__).resolve().parents[1] / "softhsm.sh"
    try:
        out = subprocess.run(["bash", str(script), str(dir_)], capture_output=True, text=True, timeout=SOFTHSM_TIMEOUT,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"tests/softhsm.sh {dir_} still running after {SOFTHSM_TIMEOUT}s; stderr:\n{e.stderr}")
    if out.returncode != 0:
        pytest.fail(f"tests/softhsm.sh {dir_} exited {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}")
    confs = [line.split("=", 1)[1] for line in out.stdout.splitlines() if line.startswith("SOFTHSM2_CONF=")]
    assert len(confs) == 1 and Path(confs[0]).is_file(), f"no SOFTHSM2_CONF line on stdout: {out.stdout!r}"
    return confs[0]


def pkcs11_config(moto_endpoint: str, tenant: str, prefix: str, key_store: str, access_key: str, pin: str) -> str:
    """A blobseal config: one pkcs11 provider, moto as the only backend, one tenant with data subjects by header.

    `pin` is the YAML of the PIN source (`pin_env: X` or `pin_file: "/path"`). `{port}` is left for procs.blobseal.
    """
    return ('listen: "127.0.0.1:{port}"\n'
            f"key_provider:\n  kind: pkcs11\n  module: {MODULE}\n  token_label: blobseal\n  {pin}\n"
            f"key_cache: {{ttl_seconds: {TTL}}}\n"
            "backends:\n  - name: moto\n    kind: s3\n"
            f'    endpoint: "{moto_endpoint}"\n    region: {REGION}\n    force_path_style: true\n'
            "    credentials: {access_key_id_env: BST_MOTO_KEY, secret_access_key_env: BST_MOTO_SECRET}\n"
            "tenants:\n"
            f"  - name: {tenant}\n    default_backend: moto\n    bucket_prefix: \"{prefix}\"\n"
            f"    key_store: {{bucket: \"{key_store}\"}}\n"
            f"    access_keys: [{{id: {access_key}, secret_env: BST_PK_SECRET}}]\n"
            "    data_subjects:\n      - {header: x-amz-meta-data-subject}\n")


def root_records(raw, key_store: str, tenant: str) -> dict[int, dict]:
    """Root generation → its record in the key store (`keys/<t>/roots/<gen>`: gen, root_id, ...)."""
    out = {}
    for k in raw_keys(raw, key_store, f"keys/{tenant}/roots/"):
        rec = json.loads(raw.get_object(Bucket=key_store, Key=k)["Body"].read())
        out[int(rec["gen"])] = rec
    return out


def lifetime_record(raw, key_store: str, tenant: str, key_id: str) -> dict:
    return json.loads(raw.get_object(Bucket=key_store, Key=f"keys/{tenant}/lifetime/{key_id}")["Body"].read())


def wait_ttl() -> None:
    """Longer than the cache TTL: the server has forgotten every key it cached and must ask the token again."""
    time.sleep(TTL + 0.6)


def test_pkcs11_round_trip_rotate_rewrap_retire_shred(workdir, moto):
    conf = make_token(workdir / f"softhsm-{secrets.token_hex(4)}")
    tenant, prefix = unique_name("pk"), f"pk{secrets.token_hex(2)}-"
    key_store = f"ks-pkcs11-{secrets.token_hex(8)}"
    ak, sk = "PKCS11TENANTKEY", secrets.token_hex(20)
    env = {"SOFTHSM2_CONF": conf, "BST_HSM_PIN": PIN, "BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET,
           "BST_PK_SECRET": sk, "BLOBSEAL_DATA_DIR": str(workdir / "bs-pkcs11-data")}
    text = pkcs11_config(moto.endpoint, tenant, prefix, key_store, ak, "pin_env: BST_HSM_PIN")
    cli_config = workdir / "bs-pkcs11-cli.yaml"
    cli_config.write_text(text.replace("{port}", "0"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return run_cli([*args, "--config", str(cli_config)], env, workdir)

    raw = raw_s3(moto.endpoint)
    root_id = lambda n: f"pkcs11:{tenant}:{n}"  # noqa: E731
    server = procs.blobseal(workdir, "bs-pkcs11", env, config=text)
    try:
        c = s3_client(server.endpoint, ak, sk)
        bucket = unique_bucket()
        c.create_bucket(Bucket=bucket)
        raw_bucket = prefix + bucket
        data = {"plain-small": random_bytes(10), "plain-big": random_bytes(200_000), "empty": b""}
        subjects = {"ann-doc": "ann", "bob-doc": "bob"}
        data.update({"ann-doc": random_bytes(3000), "bob-doc": random_bytes(70_000)})
        for k, v in data.items():
            extra = {"Metadata": {"data-subject": subjects[k]}} if k in subjects else {}
            c.put_object(Bucket=bucket, Key=k, Body=v, **extra)
        for k, v in data.items():
            assert read(c, bucket, k) == v, k
        ann, bob = subject_key_id(tenant, "ann"), subject_key_id(tenant, "bob")
        expected = {"plain-small": "tenant:1", "plain-big": "tenant:1", "empty": "tenant:1", "ann-doc": ann,
                    "bob-doc": bob}
        assert raw_kek_ids(raw, raw_bucket) == expected
        for k in ("plain-big", "ann-doc", "bob-doc"):  # ciphertext at rest, not the plaintext
            assert data[k][:64] not in raw.get_object(Bucket=raw_bucket, Key=k)["Body"].read(), k

        # Root generation 1 is a key on the token; every lifetime key is wrapped under it, in our key store bucket.
        roots = root_records(raw, key_store, tenant)
        assert {g: r["root_id"] for g, r in roots.items()} == {1: root_id(1)}, roots
        for kid in ("tenant:1", ann, bob):
            rec = lifetime_record(raw, key_store, tenant, kid)
            assert rec["root_id"] == root_id(1) and rec["root_gen"] == 1, (kid, rec)
        status = cli("keys", "status", "--tenant", tenant).stdout
        assert "key provider pkcs11" in status and key_store in status and root_id(1) in status, status

        # After the TTL the server must unwrap through the token again.
        wait_ttl()
        for k, v in data.items():
            assert read(c, bucket, k) == v, k

        # Rotate: root 2 on the token, tenant:2 for new writes (within the TTL).
        rotated = cli("keys", "rotate", "--tenant", tenant).stdout
        assert root_id(2) in rotated and "tenant:2" in rotated, rotated
        roots = root_records(raw, key_store, tenant)
        assert {g: r["root_id"] for g, r in roots.items()} == {1: root_id(1), 2: root_id(2)}, roots
        wait_ttl()
        data["after-rotate"] = random_bytes(5000)
        c.put_object(Bucket=bucket, Key="after-rotate", Body=data["after-rotate"])
        assert kek_id(raw.head_object(Bucket=raw_bucket, Key="after-rotate")["Metadata"]) == "tenant:2"
        for k, v in data.items():
            assert read(c, bucket, k) == v, k

        # Rewrap moves the three plain objects to tenant:2 (bodies untouched); retire then destroys root 1.
        bodies = {k: raw.get_object(Bucket=raw_bucket, Key=k)["Body"].read() for k in data}
        counts = rewrap_counts(cli("keys", "rewrap", "--tenant", tenant).stdout)
        assert counts == (3, 1, 2, 0), f"(rewrapped, current, subject, failed) = {counts}"
        expected = {**{k: "tenant:2" for k in data if k not in subjects}, "ann-doc": ann, "bob-doc": bob}
        assert raw_kek_ids(raw, raw_bucket) == expected
        for k, body in bodies.items():
            assert raw.get_object(Bucket=raw_bucket, Key=k)["Body"].read() == body, k
        retired = cli("keys", "retire", "--tenant", tenant).stdout
        assert root_id(1) in retired and root_id(2) not in retired, retired
        roots = root_records(raw, key_store, tenant)
        assert {g: r["root_id"] for g, r in roots.items()} == {2: root_id(2)}, roots
        lifetime = raw_keys(raw, key_store, f"keys/{tenant}/lifetime/")
        assert sorted(k.rsplit("/", 1)[1] for k in lifetime) == sorted(["tenant:2", ann, bob]), lifetime
        for kid in ("tenant:2", ann, bob):
            assert lifetime_record(raw, key_store, tenant, kid)["root_id"] == root_id(2), kid
        wait_ttl()
        for k, v in data.items():
            assert read(c, bucket, k) == v, k

        # Shred ann: her key goes, the root rolls (root 3 new, root 2 destroyed on the token).
        store_before_shred = snapshot(raw, key_store)
        out = parse_json_out(cli("shred", "--tenant", tenant, "--subject", "ann", "--yes", "--by", "pytest").stdout)
        assert out["kind"] == "subject" and out["tenant"] == tenant and out["subjects"] == [ann], out
        assert ann in out["destroyed_keys"] and bob not in out["destroyed_keys"], out
        assert [(r["gen"], r["root_id"]) for r in out["destroyed_roots"]] == [(2, root_id(2))], out
        for r in out["destroyed_roots"]:
            assert re.fullmatch(rf"pkcs11:{re.escape(tenant)}:\d+", r["root_id"]), r
        assert out["new_root"] == {"gen": 3, "root_id": root_id(3)}, out
        assert out["cache_ttl_seconds"] == TTL, out
        stored = json.loads(raw.get_object(Bucket=key_store, Key=f"receipts/{tenant}/00000001.json")["Body"].read())
        assert stored["destroyed_roots"] == out["destroyed_roots"], stored
        roots = root_records(raw, key_store, tenant)
        assert {g: r["root_id"] for g, r in roots.items()} == {3: root_id(3)}, roots
        assert lifetime_record(raw, key_store, tenant, bob)["root_id"] == root_id(3)

        wait_ttl()
        expect_error(lambda: c.get_object(Bucket=bucket, Key="ann-doc"), 403, "AccessDenied", GONE)
        for k, v in data.items():
            if k != "ann-doc":
                assert read(c, bucket, k) == v, k
        before = raw_keys(raw, raw_bucket)
        expect_error(lambda: c.put_object(Bucket=bucket, Key="ann-again", Body=b"a" * 100,
                                          Metadata={"data-subject": "ann"}), 403, "AccessDenied", REFUSED)
        assert raw_keys(raw, raw_bucket) == before
        # Other subjects and plain objects still write (under tenant:2 and bob's key, wrapped by root 3).
        c.put_object(Bucket=bucket, Key="bob-2", Body=b"bob again", Metadata={"data-subject": "bob"})
        assert kek_id(raw.head_object(Bucket=raw_bucket, Key="bob-2")["Metadata"]) == bob
        assert read(c, bucket, "bob-2") == b"bob again"

        # A pre-shred copy of the key store names root 2, which is gone from the token: nothing under it reads,
        # ann's object included (no tombstone in that copy), and bob's and the plain ones no longer either.
        restore(raw, store_before_shred, exact=True)
        wait_ttl()
        for k in ("ann-doc", "bob-doc", "plain-big"):
            expect_error(lambda: c.get_object(Bucket=bucket, Key=k), (403, 500))
        assert server.alive()
    finally:
        server.stop()


def test_pkcs11_wrong_pin_fails_at_start_without_leaking_it(workdir, moto):
    """A wrong PIN (from a pin_file) stops `blobseal serve` at start and fails `keys status`; no output shows it."""
    conf = make_token(workdir / f"softhsm-{secrets.token_hex(4)}")
    wrong = "97" + secrets.token_hex(6)  # distinctive: cannot appear in a log by accident
    pin_file = workdir / f"wrong-pin-{secrets.token_hex(3)}"
    pin_file.write_text(wrong + "\n")
    pin_file.chmod(0o600)
    tenant = unique_name("pkw")
    text = pkcs11_config(moto.endpoint, tenant, f"pkw{secrets.token_hex(2)}-", f"ks-pkcs11-{secrets.token_hex(8)}",
                         "PKCS11WRONGPIN", f'pin_file: "{pin_file}"')
    env = {"SOFTHSM2_CONF": conf, "BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET,
           "BST_PK_SECRET": secrets.token_hex(20), "BLOBSEAL_DATA_DIR": str(workdir / "bs-pkcs11-wrong-data")}
    config = workdir / "bs-pkcs11-wrong.yaml"
    port = procs.free_port()
    config.write_text(text.replace("{port}", str(port)))

    full_env = procs.clean_env()
    full_env.update(env)
    full_env.update({"BLOBSEAL_LISTEN": f"127.0.0.1:{port}", "RUST_LOG": "debug"})
    proc = subprocess.Popen([procs.blobseal_bin(), "serve", "--config", str(config)], env=full_env, cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        served = procs.port_open(port)
        proc.kill()
        stdout, stderr = proc.communicate(timeout=10)
        pytest.fail(f"blobseal serve with a wrong PIN still running after {START_TIMEOUT}s (serving: {served})\n"
                    f"stderr:\n{stderr[-3000:]}")
    output = stdout + stderr
    assert proc.returncode != 0, f"serve with a wrong PIN exited 0:\n{output[-3000:]}"
    assert "pkcs11" in output.lower() and ("login" in output.lower() or "pin" in output.lower()), output[-3000:]
    assert wrong not in output, "the PIN appears in serve's output"

    status = run_cli(["keys", "status", "--tenant", tenant, "--config", str(config)], {**env, "RUST_LOG": "debug"},
                     workdir, expect_rc=None)
    output = status.stdout + status.stderr
    assert status.returncode != 0, f"keys status with a wrong PIN exited 0:\n{output[-3000:]}"
    assert "pkcs11" in output.lower(), output[-3000:]
    assert wrong not in output, "the PIN appears in keys status's output"
