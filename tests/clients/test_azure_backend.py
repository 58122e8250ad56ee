"""Issue 12, the Azure Blob backend against real Azurite (which checks SharedKey): what is stored there is ciphertext
under encoded names and metadata, a flipped byte is refused, backups go from an S3 tenant to Azure and from an Azure
tenant to S3 (and restore), and the sweeper and crypto-shredding work on Azure. The S3 client tests themselves
(objects, multipart, ranges, listing, copy, delete, tags, conditional create, AWS CLI, rclone) run through the
`azure` instance of the `instance` fixture.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time

import pytest

import procs
from atrest import PlaintextIndex, assert_unreadable
from instances import MOTO_KEY, MOTO_SECRET
from keyutil import expect_error, parse_json_out, run_cli
from policyutil import SweepRun, read_report, rfc3339, utcnow
from s3util import MIB, multipart_put, random_bytes, s3_client, unique_bucket

SIZES = [100, 65536 + 7, 1536 * 1024]


def _raw_blobs(azure_raw, container_prefix: str = "") -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(container, blob, bytes, metadata) of every blob Azurite holds, in containers starting with the prefix."""
    out = []
    for c in azure_raw.list_containers():
        if not c["name"].startswith(container_prefix):
            continue
        cc = azure_raw.get_container_client(c["name"])
        for b in cc.list_blobs(include=["metadata"]):
            data = cc.download_blob(b["name"]).readall()
            out.append((c["name"], b["name"], data, dict(b["metadata"] or {})))
    return out


def test_azurite_holds_only_ciphertext(bs_azure, azure_raw):
    s3 = bs_azure.client()
    bucket = unique_bucket()
    s3.create_bucket(Bucket=bucket)
    plains = [random_bytes(n) for n in SIZES]
    for i, p in enumerate(plains):
        s3.put_object(Bucket=bucket, Key=f"secret/{i}", Body=p, Metadata={"data-subject": "ann", "note": "x"})
    s3.copy_object(Bucket=bucket, Key="secret/copy", CopySource={"Bucket": bucket, "Key": "secret/2"})
    multipart_put(s3, bucket, "secret/mp", [plains[2] + random_bytes(5 * MIB), plains[1]])
    assert s3.get_object(Bucket=bucket, Key="secret/copy")["Body"].read() == plains[2]

    index = PlaintextIndex(plains)
    blobs = _raw_blobs(azure_raw)
    ours = [b for b in blobs if b[0] == "acme-" + bucket]
    assert len(ours) == len(SIZES) + 2, [b[1] for b in ours]
    for container, name, data, metadata in blobs:
        off = index.leak_offset(data)
        assert off is None, f"plaintext found in Azurite {container}/{name} at offset {off}"
        for k, v in metadata.items():
            # Metadata names are C# identifiers (Azure refuses others); values hold no plaintext.
            assert k.isidentifier(), (name, k)
            assert index.leak_offset(v.encode()) is None, (name, k)
    for _, name, data, metadata in ours:
        assert any(k.lower() == "mblobseal_2denvelope" for k in metadata), (name, metadata)
    # The check itself can fail: a blob holding plaintext is caught.
    assert index.leak_offset(b"hdr" + plains[1][500:560]) is not None


def test_a_flipped_byte_in_azure_is_refused(bs_azure, azure_raw):
    s3 = bs_azure.client()
    bucket = unique_bucket()
    s3.create_bucket(Bucket=bucket)
    data = random_bytes(200_000)
    s3.put_object(Bucket=bucket, Key="doc", Body=data)
    blob = azure_raw.get_blob_client("acme-" + bucket, "doc")
    props = blob.get_blob_properties()
    stored = bytearray(blob.download_blob().readall())
    stored[len(stored) // 2] ^= 0x01
    blob.upload_blob(bytes(stored), overwrite=True, metadata=props.metadata)
    assert_unreadable(s3, bucket, "doc")
    # A ranged read of an untouched segment still works; the tampered one does not.
    head = s3.get_object(Bucket=bucket, Key="doc", Range="bytes=0-99")["Body"].read()
    assert head == data[:100]


def test_odd_keys_and_metadata_round_trip_through_azure(bs_azure, azure_raw):
    """Names Azure refuses (trailing dot or slash, dot segments, control characters) and metadata names with
    dashes come back as sent, and list in S3's order."""
    s3 = bs_azure.client()
    bucket = unique_bucket()
    s3.create_bucket(Bucket=bucket)
    keys = ["a.", "a/", "a/./b", "dir/", "dir/x.", "tab\there", "x"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode(), Metadata={"x-custom-name": "v 1", "data_subject2": "y"})
    for k in keys:
        got = s3.get_object(Bucket=bucket, Key=k)
        assert got["Body"].read() == k.encode(), k
        assert got["Metadata"] == {"x-custom-name": "v 1", "data_subject2": "y"}, k
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys)
    names = {b.name for b in azure_raw.get_container_client("acme-" + bucket).list_blobs()}
    assert not any(n.endswith((".", "/")) for n in names), names


