"""rclone (Debian's 1.60, backend `azureblob`) against blobseal's Azure Blob front end.

Every test that takes `az_endpoint` runs against Azurite straight (`[azurite]`, the reference: proves that the
expectations are rclone's and Azure's, not blobseal's) and against blobseal's Azure front end (`[blobseal]`).

Two remotes, as a user would configure them:

* `key`: `account` + `key` + `endpoint`. rclone 1.60 builds the account URL as `https://<account>.<endpoint>`
  (always HTTPS, host-style; its `endpoint` option is a domain suffix, not a URL). `endpoint =
  x@127.0.0.1:<port>/<account>` turns that into user info `<account>.x`, host `127.0.0.1:<port>` and path
  `/<account>`: the path-style URL both servers serve. `port` is a TLS-terminating forwarder (tlsproxy.py, a
  fresh self-signed certificate passed with `--ca-cert`) in front of the server's plain HTTP port, as a reverse
  proxy in front of blobseal would be. Newer rclone takes `endpoint = http://127.0.0.1:<port>/<account>` as is.
* `sas`: `sas_url` of one container, a service SAS (read, add, create, write, delete, list) signed with the
  account key: plain HTTP, straight to the server.

rclone 1.60 uploads every file, even an empty one, with Put Block + Put Block List (azblob's
UploadStreamToBlockBlob), `chunk_size` bytes per block, and sends the file's MD5 as x-ms-blob-content-md5;
`rclone check` then compares it with the Content-MD5 of the listing. rclone retries 401 (and 5xx) but not 403,
which is what blobseal (like Azure) answers for a bad signature: a wrong key must fail fast.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from atrest import PlaintextIndex, stored_files
from azfront import AzEndpoint, empty_and_delete_container, new_account_key, unique_container
from procs import clean_env
from s3util import MIB, random_bytes
from tlsproxy import TlsForwarder

# Words that must never appear in the output of a command that is meant to succeed.
BAD_WORDS = ("ERROR", "corrupted", "hash differ", "hashes differ", "could not be checked", "retrying may help",
             "Failed to")

CHUNK = MIB  # rclone's --azureblob-chunk-size here: the 3 MiB file is 4 blocks


def tree_files() -> dict[str, bytes]:
    """The tree every test copies: 0 B, 1 B, 100 KiB, and 3 MiB + 5 (above the chunk size: four Put Blocks, the
    last one short)."""
    return {"empty.dat": b"", "one.bin": b"\x01", "sub/hundred-kib.bin": random_bytes(100 * 1024),
            "sub/deeper/three-mib.bin": random_bytes(3 * MIB + 5)}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


class Rclone:
    """Runs rclone with a config of its own (remotes `key` and, once `add_sas` is called, `sas`)."""

    def __init__(self, ep: AzEndpoint, tmp: Path):
        exe = shutil.which("rclone")
        if exe is None:
            pytest.fail("rclone is not installed (tests/run installs it with apt-get)")
        self.exe, self.ep, self.tmp = exe, ep, tmp
        self.tls = TlsForwarder(int(ep.host.rsplit(":", 1)[1]), tmp)
        self.conf = tmp / "rclone.conf"
        self.remotes = {"key": self.key_remote(ep.key)}
        self._write()
        # No RCLONE_* setting of the developer may change a run; no AWS_* either (clean_env).
        self.env = {k: v for k, v in clean_env().items() if not k.startswith("RCLONE_")}

    def key_remote(self, key: str) -> dict[str, str]:
        return {"type": "azureblob", "account": self.ep.account, "key": key,
                "endpoint": f"x@127.0.0.1:{self.tls.port}/{self.ep.account}",
                "chunk_size": "1M", "upload_cutoff": "1M", "upload_concurrency": "4"}

    def add_remote(self, name: str, options: dict[str, str]) -> None:
        self.remotes[name] = options
        self._write()

    def add_sas(self, container: str, name: str = "sas", sas: str | None = None) -> None:
        """Remote `name`: the SAS URL of `container` (a container SAS with r, a, c, w, d, l)."""
        if sas is None:
            sas = generate_container_sas(
                self.ep.account, container, account_key=self.ep.key,
                permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True,
                                                   list=True),
                expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        self.add_remote(name, {"type": "azureblob", "sas_url": f"{self.ep.account_url}/{container}?{sas}",
                               "chunk_size": "1M", "upload_cutoff": "1M", "upload_concurrency": "4"})

    def _write(self) -> None:
        self.conf.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in opts.items()) + "\n"
                                     for name, opts in self.remotes.items()))

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """rclone `args`; with `check`, it must exit 0 and say none of BAD_WORDS. `.output` is stdout + stderr,
        `.elapsed` the seconds it took."""
        argv = [self.exe, "--config", str(self.conf), "--ca-cert", str(self.tls.cert_path), "--retries", "1",
                "--low-level-retries", "1", "--contimeout", "10s", "--timeout", "60s", "-v", *args]
        start = time.monotonic()
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        proc.elapsed = time.monotonic() - start
        proc.output = proc.stdout + proc.stderr
        if check:
            if proc.returncode != 0:
                pytest.fail(f"rclone {' '.join(args)} exited {proc.returncode} against {self.ep.name}:\n"
                            f"{proc.output[-6000:]}")
            for word in BAD_WORDS:
                assert word not in proc.output, f"rclone {' '.join(args)} said {word!r}:\n{proc.output[-6000:]}"
        assert not self.tls.errors, self.tls.errors
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).output

    def lsjson(self, remote: str) -> dict[str, dict]:
        """Files (not directories) under `remote`, recursively, with MD5s: path -> rclone's JSON entry."""
        entries = json.loads(self.run("lsjson", "-R", "--files-only", "--hash", remote).stdout)
        return {e["Path"]: e for e in entries}

    def close(self) -> None:
        self.tls.close()


