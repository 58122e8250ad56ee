"""Operations (issue 14): the admin listener's probes and metrics, the SIGTERM drain with a download in
flight, JSON logs, TLS with boto3 and certificate reload, and `check-config --offline`.

Each test starts its own blobseal on the embedded default (the drain and TLS tests change how the process
runs, so no server is shared).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

import procs
from s3util import raw_request, s3_client

REPO = Path(__file__).resolve().parents[2]


def start(workdir: Path, name: str, extra: dict[str, str] | None = None) -> tuple[procs.Server, str, str]:
    ak, sk = "BSTOPS" + secrets.token_hex(4).upper(), secrets.token_hex(20)
    env = {"BLOBSEAL_DATA_DIR": str(workdir / f"{name}-data"), "BLOBSEAL_ACCESS_KEY_ID": ak,
           "BLOBSEAL_SECRET_ACCESS_KEY": sk}
    env.update(extra or {})
    return procs.blobseal(workdir, name, env), ak, sk


def admin_get(server: procs.Server, path: str) -> tuple[int, str]:
    resp = raw_request("GET", f"http://127.0.0.1:{server.admin_port}{path}", timeout=5)
    return resp.status, resp.body.decode()


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


def test_probes_and_metrics_on_the_admin_port(workdir):
    server, ak, sk = start(workdir, "ops-probes")
    try:
        assert admin_get(server, "/livez") == (200, "ok\n")
        assert admin_get(server, "/readyz") == (200, "ready\n")
        assert admin_get(server, "/nope")[0] == 404
        s3 = s3_client(server.endpoint, ak, sk)
        s3.create_bucket(Bucket="probes")
        s3.put_object(Bucket="probes", Key="k", Body=b"x" * 5000)
        assert s3.get_object(Bucket="probes", Key="k")["Body"].read() == b"x" * 5000
        status, text = admin_get(server, "/metrics")
        assert status == 200 and text.endswith("# EOF\n")
        # Request histograms and counts by operation, bytes in and out, key cache, build and config info.
        assert metric_lines(text, 'blobseal_http_request_duration_seconds_bucket{le="+Inf",front="s3",operation="PutObject"}')
        assert metric_lines(text, 'blobseal_http_time_to_first_byte_seconds_count{front="s3",operation="GetObject"}')
        assert any(line.endswith(" 1") for line in metric_lines(
            text, 'blobseal_http_requests_total{front="s3",operation="GetObject",status_class="2xx"}')), text
        bytes_in = float(metric_lines(text, 'blobseal_http_request_body_bytes_total{front="s3"}')[0].split()[-1])
        bytes_out = float(metric_lines(text, 'blobseal_http_response_body_bytes_total{front="s3"}')[0].split()[-1])
        assert bytes_in >= 5000 and bytes_out >= 5000, (bytes_in, bytes_out)
        assert metric_lines(text, 'blobseal_backend_calls_total{target="local",call="put",outcome="ok"}')
        assert metric_lines(text, 'blobseal_key_provider_calls_total{target="default",call="unwrap",outcome="ok"}') \
            or metric_lines(text, 'blobseal_key_provider_calls_total{target="default",call="wrap",outcome="ok"}')
        assert metric_lines(text, 'blobseal_key_cache_lookups_total{kind="hit"}')
        assert metric_lines(text, "blobseal_build_info{version=")
        assert len(metric_lines(text, "blobseal_config_info{sha256=")) == 1
        # Nothing secret or personal in any label.
        assert ak not in text and sk not in text and "probes" not in text
    finally:
        server.stop()


def test_sigterm_drains_a_download_in_flight_and_exits_zero(workdir):
    server, ak, sk = start(workdir, "ops-drain", {"BLOBSEAL_DRAIN_DELAY_SECONDS": "2"})
    s3 = s3_client(server.endpoint, ak, sk)
    s3.create_bucket(Bucket="drain")
    body = os.urandom(24 * 1024 * 1024)
    s3.put_object(Bucket="drain", Key="big", Body=body)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "drain", "Key": "big"}, ExpiresIn=300)
    got = {}

    def slow_download():
        parts = url.split("/", 3)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/" + parts[3])
        resp = conn.getresponse()
        h = hashlib.sha256()
        n = 0
        while chunk := resp.read(1024 * 1024):
            h.update(chunk)
            n += len(chunk)
            time.sleep(0.15)  # about 4 s in all: the download spans the drain delay and the close
        got.update(status=resp.status, size=n, sha=h.hexdigest())

    t = threading.Thread(target=slow_download)
    t.start()
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # Draining: unready at once, still serving new requests until the delay ends.
    assert admin_get(server, "/readyz")[0] == 503
    assert admin_get(server, "/livez")[0] == 200
    assert s3.head_object(Bucket="drain", Key="big")["ContentLength"] == len(body)
    t.join(timeout=60)
    assert not t.is_alive(), "download did not finish"
    assert got == {"status": 200, "size": len(body), "sha": hashlib.sha256(body).hexdigest()}
    assert server.proc.wait(timeout=30) == 0
    log = server.log()
    assert "draining" in log and "blobseal stopped" in log, log[-2000:]
    server.stopped = True


def test_json_logs_are_one_object_per_line_with_the_stable_fields(workdir):
    server, ak, sk = start(workdir, "ops-json", {"BLOBSEAL_LOG_FORMAT": "json"})
    try:
        s3 = s3_client(server.endpoint, ak, sk)
        s3.create_bucket(Bucket="jsonlogs")
        s3.put_object(Bucket="jsonlogs", Key="a", Body=b"hello")
        time.sleep(0.3)
    finally:
        server.stop()
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert any("listening on" in r["msg"] for r in records), "start-up lines are JSON too"
    puts = [r for r in records if r["msg"] == "request" and r.get("op") == "PutObject"]
    assert puts, records[-5:]
    put = puts[-1]
    for field in ("time", "level", "msg", "request_id", "tenant", "op", "bucket", "status", "ms", "bytes_in",
                  "bytes_out", "peer"):
        assert field in put, (field, put)
    assert (put["tenant"], put["bucket"], put["status"], put["bytes_in"]) == ("default", "jsonlogs", 200, 5)
    assert sk not in server.log()


def _make_cert(directory: Path, common_name: str) -> tuple[int, Path]:
    """A self-signed certificate for 127.0.0.1 (cert + key PEM files); returns its serial number."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    serial = x509.random_serial_number()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    tmp_cert, tmp_key = directory / ".tls.crt.new", directory / ".tls.key.new"
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    # Key first, then cert, each by rename: a reader never sees half a file.
    os.replace(tmp_key, directory / "tls.key")
    os.replace(tmp_cert, directory / "tls.crt")
    return serial, directory / "tls.crt"