# ---- a deployment with an Azure tenant and an S3 tenant backing up to each other ------------------------------

CONFIG = """\
listen: "127.0.0.1:{port}"
sweeper: { interval_seconds: 0, max_deletes_per_second: 100 }
key_cache: { ttl_seconds: 1 }
key_providers:
  - { name: ring, kind: local, keyring: "@KEYRING@", master_key_file: "@KEYRING@.master" }
backends:
  - name: az
    kind: azure
    endpoint: "@AZURITE@"
    account: devstoreaccount1
    region: uksouth
    redundancy: lrs
    credentials: { account_key_env: BST_AZ_KEY }
  - name: moto
    kind: s3
    endpoint: "@MOTO@"
    region: us-east-1
    force_path_style: true
    credentials: { access_key_id_env: BST_MOTO_KEY, secret_access_key_env: BST_MOTO_SECRET }
tenants:
  - name: onaz
    default_backend: az
    bucket_prefix: "onaz-"
    key_provider: ring
    access_keys: [ { id: AKONAZ, secret_env: BST_ONAZ_SECRET } ]
    data_subjects:
      - { header: x-amz-meta-data-subject }
    backups: [ { backend: moto, bucket: bak-onaz } ]
    retention:
      default: 35d
      rules:
        - { name: calls, prefix: "calls/", keep: 28d }
  - name: ons3
    default_backend: moto
    bucket_prefix: "ons3-"
    key_provider: ring
    access_keys: [ { id: AKONS3, secret_env: BST_ONS3_SECRET } ]
    backups: [ { backend: az, bucket: bak-ons3 } ]
"""


class AzDeployment:
    """Its own Azurite and moto (the sweeper and the drift check look at every bucket of a backend) and one blobseal."""

    def __init__(self, workdir, name: str):
        self.workdir, self.name = workdir, name
        self.azurite = procs.azurite_server(workdir)
        self.moto = procs.moto_server(workdir)
        self.url = f"{self.azurite.endpoint}/{procs.AZURITE_ACCOUNT}"
        keyring = workdir / f"{name}-keys" / "keyring.json"
        self.config_text = (CONFIG.replace("@KEYRING@", str(keyring)).replace("@AZURITE@", self.url)
                            .replace("@MOTO@", self.moto.endpoint))
        self.secrets = {"onaz": secrets.token_hex(20), "ons3": secrets.token_hex(20)}
        self.env = {"BST_AZ_KEY": procs.AZURITE_KEY, "BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET,
                    "BST_ONAZ_SECRET": self.secrets["onaz"], "BST_ONS3_SECRET": self.secrets["ons3"],
                    "BLOBSEAL_DATA_DIR": str(workdir / f"{name}-data")}
        self.config_path = workdir / f"{name}-cli.yaml"
        self.config_path.write_text(self.config_text.replace("{port}", "0"))
        self.server = procs.blobseal(workdir, name, self.env, config=self.config_text)
        self.moto_raw = s3_client(self.moto.endpoint, MOTO_KEY, MOTO_SECRET)
        from azure.storage.blob import BlobServiceClient
        self.az_raw = BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={procs.AZURITE_ACCOUNT};AccountKey={procs.AZURITE_KEY};"
            f"BlobEndpoint={self.url};")

    def client(self, tenant: str):
        return s3_client(self.server.endpoint, "AK" + tenant.upper(), self.secrets[tenant])

    def cli(self, *args: str, expect_rc: int | None = 0):
        return run_cli([*args, "--config", str(self.config_path)], self.env, self.workdir, expect_rc)

    def sweep(self, *args: str) -> SweepRun:
        report = self.workdir / f"{self.name}-sweep-{secrets.token_hex(4)}.jsonl"
        proc = run_cli(["sweep", "--config", str(self.config_path), "--report", str(report), *args], self.env,
                       self.workdir, 0)
        return SweepRun(proc, read_report(report, proc))

    def az_bytes(self, container: str, blob: str) -> tuple[bytes, dict[str, str]]:
        b = self.az_raw.get_blob_client(container, blob)
        return b.download_blob().readall(), dict(b.get_blob_properties().metadata)

    def az_names(self, container: str, prefix: str = "") -> set[str]:
        try:
            return {b.name for b in self.az_raw.get_container_client(container).list_blobs(name_starts_with=prefix)}
        except Exception:  # noqa: BLE001 - a missing container holds nothing
            return set()

    def stop(self):
        self.server.stop()
        self.moto.stop()
        self.azurite.stop()


@pytest.fixture
def azdep(workdir):
    d = AzDeployment(workdir, "bs-az-" + secrets.token_hex(3))
    yield d
    d.stop()