@pytest.fixture
def rclone(az_endpoint, tmp_path):
    rc = Rclone(az_endpoint, tmp_path)
    yield rc
    rc.close()


@pytest.fixture
def svc(az_endpoint):
    return az_endpoint.service()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def assert_remote_tree(rclone: Rclone, svc, remote: str, container: str, prefix: str, files: dict[str, bytes]):
    """lsjson shows every file with its plaintext size and MD5, and the blobs' own properties say the same."""
    listed = rclone.lsjson(remote)
    assert {p: e["Size"] for p, e in listed.items()} == {p: len(d) for p, d in files.items()}
    assert {p: e.get("Hashes", {}).get("md5") for p, e in listed.items()} == \
        {p: md5_hex(d) for p, d in files.items()}
    cc = svc.get_container_client(container)
    for rel, data in files.items():
        props = cc.get_blob_client(f"{prefix}{rel}").get_blob_properties()
        assert props.size == len(data), rel
        assert bytes(props.content_settings.content_md5 or b"").hex() == md5_hex(data), rel
        # rclone keeps the file's mtime as metadata (sent as X-Ms-Meta-Mtime: Go canonicalises header names;
        # metadata names are case-insensitive).
        assert "mtime" in {k.lower() for k in props.metadata}, (rel, props.metadata)
    # The 3 MiB file went up in 1 MiB blocks (Put Block x4 + Put Block List), the last one 5 bytes.
    committed, _ = cc.get_blob_client(f"{prefix}sub/deeper/three-mib.bin").get_block_list("committed")
    assert [b.size for b in committed] == [CHUNK, CHUNK, CHUNK, 5]


def assert_cat_and_copy_back(rclone: Rclone, remote: str, files: dict[str, bytes], back: Path):
    for rel in ("one.bin", "empty.dat"):
        got = subprocess.run([rclone.exe, "--config", str(rclone.conf), "--ca-cert", str(rclone.tls.cert_path),
                              "cat", f"{remote}/{rel}"], env=rclone.env, capture_output=True, timeout=60)
        assert got.returncode == 0 and got.stdout == files[rel], (rel, got.returncode, got.stderr[-2000:])
    # A range across the first block boundary of the 3 MiB file (rclone cat --offset/--count: a ranged GET).
    big = files["sub/deeper/three-mib.bin"]
    got = subprocess.run([rclone.exe, "--config", str(rclone.conf), "--ca-cert", str(rclone.tls.cert_path),
                          "cat", "--offset", str(CHUNK - 10), "--count", "30", f"{remote}/sub/deeper/three-mib.bin"],
                         env=rclone.env, capture_output=True, timeout=60)
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout == big[CHUNK - 10:CHUNK + 20]

    rclone.out("copy", remote, str(back))
    for rel, data in files.items():
        assert (back / rel).read_bytes() == data, rel
    rclone.out("check", "--download", remote, str(back))  # byte for byte, not by hash