def _served_serial(port: int) -> int:
    from cryptography import x509
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ctx.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_tls_round_trip_with_boto3_and_reload_on_change_and_sighup(workdir):
    tls_dir = workdir / "ops-tls"
    tls_dir.mkdir()
    first, cert_path = _make_cert(tls_dir, "blobseal-one")
    server, ak, sk = start(workdir, "ops-tls", {"BLOBSEAL_TLS_CERT_FILE": str(tls_dir / "tls.crt"),
                                                "BLOBSEAL_TLS_KEY_FILE": str(tls_dir / "tls.key")})
    try:
        endpoint = f"https://127.0.0.1:{server.port}"
        bundle = workdir / "ops-tls-ca-1.pem"
        bundle.write_bytes(cert_path.read_bytes())
        s3 = s3_client(endpoint, ak, sk, verify=str(bundle))
        s3.create_bucket(Bucket="tls")
        s3.put_object(Bucket="tls", Key="k", Body=b"over tls")
        assert s3.get_object(Bucket="tls", Key="k")["Body"].read() == b"over tls"
        assert _served_serial(server.port) == first
        # Plain HTTP on the TLS port gets no S3 answer.
        with pytest.raises(Exception):
            raw_request("GET", f"http://127.0.0.1:{server.port}/tls/k", timeout=3)

        # New files: picked up by the poll (no signal).
        second, _ = _make_cert(tls_dir, "blobseal-two")
        deadline = time.monotonic() + 15
        while _served_serial(server.port) != second:
            assert time.monotonic() < deadline, "new certificate not served after 15 s"
            time.sleep(0.5)
        bundle2 = workdir / "ops-tls-ca-2.pem"
        bundle2.write_bytes(cert_path.read_bytes())
        s3b = s3_client(endpoint, ak, sk, verify=str(bundle2))
        assert s3b.get_object(Bucket="tls", Key="k")["Body"].read() == b"over tls"

        # A broken certificate is refused; the previous one keeps serving, also after SIGHUP.
        (tls_dir / "tls.crt").write_text("not a certificate\n")
        server.proc.send_signal(signal.SIGHUP)
        time.sleep(3)
        assert _served_serial(server.port) == second
        assert "tls certificate not reloaded" in server.log()

        # SIGHUP reloads a good one at once.
        third, _ = _make_cert(tls_dir, "blobseal-three")
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while _served_serial(server.port) != third:
            assert time.monotonic() < deadline, "certificate not reloaded after SIGHUP"
            time.sleep(0.3)
        status, text = admin_get(server, "/metrics")
        expiry = float(metric_lines(text, "blobseal_tls_cert_expiry_timestamp_seconds")[0].split()[-1])
        assert time.time() + 86400 < expiry < time.time() + 3 * 86400
    finally:
        server.stop()