def test_backups_between_azure_and_s3_both_ways(azdep):
    az, s3t = azdep.client("onaz"), azdep.client("ons3")
    # Bucket names are one namespace across tenants.
    azb, s3b = unique_bucket(), unique_bucket()
    az.create_bucket(Bucket=azb)
    s3t.create_bucket(Bucket=s3b)
    data = random_bytes(150_000)

    # Azure tenant → backup on S3: same ciphertext and envelope.
    az.put_object(Bucket=azb, Key="doc", Body=data, Metadata={"owner": "ops"})
    multipart_put(az, azb, "big/mp", [random_bytes(5 * MIB), b"end"])
    primary, _ = azdep.az_bytes("onaz-" + azb, "doc")
    backup = azdep.moto_raw.get_object(Bucket="bak-onaz", Key=f"{azb}/doc")["Body"].read()
    assert backup == primary and len(primary) > len(data)
    azdep.moto_raw.head_object(Bucket="bak-onaz", Key=f"{azb}/big/mp")

    # S3 tenant → backup on Azure.
    s3t.put_object(Bucket=s3b, Key="doc", Body=data, Metadata={"owner": "ops"})
    primary = azdep.moto_raw.get_object(Bucket="ons3-" + s3b, Key="doc")["Body"].read()
    backup, _ = azdep.az_bytes("bak-ons3", f"{s3b}/doc")
    assert backup == primary

    # And back: a raw copy from the Azure backup (as an independent restorer decodes it) restores the object.
    s3t.delete_object(Bucket=s3b, Key="doc")
    azdep.moto_raw.put_object(Bucket="ons3-" + s3b, Key="doc", Body=backup,
                              Metadata=_s3_metadata_of_azure_backup(azdep, "bak-ons3", f"{s3b}/doc"))
    got = s3t.get_object(Bucket=s3b, Key="doc")
    assert got["Body"].read() == data and got["Metadata"] == {"owner": "ops"}


def _s3_metadata_of_azure_backup(azdep, container: str, blob: str) -> dict[str, str]:
    """The S3 metadata an Azure-stored copy stands for: blobseal's encoded names (`m` + name, `_hh` escapes) and
    percent-encoded values, decoded as an independent restorer would (docs/DESIGN.md)."""
    from urllib.parse import unquote
    out = {}
    for name, value in azdep.az_bytes(container, blob)[1].items():
        name = name.lower()
        if not name.startswith("m"):
            continue
        raw, rest = bytearray(), name[1:]
        i = 0
        while i < len(rest):
            if rest[i] == "_":
                raw.append(int(rest[i + 1:i + 3], 16))
                i += 3
            else:
                raw.append(ord(rest[i]))
                i += 1
        out[raw.decode()] = unquote(value)
    return out


def test_sweeper_deletes_expired_objects_on_azure_and_their_backups(azdep):
    c = azdep.client("onaz")
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    for k in ("calls/a", "calls/b", "other/c"):
        c.put_object(Bucket=bucket, Key=k, Body=f"{k} body".encode())
    assert azdep.az_names("onaz-" + bucket) == {"calls/a", "calls/b", "other/c"}
    run = azdep.sweep("--tenant", "onaz", "--now", rfc3339(utcnow() + dt.timedelta(days=30)))
    assert azdep.az_names("onaz-" + bucket) == {"other/c"}, run.proc.stderr[-2000:]
    left = {o["Key"] for o in azdep.moto_raw.list_objects_v2(Bucket="bak-onaz", Prefix=f"{bucket}/").get("Contents", [])}
    assert left == {f"{bucket}/other/c"}
    expect_error(lambda: c.get_object(Bucket=bucket, Key="calls/a"), 404)
    assert c.get_object(Bucket=bucket, Key="other/c")["Body"].read() == b"other/c body"
    again = azdep.sweep("--tenant", "onaz", "--now", rfc3339(utcnow() + dt.timedelta(days=30)))
    assert not [line for line in again.lines if line["result"] == "deleted"], again.lines


def test_shredding_a_subject_on_azure(azdep):
    c = azdep.client("onaz")
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    c.put_object(Bucket=bucket, Key="ann", Body=b"ann's file", Metadata={"data-subject": "ann"})
    c.put_object(Bucket=bucket, Key="bob", Body=b"bob's file", Metadata={"data-subject": "bob"})
    out = parse_json_out(azdep.cli("shred", "--tenant", "onaz", "--subject", "ann", "--yes", "--by", "pytest").stdout)
    assert out["kind"] == "subject" and len(out["destroyed_keys"]) == 1, out
    time.sleep(1.5)  # the server's key cache (ttl 1 s) forgets the destroyed key
    expect_error(lambda: c.get_object(Bucket=bucket, Key="ann"), 403, "AccessDenied", ("destroyed", "shredded"))
    assert c.get_object(Bucket=bucket, Key="bob")["Body"].read() == b"bob's file"
    # The receipt sits in the tenant's key store, on Azure.
    assert any(n.startswith("receipts/onaz/") for n in azdep.az_names("onaz-blobseal-keys")), \
        azdep.az_names("onaz-blobseal-keys")