def test_rclone_account_key_copy_check_lsjson_cat_purge(az_endpoint, rclone, svc, tmp_path):
    files = tree_files()
    src = write_tree(tmp_path / "src", files)
    container = unique_container("rcl-")
    remote = f"key:{container}/tree"
    try:
        out = rclone.out("copy", str(src), remote)  # creates the container too
        assert out.count("Copied (new)") == len(files), out
        out = rclone.out("check", str(src), remote)
        assert "Using md5 for hash comparisons" in out, out
        assert "0 differences found" in out and f"{len(files)} matching files" in out, out

        assert_remote_tree(rclone, svc, remote, container, "tree/", files)
        assert_cat_and_copy_back(rclone, remote, files, tmp_path / "back")

        # Sizes, MD5s and the mtime metadata are what rclone wrote: a second sync transfers nothing.
        again = rclone.out("sync", str(src), remote)
        assert "Copied" not in again, again
        # A container listing shows the new container; lsd of it shows the directory.
        assert container in rclone.out("lsd", "key:")
        assert "tree" in rclone.out("lsd", f"key:{container}")

        # Delete one file, then every file under sub/, then purge the container itself.
        rclone.out("deletefile", f"{remote}/one.bin")
        rclone.out("delete", f"{remote}/sub")
        assert set(rclone.lsjson(remote)) == {"empty.dat"}
        rclone.out("purge", f"key:{container}")
        with pytest.raises(ResourceNotFoundError):
            svc.get_container_client(container).get_container_properties()
    finally:
        empty_and_delete_container(svc, container)


def test_rclone_sas_url_copy_check_lsjson_cat_delete(az_endpoint, rclone, svc, tmp_path):
    files = tree_files()
    src = write_tree(tmp_path / "src", files)
    container = unique_container("rcs-")
    svc.create_container(container)  # a container SAS cannot create its container
    rclone.add_sas(container)
    remote = f"sas:{container}/tree"
    try:
        out = rclone.out("copy", str(src), remote)
        assert out.count("Copied (new)") == len(files), out
        out = rclone.out("check", str(src), remote)
        assert "0 differences found" in out and f"{len(files)} matching files" in out, out

        assert_remote_tree(rclone, svc, remote, container, "tree/", files)
        assert_cat_and_copy_back(rclone, remote, files, tmp_path / "back")
        assert "Copied" not in rclone.out("sync", str(src), remote)

        # Another directory next to it, then delete and purge (of a directory: a container SAS cannot delete
        # its container).
        rclone.out("copy", str(src / "sub"), f"sas:{container}/other")
        rclone.out("delete", remote)
        assert rclone.lsjson(remote) == {}
        rclone.out("purge", f"sas:{container}/other")
        assert [b.name for b in svc.get_container_client(container).list_blobs()] == []
        # The container is still there (purge of a directory only deletes blobs).
        svc.get_container_client(container).get_container_properties()
    finally:
        empty_and_delete_container(svc, container)


def assert_fails_fast(proc: subprocess.CompletedProcess, what: str, limit: float = 8.0) -> None:
    assert proc.returncode != 0, f"{what} succeeded:\n{proc.output[-4000:]}"
    assert proc.elapsed < limit, f"{what} took {proc.elapsed:.1f}s (403 retried?):\n{proc.output[-4000:]}"
    assert "403" in proc.output, f"{what}: no 403 in the output:\n{proc.output[-4000:]}"