def test_check_config_offline_needs_no_secrets(workdir):
    env = {"PATH": os.environ.get("PATH", "")}
    shipped = [REPO / "config" / "blobseal.yaml", *sorted((REPO / "config" / "examples").glob("*.yaml"))]
    for cfg in shipped:
        online = subprocess.run([procs.blobseal_bin(), "check-config", str(cfg)], env=env, capture_output=True,
                                text=True, timeout=60)
        assert online.returncode == 2, (cfg, online.stdout, online.stderr)
        offline = subprocess.run([procs.blobseal_bin(), "check-config", "--offline", str(cfg)], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert offline.returncode == 0, (cfg, offline.stdout, offline.stderr)
        assert "OK (offline: secrets not checked)" in offline.stdout
    # Everything but secrets is still checked.
    bad = workdir / "ops-offline-bad.yaml"
    bad.write_text((REPO / "config" / "examples" / "fs.yaml").read_text() + "\nadmin_listen: nowhere\n")
    res = subprocess.run([procs.blobseal_bin(), "check-config", "--offline", str(bad)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "admin_listen" in res.stderr, res.stderr


RELOAD_BASE = """\
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin_port}
key_provider: { kind: local, keyring: ./reload-data/keyring.json, master_key_file: ./reload-data/master.key }
backends:
  - name: disk
    kind: fs
    path: ./reload-data/objects
tenants:
  - name: alice
    default_backend: disk
    bucket_prefix: alice-
    access_keys:
      - id: ALICEKEY
        secret_env: RELOAD_ALICE_SECRET
"""

RELOAD_BOB = """\
  - name: bob
    default_backend: disk
    bucket_prefix: bob-
    access_keys:
      - id: BOBKEY
        secret_env: RELOAD_BOB_SECRET
"""


def reload_outcomes(server: procs.Server) -> dict[str, float]:
    _, text = admin_get(server, "/metrics")
    out = {}
    for line in metric_lines(text, "blobseal_config_reloads_total{"):
        outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
        out[outcome] = float(line.split()[-1])
    return out


def wait_until(what: str, check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_config_reload_adds_a_tenant_and_refuses_bad_files(workdir):
    """The config file changes under a running server: a new tenant works without a restart (file change,
    then SIGHUP), a broken file keeps the last good config serving and is logged as FILE:LINE:COL, a change
    that needs a restart or would move a bucket is refused, and each outcome is counted."""
    alice_sk, bob_sk = secrets.token_hex(20), secrets.token_hex(20)
    env = {"RELOAD_ALICE_SECRET": alice_sk, "RELOAD_BOB_SECRET": bob_sk}
    server = procs.blobseal(workdir, "ops-reload", env, config=RELOAD_BASE)
    cfg = workdir / "ops-reload.yaml"
    base = cfg.read_text()
    try:
        alice = s3_client(server.endpoint, "ALICEKEY", alice_sk)
        alice.create_bucket(Bucket="kept")
        alice.put_object(Bucket="kept", Key="k", Body=b"alice's object")
        bob = s3_client(server.endpoint, "BOBKEY", bob_sk)
        with pytest.raises(Exception) as refused:
            bob.list_buckets()
        assert "InvalidAccessKeyId" in str(refused.value), refused.value

        # 1. A new tenant, picked up from the file change alone (the poll), on the same client connection pool.
        cfg.write_text(base + RELOAD_BOB)
        wait_until("the reload", lambda: reload_outcomes(server).get("applied", 0) >= 1)
        bob.create_bucket(Bucket="new")
        bob.put_object(Bucket="new", Key="b", Body=b"bob's object")
        assert bob.get_object(Bucket="new", Key="b")["Body"].read() == b"bob's object"
        assert alice.get_object(Bucket="kept", Key="k")["Body"].read() == b"alice's object"
        _, text = admin_get(server, "/metrics")
        sha = hashlib.sha256(cfg.read_bytes()).hexdigest()
        assert metric_lines(text, f'blobseal_config_info{{sha256="{sha}"}}'), text

        # 2. A broken file: the last good config keeps serving; the log says where the problem is.
        good = cfg.read_text()
        cfg.write_text(good.replace("bucket_prefix: bob-", "bucket_prefix: [bob"))
        wait_until("the refusal", lambda: reload_outcomes(server).get("invalid", 0) >= 1)
        assert bob.get_object(Bucket="new", Key="b")["Body"].read() == b"bob's object"
        log = server.log_path.read_text()
        assert f"{cfg}:" in log and "config reload" in log, log[-3000:]
        assert re.search(re.escape(str(cfg)) + r":\d+:\d+: ", log), log[-3000:]

        # 3. A change that needs a restart, and one that would move an existing bucket: refused, nothing applied.
        cfg.write_text(good.replace("tenants:", "limits: { max_connections: 77 }\ntenants:", 1))
        server.proc.send_signal(signal.SIGHUP)
        wait_until("the restart-only refusal", lambda: reload_outcomes(server).get("refused", 0) >= 1)
        assert "limits" in server.log_path.read_text().split("need a restart")[-1][:400]
        cfg.write_text(good.replace("bucket_prefix: alice-", "bucket_prefix: alice2-"))
        wait_until("the move refusal", lambda: reload_outcomes(server).get("refused", 0) >= 2)
        assert "would move" in server.log_path.read_text()
        assert alice.get_object(Bucket="kept", Key="k")["Body"].read() == b"alice's object"

        # 4. Removing a tenant's access key takes effect for the next request.
        cfg.write_text(base)
        wait_until("the removal", lambda: reload_outcomes(server).get("applied", 0) >= 2)
        with pytest.raises(Exception) as gone:
            bob.get_object(Bucket="new", Key="b")
        assert "InvalidAccessKeyId" in str(gone.value), gone.value
        assert alice.get_object(Bucket="kept", Key="k")["Body"].read() == b"alice's object"
    finally:
        server.stop()


def blobseal_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = procs.clean_env()
    full.update(env)
    return subprocess.run([procs.blobseal_bin(), *args], env=full, capture_output=True, text=True, timeout=120)


def audit_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "objects" / "blobseal-audit").rglob("*") if p.is_file() and p.name != ".bucket"]


def test_audit_trail_verifies_exports_each_request_and_detects_one_flipped_byte(workdir):
    """Every authenticated request and every admin command leaves a record in the tenant's trail (a reserved
    bucket of the fs backend); `audit verify` passes on the intact trail, offline from an exported bundle too,
    and fails naming the segment after one byte of it changes. Subjects never appear in clear."""
    data = workdir / "audit-data"
    env = {"BLOBSEAL_DATA_DIR": str(data), "BLOBSEAL_AUDIT_FLUSH_MS": "20", "BLOBSEAL_AUDIT_ROLLUP_SECONDS": "1"}
    server, ak, sk = start(workdir, "ops-audit", env)
    env.update({"BLOBSEAL_ACCESS_KEY_ID": ak, "BLOBSEAL_SECRET_ACCESS_KEY": sk})
    subject = "subject-" + secrets.token_hex(6)
    try:
        s3 = s3_client(server.endpoint, ak, sk)
        ids = [s3.create_bucket(Bucket="audited")["ResponseMetadata"]["RequestId"]]
        for i in range(3):
            r = s3.put_object(Bucket="audited", Key=f"doc-{i}", Body=b"a" * 1000, Metadata={"data-subject": subject})
            ids.append(r["ResponseMetadata"]["RequestId"])
        got = s3.get_object(Bucket="audited", Key="doc-1")
        assert got["Body"].read() == b"a" * 1000
        ids.append(got["ResponseMetadata"]["RequestId"])
        ids.append(s3.delete_object(Bucket="audited", Key="doc-2")["ResponseMetadata"]["RequestId"])
        with pytest.raises(Exception):
            s3.get_object(Bucket="audited", Key="doc-2")
        # The trail's bucket is nobody's: not listed, not reachable.
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["audited"]
        with pytest.raises(Exception):
            s3.list_objects_v2(Bucket="blobseal-audit")
        sweep = blobseal_cli(env, "sweep")
        assert sweep.returncode == 0, sweep.stderr

        # Written and rolled up into a head within a few seconds; verified while the server runs.
        def verified() -> bool:
            res = blobseal_cli(env, "audit", "verify")
            return res.returncode == 0 and "head(s)" in res.stdout and " 0 head(s)" not in res.stdout
        deadline = time.monotonic() + 20
        while not verified():
            assert time.monotonic() < deadline, blobseal_cli(env, "audit", "verify").stdout
            time.sleep(0.3)
        export = blobseal_cli(env, "audit", "export", "--tenant", "default")
        assert export.returncode == 0, export.stderr
        records = [json.loads(line) for line in export.stdout.splitlines()]
        by_id = {r["request_id"]: r for r in records}
        for rid in ids:
            assert rid in by_id, (rid, records)
        put = by_id[ids[1]]
        assert (put["op"], put["bucket"], put["key"], put["actor"], put["status"], put["bytes_in"]) == \
            ("PutObject", "audited", "doc-0", ak, 200, 1000)
        assert len(put["subject"]) == 32 and by_id[ids[2]]["subject"] == put["subject"]
        assert by_id[ids[4]]["op"] == "GetObject" and by_id[ids[4]]["bytes_out"] == 1000
        assert by_id[ids[5]]["op"] == "DeleteObject"
        assert any(r["op"] == "admin:sweep" and r["receipt_sha256"] for r in records), records
        assert subject not in export.stdout
        for f in audit_files(data):
            assert subject.encode() not in f.read_bytes(), f

        # Breach counts (Art. 33(3)(a)): what this access key touched in the window.
        since = min(r["time"] for r in records)
        q = blobseal_cli(env, "audit", "query", "--tenant", "default", "--actor", ak, "--from", since, "--summary")
        assert q.returncode == 0, q.stderr
        counts = json.loads(q.stdout)
        assert counts["objects"] == 3 and counts["buckets"] == ["audited"], counts
        assert counts["data_subjects"] == 1 and counts["records"] >= len(ids), counts
        assert counts["by_op"]["PutObject"] == 3 and counts["failed_requests"] >= 1, counts
        gets = blobseal_cli(env, "audit", "query", "--tenant", "default", "--actor", ak, "--op", "GetObject")
        got_records = [json.loads(line) for line in gets.stdout.splitlines()]
        assert [r["key"] for r in got_records] == ["doc-1", "doc-2"], got_records  # the read, then the 404
        assert got_records[0]["subject"] == put["subject"], got_records  # named by the metadata it returned
        nobody = blobseal_cli(env, "audit", "query", "--tenant", "default", "--actor", "NOBODY", "--summary")
        assert json.loads(nobody.stdout)["records"] == 0

        # An offline bundle verifies with nothing but its files (and the key the auditor trusts).
        bundle = workdir / "audit-bundle"
        made = blobseal_cli(env, "audit", "export", "--tenant", "default", "--bundle", str(bundle))
        assert made.returncode == 0, made.stderr
        public = (bundle / "public-key.txt").read_text().strip()
        offline = subprocess.run([procs.blobseal_bin(), "audit", "verify", "--bundle", str(bundle), "--public-key",
                                  public], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert offline.returncode == 0 and "intact" in offline.stdout, offline.stdout + offline.stderr
        other_key = "ed25519:" + base64.b64encode(secrets.token_bytes(32)).decode()
        forged = subprocess.run([procs.blobseal_bin(), "audit", "verify", "--bundle", str(bundle), "--public-key",
                                 other_key], capture_output=True, text=True, timeout=60)
        assert forged.returncode != 0

        # One flipped byte in a segment: verify fails and names it.
        segment = next(f for f in audit_files(data)
                       if b'"blobseal_audit_segment"' in f.read_bytes() and b'"doc-0"' in f.read_bytes())
        raw = bytearray(segment.read_bytes())
        at = raw.index(b"doc-0") + 2
        raw[at] ^= 0x01
        segment.write_bytes(bytes(raw))
        broken = blobseal_cli(env, "audit", "verify")
        assert broken.returncode != 0, broken.stdout
        assert "first broken: segments/" in broken.stdout and "do not match its seal" in broken.stdout, broken.stdout
    finally:
        server.stop()


def test_required_audit_answers_503_when_the_trail_cannot_be_written(workdir):
    """audit.mode required: a request is acknowledged only once its record is durable; when the trail's bucket
    cannot be written, the request is answered 503 and the server keeps serving."""
    data = workdir / "audit-req-data"
    env = {"BLOBSEAL_DATA_DIR": str(data), "BLOBSEAL_AUDIT_MODE": "required"}
    server, ak, sk = start(workdir, "ops-audit-req", env)
    try:
        s3 = s3_client(server.endpoint, ak, sk)
        s3.create_bucket(Bucket="strict")
        s3.put_object(Bucket="strict", Key="ok", Body=b"durable")
        assert s3.get_object(Bucket="strict", Key="ok")["Body"].read() == b"durable"
        # Replace the trail's bucket directory with a file: every write to it fails.
        trail = data / "objects" / "blobseal-audit"
        moved = data / "audit-moved"
        trail.rename(moved)
        trail.write_bytes(b"not a directory")
        resp = raw_request("GET", f"{server.endpoint}/strict/ok", timeout=10)
        # raw_request is unsigned: 403 is recorded nowhere (no tenant). A signed client must get 503.
        assert resp.status == 403
        from botocore.exceptions import ClientError
        with pytest.raises(ClientError) as failed:
            s3.get_object(Bucket="strict", Key="ok")
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
        # Back: requests are acknowledged again.
        trail.unlink()
        moved.rename(trail)
        assert s3.get_object(Bucket="strict", Key="ok")["Body"].read() == b"durable"
    finally:
        server.stop()


SHARD_CONFIG = """\
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin_port}
key_provider: { kind: local, keyring: ./shard-data/keyring.json, master_key_file: ./shard-data/master.key }
backends:
  - name: disk
    kind: fs
    path: ./shard-data/objects
tenants:
  - name: acme
    default_backend: disk
    access_keys:
      - id: SHARDKEY
        secret_env: SHARD_SECRET
    retention:
      default: 1d
"""


def test_two_sweep_shards_in_two_processes_beat_one_and_delete_the_same_set(workdir):
    """`blobseal sweep --shard I/N` on loopback: the same expired objects swept once by one process and once by
    two shard processes side by side (each held to the same deletion rate, as the config's sweeper limit holds
    every sweeper): the two shards together delete exactly what the one process deletes, and finish sooner."""
    sk = secrets.token_hex(20)
    n, rate = 240, 120  # one process: >= 2 s at 120 deletions/s; two shards: about half
    env = {"SHARD_SECRET": sk}
    server = procs.blobseal(workdir, "ops-shards", env, config=SHARD_CONFIG)
    cfg = workdir / "ops-shards.yaml"
    full_env = procs.clean_env()
    full_env.update(env)
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def fill(bucket: str) -> None:
        s3 = s3_client(server.endpoint, "SHARDKEY", sk)
        s3.create_bucket(Bucket=bucket)
        for i in range(n):
            s3.put_object(Bucket=bucket, Key=f"obj/{i:05d}", Body=b"s")

    def sweep_args(*extra: str) -> list[str]:
        return [procs.blobseal_bin(), "sweep", "--config", str(cfg), "--tenant", "acme", "--now", later,
                "--max-deletes-per-second", str(rate), *extra]

    def deleted(report: str) -> set[str]:
        lines = [json.loads(line) for line in report.splitlines() if line.strip()]
        return {(r["bucket"], r["key"]) for r in lines if r.get("result") == "deleted"}

    try:
        fill("one")
        started = time.monotonic()
        single = subprocess.run(sweep_args(), env=full_env, capture_output=True, text=True, timeout=120, cwd=workdir)
        one_process = time.monotonic() - started
        assert single.returncode == 0, single.stderr
        by_one = {k for b, k in deleted(single.stdout)}
        assert len(by_one) == n, (len(by_one), single.stderr)

        fill("two")
        started = time.monotonic()
        shards = [subprocess.Popen(sweep_args("--shard", f"{i}/2"), env=full_env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, cwd=workdir) for i in range(2)]
        outs = [p.communicate(timeout=120) for p in shards]
        two_processes = time.monotonic() - started
        assert all(p.returncode == 0 for p in shards), [e for _, e in outs]
        per_shard = [{k for b, k in deleted(out)} for out, _ in outs]
        assert per_shard[0].isdisjoint(per_shard[1]) and all(per_shard), [len(s) for s in per_shard]
        # The same set: every key of bucket "two" is deleted exactly once, as in bucket "one".
        assert per_shard[0] | per_shard[1] == by_one
        s3 = s3_client(server.endpoint, "SHARDKEY", sk)
        assert s3.list_objects_v2(Bucket="one").get("KeyCount") == 0
        assert s3.list_objects_v2(Bucket="two").get("KeyCount") == 0
        assert two_processes < one_process * 0.8, (one_process, two_processes)
        print(f"sweep of {n} objects at {rate}/s per sweeper: 1 process {one_process:.2f} s, "
              f"2 shards {two_processes:.2f} s ({two_processes / one_process:.2f}x)")
    finally:
        server.stop()