def test_rclone_wrong_key_or_signature_fails_fast(az_endpoint, rclone, svc, tmp_path):
    """A wrong account key and a SAS with a wrong signature: 403 (never retried by rclone), a non-zero exit
    within seconds, and nothing written."""
    src = write_tree(tmp_path / "src", {"a.txt": b"must never arrive\n"})
    container = unique_container("rcw-")
    svc.create_container(container)
    try:
        rclone.add_remote("badkey", rclone.key_remote(new_account_key()))
        for args in (["lsjson", f"badkey:{container}"], ["copy", str(src), f"badkey:{container}/x"],
                     ["copy", str(src), f"badkey:{unique_container('rcw-')}/x"], ["lsd", "badkey:"]):
            assert_fails_fast(rclone.run(*args, check=False), f"rclone {' '.join(args)} with a wrong key")

        good = generate_container_sas(az_endpoint.account, container, account_key=az_endpoint.key,
                                      permission=ContainerSasPermissions(read=True, write=True, list=True,
                                                                         create=True, add=True, delete=True),
                                      expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        bad = generate_container_sas(az_endpoint.account, container, account_key=new_account_key(),
                                     permission=ContainerSasPermissions(read=True, write=True, list=True,
                                                                        create=True, add=True, delete=True),
                                     expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        assert good != bad
        rclone.add_sas(container, name="badsas", sas=bad)
        for args in (["lsjson", f"badsas:{container}"], ["copy", str(src), f"badsas:{container}/x"]):
            assert_fails_fast(rclone.run(*args, check=False), f"rclone {' '.join(args)} with a bad SAS")

        assert [b.name for b in svc.get_container_client(container).list_blobs()] == []
        assert not [c.name for c in svc.list_containers(name_starts_with="rcw-") if c.name != container]
    finally:
        empty_and_delete_container(svc, container)


def test_rclone_uploads_are_ciphertext_at_rest(az_blobseal, tmp_path):
    """What rclone wrote through both remotes (blocks of the 3 MiB file, the 100 KiB file) is nowhere in
    blobseal's data dir in plaintext, and still reads back."""
    rc = Rclone(az_blobseal, tmp_path)
    svc = az_blobseal.service()
    container = unique_container("rca-")
    try:
        files = tree_files()
        src = write_tree(tmp_path / "src", files)
        rc.out("copy", str(src), f"key:{container}/by-key")
        sas_files = {rel: random_bytes(len(d)) if len(d) >= 32 else d for rel, d in files.items()}
        sas_src = write_tree(tmp_path / "sas-src", sas_files)
        rc.add_sas(container)
        rc.out("copy", str(sas_src), f"sas:{container}/by-sas")
        plains = [d for d in list(files.values()) + list(sas_files.values()) if len(d) >= 32]
        index = PlaintextIndex(plains)
        stored = list(stored_files(az_blobseal.data_dir))
        assert stored, az_blobseal.data_dir
        for path, blob in stored:
            off = index.leak_offset(blob)
            assert off is None, f"plaintext found in {path} at offset {off}"
        rc.out("check", "--download", str(src), f"key:{container}/by-key")
        rc.out("check", "--download", str(sas_src), f"sas:{container}/by-sas")
    finally:
        rc.close()
        empty_and_delete_container(svc, container)


@pytest.mark.parametrize("list_version", ["1", "2"])
def test_rclone_s3_lists_what_rclone_wrote_over_azure(az_blobseal, tmp_path, list_version):
    """The tree rclone uploaded over Azure (every file a Put Block List, so every blob has a hidden block table
    `.blobseal/blocklists/…`, FORMAT.md §17) is the same tree for rclone over S3, listed in pages of 2 with
    ListObjects v1 and v2.

    The hidden keys sort before every visible key here (`.` < `t`). A v1 page that holds only hidden keys must
    still let the client go on: blobseal must not answer IsTruncated=true with no Contents and no NextMarker
    (rclone: "s3 protocol error: received listing v1 with IsTruncated set, no NextMarker and no Contents").
    """
    rc = Rclone(az_blobseal, tmp_path)
    svc = az_blobseal.service()
    container = unique_container("rcx-")
    try:
        rc.add_remote("s3", {"type": "s3", "provider": "Other", "env_auth": "false",
                             "access_key_id": az_blobseal.s3.access_key,
                             "secret_access_key": az_blobseal.s3.secret_key, "endpoint": az_blobseal.s3.endpoint,
                             "region": "us-east-1", "force_path_style": "true", "list_chunk": "2",
                             "list_version": list_version})
        files = tree_files()
        src = write_tree(tmp_path / "src", files)
        rc.out("copy", str(src), f"key:{container}/tree")
        # --use-server-modtime: rclone's azureblob and s3 backends both keep an `mtime` metadata entry, in
        # different formats (RFC 3339 and Unix seconds); the s3 backend would only grumble about the other's.
        entries = json.loads(rc.run("lsjson", "-R", "--files-only", "--use-server-modtime", f"s3:{container}").stdout)
        assert {e["Path"]: e["Size"] for e in entries} == {f"tree/{rel}": len(d) for rel, d in files.items()}
        rc.out("check", "--download", "--use-server-modtime", str(src), f"s3:{container}/tree")
    finally:
        rc.close()
        empty_and_delete_container(svc, container)
