"""The Azure Blob front end's integrity and key guarantees, checked on what blobseal really stores (issue 13;
docs/FORMAT.md §17): tampering with committed blobs, staged blocks and block tables on the fs backend; blocks
staged on two processes sharing one data dir; no plaintext at rest at any step (in-flight writes, staged blocks,
copies, metadata changes); data-subject keys and crypto-shredding through Azure; retention stamps and
`x-blobseal-retention-days` on Azure writes; and the same SDK operations through blobseal on an Azure backend
(Azurite), where only ciphertext must reach Azurite and no staging object must survive a commit.

Layout used (fs backend, FORMAT.md §12 and §17): each object is `<data dir>/objects/<bucket>/<hex sha256(key)>`;
a staged block is the object `.blobseal/blocks/<hex sha256(blob)>/<base64url(block id)>`, a block table
`.blobseal/blocklists/<hex sha256(blob)>/<commit id>`, named by the blob's metadata `blobseal-blocklist`. Every
test first checks that the file it edits is the object it means (the key in the file's JSON header), and edits
go through `atrest.FsObject.write`, which keeps the fs backend's own bookkeeping consistent: only blobseal's
cryptographic checks can refuse the result.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import (BlobBlock, BlobSasPermissions, BlobServiceClient, BlockState, ContentSettings,
                                generate_blob_sas)

import procs
from atrest import FsObject, PlaintextIndex, assert_raw_get_never_complete, fs_snapshot
from azfront import (CLIENT_OPTIONS, AzEndpoint, connection_string, empty_and_delete_container, new_account_key,
                     unique_container, wait_azure_port)
from keyutil import kek_id, parse_json_out, run_cli, subject_key_id
from policyutil import Clock
from s3util import MIB, SEG, TAG, Instance, random_bytes

BLOCKS = ".blobseal/blocks/"
BLOCKLISTS = ".blobseal/blocklists/"
BLOCKLIST_META = "blobseal-blocklist"
DELETE_AFTER = "blobseal-delete-after"
DELETE_AFTER_HEADER = "x-blobseal-delete-after"
RETENTION_DAYS_HEADER = "x-blobseal-retention-days"
# Three blocks of more than 64 KiB each, of different sizes, none a multiple of 64 KiB: the blob has several
# segments, the last one short, and blocks do not sit on the segment grid.
BLOCK_SIZES = (150_000, 140_003, 131_149)


# ---- helpers ---------------------------------------------------------------------------------------------------

def sha_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def code_of(err: HttpResponseError) -> str:
    code = err.error_code or (err.response.headers.get("x-ms-error-code") if err.response is not None else "") or ""
    return str(getattr(code, "value", code))


def az_fails(action, statuses=range(400, 600), *codes: str) -> HttpResponseError:
    """`action` must raise an HttpResponseError with a status in `statuses` (and one of `codes`, if given)."""
    with pytest.raises(HttpResponseError) as info:
        result = action()
        if hasattr(result, "readall"):
            result.readall()
    err = info.value
    assert err.status_code in statuses, (err.status_code, code_of(err), str(err)[:500])
    if codes:
        assert code_of(err) in codes, (err.status_code, code_of(err), str(err)[:500])
    return err


def az_unreadable(bc, **download) -> Exception:
    """A download (whole, or `offset`/`length`) of a tampered blob fails: an error status or a broken stream.
    Any complete body, whatever its bytes, is a failure."""
    try:
        got = bc.download_blob(**download).readall()
    except AssertionError:
        raise
    except Exception as err:  # noqa: BLE001 - HttpResponseError, IncompleteRead, a reset: all refusals
        return err
    pytest.fail(f"tampered blob {bc.blob_name} {download or ''} read back {len(got)} bytes")


@dataclass
class Disk:
    """The fs backend's files of one bucket."""
    data_dir: Path
    bucket: str

    @property
    def root(self) -> Path:
        return self.data_dir / "objects" / self.bucket

    def path(self, key: str) -> Path:
        return self.root / sha_hex(key)

    def obj(self, key: str) -> FsObject:
        """The object file of `key`, checked to be that object."""
        o = FsObject.read(self.path(key))
        assert o.header["key"] == key, (o.header["key"], key)
        return o

    @staticmethod
    def staged_key(blob: str, block_id: str) -> str:
        """The SDK sends a block id string as base64 of its UTF-8 bytes: these bytes are the id."""
        return f"{BLOCKS}{sha_hex(blob)}/{b64u(block_id.encode())}"

    @staticmethod
    def table_key(blob: str, commit: str) -> str:
        return f"{BLOCKLISTS}{sha_hex(blob)}/{commit}"

    def staged(self, blob: str, block_id: str) -> FsObject:
        return self.obj(self.staged_key(blob, block_id))

    def table_of(self, blob: str) -> FsObject:
        commit = self.obj(blob).metadata[BLOCKLIST_META]
        assert len(commit) == 32 and int(commit, 16) >= 0, commit
        return self.obj(self.table_key(blob, commit))

    def write_as(self, key: str, source: FsObject) -> None:
        """Store `source`'s body and metadata (ciphertext and envelope) as the object `key`: a file the fs
        backend accepts as `key`'s own (its header names `key`)."""
        FsObject(self.path(key), dict(source.header, key=key), source.body).write()

    def keys(self) -> set[str]:
        """Every object key of the bucket (hidden ones included), from the files' headers."""
        out = set()
        if not self.root.exists():
            return out
        for p in self.root.iterdir():
            if p.is_file() and len(p.name) == 64 and not p.name.startswith("."):
                out.add(FsObject.read(p).header["key"])
        return out

    def hidden(self) -> set[str]:
        return {k for k in self.keys() if k.startswith(".blobseal/")}


def is_staged_block(key: str) -> bool:
    """A staged block (left by a refused commit, invisible, as Azure keeps uncommitted blocks); not a Put Blob's
    staging object (`~<random>`), which never outlives its request."""
    return key.startswith(BLOCKS) and not key.rsplit("/", 1)[1].startswith("~")


def flip(blob: bytes, offset: int) -> bytes:
    out = bytearray(blob)
    out[offset] ^= 0x01
    return bytes(out)


def stored_len(n: int) -> int:
    """C(n) (FORMAT.md §4): each 64 KiB segment (the last one possibly short) plus a 16-byte tag."""
    return n + TAG * max(1, -(-n // SEG))


def sas_url(ep: AzEndpoint, container: str, blob: str) -> str:
    sas = generate_blob_sas(ep.account, container, blob, account_key=ep.key,
                            permission=BlobSasPermissions(read=True, write=True, create=True),
                            expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    return f"{ep.account_url}/{container}/{quote(blob)}?{sas}"


class Headers:
    """A `raw_response_hook` keeping the response headers of every request of one SDK call (lower-cased)."""

    def __init__(self):
        self.all: list[dict[str, str]] = []

    def __call__(self, response):
        self.all.append({k.lower(): v for k, v in response.http_response.headers.items()})

    @property
    def last(self) -> dict[str, str]:
        return self.all[-1]


def start_fs_endpoint(workdir: Path, name: str, *, data: Path | None = None, account: str | None = None,
                      key: str | None = None, ak: str = "BSTAZINTEGRITYKEY", sk: str | None = None,
                      extra: dict[str, str] | None = None) -> tuple[AzEndpoint, dict[str, str]]:
    """Like azfront.blobseal_fs_endpoint, with a given data dir, account, key, credentials and extra environment
    (processes started with the same of these are replicas of one deployment). Returns (endpoint, env)."""
    sk = sk or secrets.token_hex(20)
    account = account or "bsint" + secrets.token_hex(4)
    key = key or new_account_key()
    data = data or workdir / f"{name}-data"
    az_port = procs.free_port()
    env = {"BLOBSEAL_DATA_DIR": str(data), "BLOBSEAL_ACCESS_KEY_ID": ak, "BLOBSEAL_SECRET_ACCESS_KEY": sk,
           "BLOBSEAL_AZURE_LISTEN": f"127.0.0.1:{az_port}", "BLOBSEAL_AZURE_ACCOUNT": account,
           "BLOBSEAL_AZURE_ACCOUNT_KEY": key, **(extra or {})}
    server = procs.blobseal(workdir, name, env)
    wait_azure_port(server, az_port)
    s3 = Instance("fs", server.endpoint, ak, sk, data_dir=data, server=server)
    return AzEndpoint("blobseal", f"http://127.0.0.1:{az_port}", account, key, [key], s3=s3, data_dir=data,
                      server=server), env


# ---- fixtures --------------------------------------------------------------------------------------------------

@dataclass
class Fs:
    """The module's own blobseal (embedded default on fs, key cache TTL 1 s) and the environment it runs with
    (for the CLI)."""
    ep: AzEndpoint
    env: dict[str, str]
    workdir: Path


@pytest.fixture(scope="module")
def fs(workdir):
    ep, env = start_fs_endpoint(workdir, "bs-azint-fs-" + secrets.token_hex(3), extra={"BLOBSEAL_KEY_CACHE_TTL": "1"})
    yield Fs(ep, env, workdir)
    ep.server.stop()


@pytest.fixture
def cc(fs):
    """A new container on the module's blobseal."""
    svc = fs.ep.service()
    name = unique_container("azint-")
    client = svc.create_container(name)
    yield client
    empty_and_delete_container(svc, name)


@pytest.fixture
def disk(fs, cc) -> Disk:
    return Disk(fs.ep.data_dir, cc.container_name)


@dataclass
class Committed:
    """A blob committed from three staged blocks (BLOCK_SIZES), with its plaintext."""
    bc: object
    blocks: list[bytes]
    url: str

    @property
    def data(self) -> bytes:
        return b"".join(self.blocks)


def commit_three(fs, cc, name: str, sizes=BLOCK_SIZES, ids=("blk-1", "blk-2", "blk-3")) -> Committed:
    bc = cc.get_blob_client(name)
    blocks = [random_bytes(n) for n in sizes]
    for i, b in zip(ids, blocks):
        bc.stage_block(i, b)
    bc.commit_block_list(list(ids), metadata={"kind": "blocks"})
    got = bc.download_blob().readall()
    assert got == b"".join(blocks), "control: the untampered blob reads back"
    return Committed(bc, blocks, sas_url(fs.ep, cc.container_name, name))


# ---- 1a-c. tampering with a committed block blob ---------------------------------------------------------------

def test_committed_blob_layout_and_control(fs, cc, disk):
    """The control for the tamper tests: the files are where FORMAT.md §17 says, the blob is one sealed stream of
    C(sum of blocks) bytes, and rewriting it by the same means as the tampered ones changes nothing."""
    blob = commit_three(fs, cc, "multi")
    stored = disk.obj("multi")
    assert len(stored.body) == stored_len(len(blob.data)) and len(blob.data) > 6 * SEG
    table = disk.table_of("multi")
    # The block table's plaintext is 3 lines `<b64url id> <size>\n`: its ciphertext is C(that).
    text = "".join(f"{b64u(i.encode())} {n}\n" for i, n in zip(("blk-1", "blk-2", "blk-3"), BLOCK_SIZES))
    assert len(table.body) == stored_len(len(text))
    assert disk.hidden() == {table.header["key"]}, "staged blocks are gone after the commit"
    stored.write()
    table.write()
    assert blob.bc.download_blob().readall() == blob.data
    assert [(b.id, b.size) for b in blob.bc.get_block_list("committed")[0]] == \
        list(zip(("blk-1", "blk-2", "blk-3"), BLOCK_SIZES))


@pytest.mark.parametrize("where", ["first body byte", "segment in block 2", "last byte (final tag)"])
def test_committed_blob_bit_flip(fs, cc, disk, where):
    blob = commit_three(fs, cc, "flip")
    stored = disk.obj("flip")
    segment = (BLOCK_SIZES[0] + 1000) // SEG  # a segment holding bytes of block 2
    offset = {"first body byte": 0, "segment in block 2": segment * (SEG + TAG) + 777,
              "last byte (final tag)": len(stored.body) - 1}[where]
    stored.write(body=flip(stored.body, offset))
    az_unreadable(blob.bc)
    assert_raw_get_never_complete(blob.url, blob.data)
    # A range over the flipped segment is refused; a range elsewhere is either refused or exact.
    if where == "segment in block 2":
        az_unreadable(blob.bc, offset=segment * SEG + 100, length=1000)
        # With x-ms-range-get-content-md5 blobseal reads the range whole before answering: refused too.
        az_unreadable(blob.bc, offset=segment * SEG + 100, length=1000, validate_content=True)
        try:
            head = blob.bc.download_blob(offset=0, length=100).readall()
        except HttpResponseError:
            return
        assert head == blob.data[:100]


@pytest.mark.parametrize("change", ["raw truncate 1", "truncate 16", "drop last segment", "append 16"])
def test_committed_blob_length_changes(fs, cc, disk, change):
    blob = commit_three(fs, cc, "len")
    stored = disk.obj("len")
    last = len(blob.data) % SEG or SEG
    if change == "raw truncate 1":
        # The file itself cut short (header no longer matching): blobseal or the fs backend refuses it.
        raw = stored.path.read_bytes()
        stored.path.write_bytes(raw[:-1])
    else:
        body = {"truncate 16": stored.body[:-16], "drop last segment": stored.body[:-(last + TAG)],
                "append 16": stored.body + bytes(16)}[change]
        stored.write(body=body)
    az_unreadable(blob.bc)
    assert_raw_get_never_complete(blob.url, blob.data)


@pytest.mark.parametrize("what", ["body and metadata", "body only"])
def test_two_committed_blobs_swapped(fs, cc, disk, what):
    a = commit_three(fs, cc, "swap-a")
    b = commit_three(fs, cc, "swap-b")
    fa, fb = disk.obj("swap-a"), disk.obj("swap-b")
    assert len(fa.body) == len(fb.body) and fa.body != fb.body
    if what == "body and metadata":
        disk.write_as("swap-a", fb)
        disk.write_as("swap-b", fa)
    else:
        fa.write(body=fb.body)
        fb.write(body=fa.body)
    for blob in (a, b):
        az_unreadable(blob.bc)
        assert_raw_get_never_complete(blob.url, blob.data)


def test_block_blob_moved_to_another_name(fs, cc, disk):
    """A committed blob's file (ciphertext and envelope) stored under another blob's name is not that blob."""
    a = commit_three(fs, cc, "moved-a")
    b = commit_three(fs, cc, "moved-b")
    disk.write_as("moved-b", disk.obj("moved-a"))
    az_unreadable(b.bc)
    assert a.bc.download_blob().readall() == a.data


# ---- 1d. tampering with staged blocks before the commit --------------------------------------------------------

STAGED_TAMPERS = ["none (control)", "swap two blocks", "bit flip", "delete one", "drop last segment",
                  "other blob's block", "other blob's block planted"]


@pytest.mark.parametrize("before", ["no blob", "old blob"])
@pytest.mark.parametrize("tamper", STAGED_TAMPERS)
def test_tampered_staged_blocks_fail_the_commit(fs, cc, disk, tamper, before):
    name = "staged"
    bc = cc.get_blob_client(name)
    old = None
    if before == "old blob":
        old = commit_three(fs, cc, name, sizes=(70_000, 1000, 66_000), ids=("old-1", "old-2", "old-3"))
        old_list = [(b.id, b.size) for b in bc.get_block_list("committed")[0]]
    # Blocks 1 and 3 have the same size, so a swap keeps every size the commit sees.
    sizes = {"blk-1": 100_000, "blk-2": 140_003, "blk-3": 100_000}
    blocks = {i: random_bytes(n) for i, n in sizes.items()}
    ids = list(blocks)
    if tamper == "other blob's block planted":
        del blocks["blk-3"]
    for i, data in blocks.items():
        bc.stage_block(i, data)
    other = cc.get_blob_client("other")
    other.stage_block("blk-2", random_bytes(sizes["blk-2"]))
    other.stage_block("blk-3", random_bytes(sizes["blk-3"]))

    s = {i: disk.staged(name, i) for i in blocks}
    if tamper == "swap two blocks":
        disk.write_as(disk.staged_key(name, "blk-1"), s["blk-3"])
        disk.write_as(disk.staged_key(name, "blk-3"), s["blk-1"])
    elif tamper == "bit flip":
        s["blk-2"].write(body=flip(s["blk-2"].body, SEG + TAG + 5))  # in its second segment
    elif tamper == "delete one":
        s["blk-2"].path.unlink()
    elif tamper == "drop last segment":
        last = sizes["blk-2"] % SEG
        s["blk-2"].write(body=s["blk-2"].body[:-(last + TAG)])
    elif tamper == "other blob's block":
        disk.write_as(disk.staged_key(name, "blk-2"), disk.staged("other", "blk-2"))
    elif tamper == "other blob's block planted":
        disk.write_as(disk.staged_key(name, "blk-3"), disk.staged("other", "blk-3"))
        # The planted file is listed as one of the blob's staged blocks: only opening it can refuse it.
        assert "blk-3" in {b.id for b in bc.get_block_list("uncommitted")[1]}

    if tamper == "none (control)":
        bc.commit_block_list(ids, metadata={"kind": "tampered"})
        assert bc.download_blob().readall() == b"".join(blocks[i] for i in ids)
        return
    err = az_fails(lambda: bc.commit_block_list(ids, metadata={"kind": "tampered"}))
    if tamper == "delete one":
        assert (err.status_code, code_of(err)) == (400, "InvalidBlockList"), (err.status_code, code_of(err))

    if old is None:
        az_fails(bc.get_blob_properties, (404,), "BlobNotFound")
        assert name not in {b.name for b in cc.list_blobs()}
    else:
        assert bc.download_blob().readall() == old.data
        assert bc.get_blob_properties().metadata == {"kind": "blocks"}
        assert [(b.id, b.size) for b in bc.get_block_list("committed")[0]] == old_list
    # The other blob's blocks were not touched and still commit.
    other.commit_block_list(["blk-2", "blk-3"])
    assert other.get_blob_properties().size == sizes["blk-2"] + sizes["blk-3"]


def test_tampered_block_in_recommit_of_committed_blocks(fs, cc, disk):
    """A re-commit that keeps committed blocks reads them from the blob itself: a tampered blob fails it."""
    blob = commit_three(fs, cc, "recommit")
    stored = disk.obj("recommit")
    segment = (BLOCK_SIZES[0] + 1000) // SEG
    stored.write(body=flip(stored.body, segment * (SEG + TAG) + 3))
    table_before = disk.table_of("recommit").header["key"]
    az_fails(lambda: blob.bc.commit_block_list([BlobBlock("blk-2", BlockState.COMMITTED)]))
    # Nothing replaced the (tampered) blob: its table is the same one.
    assert disk.table_of("recommit").header["key"] == table_before
    az_unreadable(blob.bc)


# ---- 1e. the block table ---------------------------------------------------------------------------------------

def _two_commits(fs, cc, disk, name: str):
    """Commit [1, 2, 3], keep that table's file, re-commit the same blocks as [3, 2, 1] (same total size): returns
    (blob, new order, first table file)."""
    blob = commit_three(fs, cc, name)
    first = disk.table_of(name)
    bc = blob.bc
    bc.commit_block_list([BlobBlock(i, BlockState.COMMITTED) for i in ("blk-3", "blk-2", "blk-1")])
    data = blob.blocks[2] + blob.blocks[1] + blob.blocks[0]
    assert bc.download_blob().readall() == data
    assert [b.id for b in bc.get_block_list("committed")[0]] == ["blk-3", "blk-2", "blk-1"]
    assert not disk.path(first.header["key"]).exists(), "the older table goes with the re-commit"
    return blob, data, first


def test_block_table_replaced_by_older_commits(fs, cc, disk):
    blob, data, first = _two_commits(fs, cc, disk, "table")
    current = disk.table_of("table")
    assert len(current.body) == len(first.body)
    disk.write_as(current.header["key"], first)
    az_fails(lambda: blob.bc.get_block_list("committed"))
    az_fails(lambda: blob.bc.get_block_list("all"))
    # The blob itself is intact and reads back; a re-commit naming committed blocks needs the table: refused.
    assert blob.bc.download_blob().readall() == data
    az_fails(lambda: blob.bc.commit_block_list([BlobBlock("blk-1", BlockState.COMMITTED)]))
    assert blob.bc.download_blob().readall() == data
    # A commit of new blocks does not need the old table... but blobseal reads it first (Get Block List):
    # whatever it answers, the blob is either the new blocks or unchanged, never a mix.
    blob.bc.stage_block("new-1", b"n" * 1000)
    try:
        blob.bc.commit_block_list(["new-1"])
        assert blob.bc.download_blob().readall() == b"n" * 1000
    except HttpResponseError:
        assert blob.bc.download_blob().readall() == data


def test_block_table_of_another_blob(fs, cc, disk):
    a = commit_three(fs, cc, "tab-a")
    commit_three(fs, cc, "tab-b")
    ta, tb = disk.table_of("tab-a"), disk.table_of("tab-b")
    assert len(ta.body) == len(tb.body)
    disk.write_as(ta.header["key"], tb)
    az_fails(lambda: a.bc.get_block_list("committed"))
    assert a.bc.download_blob().readall() == a.data


def test_block_table_bit_flip_and_deletion(fs, cc, disk):
    a = commit_three(fs, cc, "tab-flip")
    t = disk.table_of("tab-flip")
    t.write(body=flip(t.body, 3))
    az_fails(lambda: a.bc.get_block_list("committed"))
    assert a.bc.download_blob().readall() == a.data
    t.path.unlink()
    az_fails(lambda: a.bc.get_block_list("committed"))
    assert a.bc.download_blob().readall() == a.data


def test_blob_pointed_at_older_table(fs, cc, disk):
    """The blob's `blobseal-blocklist` entry is authenticated: pointing it at an older commit's table (restored
    under its own name) makes the blob itself unreadable."""
    blob, data, first = _two_commits(fs, cc, disk, "pointer")
    FsObject(first.path, first.header, first.body).write()  # the old table back, under its own key
    old_commit = first.header["key"].rsplit("/", 1)[1]
    stored = disk.obj("pointer")
    stored.write(metadata=dict(stored.metadata, **{BLOCKLIST_META: old_commit}))
    az_unreadable(blob.bc)
    assert_raw_get_never_complete(blob.url, data)
    az_fails(lambda: blob.bc.get_block_list("committed"))


# ---- 1f. a blob whose envelope cannot be opened can still be removed or replaced ----------------------------

def _make_unopenable(fs, cc, disk, name: str, how: str) -> None:
    """Commit `name` from blocks, then make its envelope unopenable: its subject shredded, or (an integrity
    failure) the file of another blob stored under its name."""
    commit_three(fs, cc, name)
    if how == "subject shredded":
        subject = "gone-" + secrets.token_hex(4)
        cc.get_blob_client(name).set_blob_metadata({"data_subject": subject})
        assert kek_id(disk.obj(name).metadata) == subject_key_id("default", subject)
        run_cli(["shred", "--tenant", "default", "--subject", subject, "--yes", "--by", "pytest"], fs.env, fs.workdir)
        time.sleep(1.5)  # key cache TTL 1 s
        az_fails(lambda: cc.download_blob(name), (403,), "AuthorizationFailure")
    else:
        commit_three(fs, cc, name + "-other")
        disk.write_as(name, disk.obj(name + "-other"))
        az_unreadable(cc.get_blob_client(name))


@pytest.mark.parametrize("action", ["put blob (control)", "s3 delete (control)", "delete blob", "commit new blocks"])
@pytest.mark.parametrize("how", ["subject shredded", "envelope of another blob"])
def test_unopenable_blob_can_be_deleted_or_replaced(fs, cc, disk, how, action):
    """Deleting a blob, or replacing it with a Put Block List of newly staged blocks, needs none of its bytes or
    keys: a blob whose data key was shredded (the point of shredding is that nothing opens it any more) or whose
    envelope fails its check must still be deletable and replaceable, as it is over S3 and by Put Blob.

    blobseal bug (found here): Delete Blob and Put Block List open the current blob's envelope first (Delete Blob
    for its HEAD, Put Block List for the committed block list) and fail with 403 AuthorizationFailure (shredded)
    or 500 InternalError (integrity) instead, so an Azure client can never remove a shredded blob, nor replace a
    broken one by a chunked upload."""
    name = "unopenable"
    _make_unopenable(fs, cc, disk, name, how)
    bc = cc.get_blob_client(name)
    new = random_bytes(70_000)
    if action == "put blob (control)":
        bc.upload_blob(new, overwrite=True)
    elif action == "s3 delete (control)":
        fs.ep.s3.client().delete_object(Bucket=cc.container_name, Key=name)
        az_fails(bc.get_blob_properties, (404,), "BlobNotFound")
        return
    elif action == "delete blob":
        bc.delete_blob()
        az_fails(bc.get_blob_properties, (404,), "BlobNotFound")
        assert name not in {b.name for b in cc.list_blobs()}
        assert not [k for k in disk.hidden() if sha_hex(name) in k], disk.hidden()
        return
    else:
        bc.stage_block("new-1", new)
        bc.commit_block_list(["new-1"])
        assert [b.id for b in bc.get_block_list("committed")[0]] == ["new-1"]
    assert bc.download_blob().readall() == new


# ---- 2. blocks staged on two processes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair(workdir):
    """Two embedded-default processes sharing one data dir (so one keyring), one account and key, one S3
    credential; each with its own Azure port. Started one after the other (the first creates the keyring)."""
    data = workdir / ("bs-azint-pair-data-" + secrets.token_hex(3))
    account, key, sk = "bspair" + secrets.token_hex(4), new_account_key(), secrets.token_hex(20)
    eps = []
    try:
        for side in ("a", "b"):
            ep, _ = start_fs_endpoint(workdir, f"bs-azint-pair-{side}-" + secrets.token_hex(3), data=data,
                                      account=account, key=key, sk=sk)
            eps.append(ep)
        yield tuple(eps)
    finally:
        for ep in eps:
            ep.server.stop()


def test_blocks_staged_on_two_processes(pair):
    a, b = pair
    sa, sb = a.service(), b.service()
    name = unique_container("azpair-")
    sa.create_container(name)
    try:
        bca, bcb = sa.get_blob_client(name, "two/blob"), sb.get_blob_client(name, "two/blob")
        ids = [f"blk-{i}" for i in range(6)]
        blocks = {i: random_bytes(70_000 + 1000 * n) for n, i in enumerate(ids)}
        # Alternate blocks: even ones on A, odd ones on B, all at once.
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda kv: (bca if int(kv[0][-1]) % 2 == 0 else bcb).stage_block(*kv), blocks.items()))
        # Block 2 was staged on A; B stages it again with other bytes: the later one wins.
        blocks["blk-2"] = random_bytes(99_999)
        bcb.stage_block("blk-2", blocks["blk-2"])
        for bc in (bca, bcb):
            committed, uncommitted = bc.get_block_list("all")
            assert committed == []
            assert sorted((x.id, x.size) for x in uncommitted) == sorted((i, len(d)) for i, d in blocks.items())
        order = ["blk-5", "blk-0", "blk-2", "blk-3", "blk-1", "blk-4"]
        bcb.commit_block_list(order, metadata={"made": "on-b"})
        expected = b"".join(blocks[i] for i in order)
        assert bca.download_blob().readall() == expected
        assert bca.download_blob(offset=70_000, length=5000).readall() == expected[70_000:75_000]
        assert bca.get_blob_properties().metadata == {"made": "on-b"}
        for bc in (bca, bcb):
            committed, uncommitted = bc.get_block_list("all")
            assert [(x.id, x.size) for x in committed] == [(i, len(blocks[i])) for i in order]
            assert uncommitted == []
        # A re-commit on A of committed blocks B made, and a new block staged on B.
        blocks["blk-9"] = random_bytes(12_345)
        bcb.stage_block("blk-9", blocks["blk-9"])
        bca.commit_block_list([BlobBlock("blk-3", BlockState.COMMITTED), BlobBlock("blk-9", BlockState.UNCOMMITTED),
                               BlobBlock("blk-0", BlockState.LATEST)])
        assert bcb.download_blob().readall() == blocks["blk-3"] + blocks["blk-9"] + blocks["blk-0"]
        assert [x.id for x in bcb.get_block_list("committed")[0]] == ["blk-3", "blk-9", "blk-0"]
        # Over S3 on either process: the same object.
        assert b.s3.client().get_object(Bucket=name, Key="two/blob")["Body"].read() == \
            blocks["blk-3"] + blocks["blk-9"] + blocks["blk-0"]
    finally:
        empty_and_delete_container(sa, name)


def test_same_block_id_staged_concurrently_on_two_processes(pair):
    """Both processes stage the same block id at the same time: the commit gets one of the two versions whole,
    never a mix, and the staged list names the id once."""
    a, b = pair
    sa, sb = a.service(), b.service()
    name = unique_container("azpair-")
    sa.create_container(name)
    try:
        bca, bcb = sa.get_blob_client(name, "race"), sb.get_blob_client(name, "race")
        va, vb = random_bytes(300_000), random_bytes(300_000)
        for _ in range(3):
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda x: x[0].stage_block("blk-1", x[1]), [(bca, va), (bcb, vb)]))
            assert [x.id for x in bca.get_block_list("uncommitted")[1]] == ["blk-1"]
            bca.commit_block_list(["blk-1"])
            assert bcb.download_blob().readall() in (va, vb)
    finally:
        empty_and_delete_container(sa, name)


def test_concurrent_commits_of_one_blob_leave_a_consistent_block_list(pair):
    """Two replicas commit different block lists of one blob at the same time. Whatever wins, the blob and its
    block list must agree afterwards, and the blob must stay committable.

    blobseal bug (found here): each commit writes its table, then the blob, then deletes every table of the blob
    but its own (core::blocks `discard_blocks_except`). When commit B's blob lands after commit A's, A's clean-up
    has already deleted B's table, which B's blob names: from then on Get Block List answers 503 ServerBusy
    ("committed again while its block list was read; retry") forever, and so does every later Put Block List of
    that blob (commit reads the committed list first), until the blob is deleted or replaced by a Put Blob."""
    a, b = pair
    sa, sb = a.service(), b.service()
    name = unique_container("azpair-")
    sa.create_container(name)
    try:
        for rnd in range(10):
            blob = f"race-{rnd}"
            bca, bcb = sa.get_blob_client(name, blob), sb.get_blob_client(name, blob)
            blocks = {f"blk-{i}": random_bytes(2 * MIB) for i in range(4)}
            for i, d in blocks.items():
                bca.stage_block(i, d)
            lists = {"A": ["blk-0", "blk-1"], "B": ["blk-2", "blk-3"]}
            results: dict[str, object] = {}
            barrier = threading.Barrier(2)

            def commit(side, bc):
                barrier.wait()
                try:
                    bc.commit_block_list(lists[side])
                    results[side] = "ok"
                except HttpResponseError as err:  # a commit may lose the race (its blocks discarded by the other)
                    results[side] = (err.status_code, code_of(err))

            threads = [threading.Thread(target=commit, args=(s_, c_)) for s_, c_ in (("A", bca), ("B", bcb))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert "ok" in results.values(), results
            got = bca.download_blob().readall()
            winner = [side for side, ids in lists.items() if got == b"".join(blocks[i] for i in ids)]
            assert len(winner) == 1, f"round {rnd}: the blob is neither commit ({results})"
            try:
                listed = [x.id for x in bcb.get_block_list("committed")[0]]
            except HttpResponseError as err:
                pytest.fail(f"round {rnd}: commits {results}, blob = commit {winner[0]}, but Get Block List fails: "
                            f"{err.status_code} {code_of(err)}")
            assert listed == lists[winner[0]], (rnd, results, winner, listed)
            # And the blob can be committed again.
            bcb.stage_block("blk-9", b"again")
            bcb.commit_block_list(["blk-9"])
            assert bca.download_blob().readall() == b"again"
    finally:
        empty_and_delete_container(sa, name)


# ---- 3. no plaintext at rest -----------------------------------------------------------------------------------

def canary(n: int, token: str) -> bytes:
    """`n` bytes of a recognisable text (lines naming `token`), mixed with random bytes every few lines so that
    the 16-byte windows of different uploads differ."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += f"BLOBSEAL-CANARY {token} line {i:08d} -- plaintext must never be at rest\n".encode()
        if i % 7 == 6:
            out += os.urandom(16)
        i += 1
    return bytes(out[:n])


def assert_no_plaintext(data_dir: Path, token: str, plains: list[bytes], where: str = "") -> int:
    """No file under `data_dir` holds the token or any 32-byte window of `plains`. Returns files scanned."""
    index = PlaintextIndex(plains)
    files = fs_snapshot(data_dir)
    for path in files:
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            continue  # a temporary file gone while we looked
        assert token.encode() not in blob, f"{where}: canary token found in {path}"
        off = index.leak_offset(blob)
        assert off is None, f"{where}: plaintext found in {path} at offset {off}"
    return len(files)


def _raw_put_in_two_halves(url: str, headers: dict[str, str], body: bytes, while_half_sent) -> int:
    """PUT `body` with http.client, pausing after the first half to call `while_half_sent()`. Returns the status."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
        for k, v in {**headers, "Content-Length": str(len(body)), "x-ms-version": "2021-08-06"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        half = len(body) // 2
        conn.send(body[:half])
        while_half_sent()
        conn.send(body[half:])
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _scan_while_in_flight(data_dir: Path, bucket: str, token: str, plain: bytes) -> None:
    """Wait (bounded) for a temporary file of at least 256 KiB in the bucket's directory, then scan everything."""
    root = data_dir / "objects" / bucket
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tmp = [p for p in root.iterdir() if p.name.startswith(".tmp")] if root.exists() else []
        if any(p.exists() and p.stat().st_size >= 256 * 1024 for p in tmp):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"no temporary file of >= 256 KiB in {root} while half of a 2 MiB body was sent")
    assert_no_plaintext(data_dir, token, [plain], "in flight")


@pytest.mark.parametrize("op", ["put block", "put blob"])
def test_no_plaintext_in_files_being_written(fs, cc, op):
    token = secrets.token_hex(8)
    plain = canary(2 * MIB, token)
    name = "inflight/" + op.replace(" ", "-")
    url = sas_url(fs.ep, cc.container_name, name)
    headers = {"x-ms-blob-type": "BlockBlob"}
    if op == "put block":
        url += "&comp=block&blockid=" + quote(base64.b64encode(b"blk-1").decode())
        headers = {}
    status = _raw_put_in_two_halves(url, headers, plain,
                                    lambda: _scan_while_in_flight(fs.ep.data_dir, cc.container_name, token, plain))
    assert status == 201
    bc = cc.get_blob_client(name)
    if op == "put block":
        assert_no_plaintext(fs.ep.data_dir, token, [plain], "staged")
        bc.commit_block_list(["blk-1"])
    assert bc.download_blob().readall() == plain
    assert_no_plaintext(fs.ep.data_dir, token, [plain], "written")


def test_no_plaintext_at_rest_through_every_azure_write(fs, cc, disk):
    token = secrets.token_hex(8)
    plains: list[bytes] = []

    def new(n: int) -> bytes:
        p = canary(n, token)
        plains.append(p)
        return p

    small, big, declared = new(40_000), new(300_000), new(200_000)
    cc.upload_blob("single/small", small)  # read whole, sealed once
    cc.upload_blob("single/big", big)  # sealed into a staging object, then copied to its name
    cc.upload_blob("single/declared", declared,
                   content_settings=ContentSettings(content_md5=bytearray(hashlib.md5(declared).digest())))
    assert_no_plaintext(fs.ep.data_dir, token, plains, "single-shot")

    # Staged blocks, before any commit: stored, sealed, under the hidden names.
    bc = cc.get_blob_client("chunked/explicit")
    staged = [new(n) for n in BLOCK_SIZES]
    for i, b in enumerate(staged):
        bc.stage_block(f"blk-{i}", b)
    assert {disk.staged_key("chunked/explicit", f"blk-{i}") for i in range(3)} <= disk.hidden()
    assert_no_plaintext(fs.ep.data_dir, token, plains, "staged, before commit")
    bc.commit_block_list([f"blk-{i}" for i in range(3)])
    assert_no_plaintext(fs.ep.data_dir, token, plains, "after commit")

    sdk = new(3 * MIB + 17)
    chunky = fs.ep.service(max_single_put_size=MIB, max_block_size=MIB)
    chunky.get_blob_client(cc.container_name, "chunked/sdk").upload_blob(sdk, max_concurrency=3)
    assert_no_plaintext(fs.ep.data_dir, token, plains, "SDK chunked upload")

    cc.get_blob_client("copy/big").start_copy_from_url(cc.get_blob_client("single/big").url)
    cc.get_blob_client("copy/blocks").start_copy_from_url(bc.url, metadata={"copied": "yes"})
    assert_no_plaintext(fs.ep.data_dir, token, plains, "copies")

    for name in ("single/small", "single/big", "chunked/explicit", "chunked/sdk", "copy/big"):
        b = cc.get_blob_client(name)
        b.set_blob_metadata({"changed": "1"})
        b.set_http_headers(ContentSettings(content_type="application/x-changed", content_language="de"))
        b.set_blob_tags({"t": "1"})
    assert_no_plaintext(fs.ep.data_dir, token, plains, "metadata, headers and tags changed")

    # Everything reads back as written.
    for name, want in (("single/small", small), ("single/big", big), ("single/declared", declared),
                       ("chunked/explicit", b"".join(staged)), ("chunked/sdk", sdk), ("copy/big", big),
                       ("copy/blocks", b"".join(staged))):
        assert cc.download_blob(name).readall() == want, name
    props = cc.get_blob_client("chunked/explicit").get_blob_properties()
    assert props.metadata == {"changed": "1"} and props.content_settings.content_type == "application/x-changed"
    # No staging object survives: one block table per blob committed from blocks, nothing else hidden.
    hidden = disk.hidden()
    assert all(k.startswith(BLOCKLISTS) for k in hidden), sorted(hidden)
    assert {k.split("/")[2] for k in hidden} == {sha_hex("chunked/explicit"), sha_hex("chunked/sdk")}, sorted(hidden)
    # The scan itself can fail.
    probe = fs.workdir / f"probe-{token}"
    probe.write_bytes(b"x" * 5 + sdk[MIB:MIB + 40])
    assert PlaintextIndex(plains).leak_offset(probe.read_bytes()) is not None
    probe.unlink()


# ---- 4. data-subject keys and shredding ------------------------------------------------------------------------

def test_data_subject_metadata_and_shred(fs, cc, disk):
    ann, bob = "ann-" + secrets.token_hex(4), "bob-" + secrets.token_hex(4)
    ann_key, bob_key = subject_key_id("default", ann), subject_key_id("default", bob)
    data = {"ann/small": random_bytes(5000), "ann/big": random_bytes(200_000), "ann/chunked": random_bytes(3 * MIB + 5),
            "bob/doc": random_bytes(100_000), "plain/doc": random_bytes(70_000)}
    cc.upload_blob("ann/small", data["ann/small"], metadata={"data_subject": ann})
    cc.upload_blob("ann/big", data["ann/big"], metadata={"data_subject": ann})
    chunky = fs.ep.service(max_single_put_size=MIB, max_block_size=MIB)
    chunky.get_blob_client(cc.container_name, "ann/chunked").upload_blob(
        data["ann/chunked"], metadata={"data_subject": ann, "other": "x"}, max_concurrency=2)
    cc.upload_blob("bob/doc", data["bob/doc"], metadata={"data_subject": bob})
    cc.upload_blob("plain/doc", data["plain/doc"])
    cc.get_blob_client("ann/copy").start_copy_from_url(cc.get_blob_client("ann/big").url)
    data["ann/copy"] = data["ann/big"]

    # `x-ms-meta-data_subject` chose the subject's key (the embedded default's `data-subject` rule).
    kinds = {name: kek_id(disk.obj(name).metadata) for name in data}
    assert kinds == {"ann/small": ann_key, "ann/big": ann_key, "ann/chunked": ann_key, "ann/copy": ann_key,
                     "bob/doc": bob_key, "plain/doc": "tenant:1"}, kinds
    table = disk.table_of("ann/chunked")
    assert kek_id(table.metadata) == ann_key, "the block table is under the subject's key too"
    for name, want in data.items():
        assert cc.download_blob(name).readall() == want
        assert cc.get_blob_client(name).get_blob_properties().metadata.get("data_subject") in (ann, bob, None)

    out = parse_json_out(run_cli(["shred", "--tenant", "default", "--subject", ann, "--yes", "--by", "pytest"],
                                 fs.env, fs.workdir).stdout)
    assert out["kind"] == "subject" and out["subjects"] == [ann_key], out
    time.sleep(1.5)  # the server's key cache (TTL 1 s) forgets the destroyed key

    for name in ("ann/small", "ann/big", "ann/chunked", "ann/copy"):
        az_fails(lambda: cc.download_blob(name), (403,), "AuthorizationFailure")
        az_fails(lambda: cc.download_blob(name, offset=10, length=10), (403,), "AuthorizationFailure")
    for name in ("bob/doc", "plain/doc"):
        assert cc.download_blob(name).readall() == data[name]
    # New writes for the shredded subject are refused, by every kind of write; nothing appears.
    before = disk.keys()
    az_fails(lambda: cc.upload_blob("ann/new", b"x" * 10, metadata={"data_subject": ann}), (403,),
             "AuthorizationFailure")
    az_fails(lambda: cc.upload_blob("ann/new2", random_bytes(100_000), metadata={"data_subject": ann}), (403,),
             "AuthorizationFailure")
    nb = cc.get_blob_client("ann/new3")
    nb.stage_block("blk-1", b"y" * 1000)
    az_fails(lambda: nb.commit_block_list(["blk-1"], metadata={"data_subject": ann}), (403,), "AuthorizationFailure")
    az_fails(lambda: cc.get_blob_client("ann/copy2").start_copy_from_url(cc.get_blob_client("plain/doc").url,
                                                                        metadata={"data_subject": ann}),
             (403,), "AuthorizationFailure")
    assert {k for k in disk.keys() - before if not is_staged_block(k)} == set(), disk.keys() - before
    # Bob is untouched, and writes for him still work.
    cc.upload_blob("bob/new", b"bob again", metadata={"data_subject": bob})
    assert cc.download_blob("bob/new").readall() == b"bob again"


# ---- 5. retention through Azure --------------------------------------------------------------------------------

RETENTION_CONFIG = """\
listen: "127.0.0.1:{port}"
azure_listen: "127.0.0.1:@AZPORT@"
key_provider: { kind: local, keyring: "@DIR@-keys/keyring.json", master_key_file: "@DIR@-keys/keyring.json.master" }
backends:
  - name: disk
    kind: fs
    path: "@DIR@/objects"
tenants:
  - name: acme
    default_backend: disk
    bucket_prefix: "acme-"
    access_keys:
      - { id: BSTAZRETAK, secret_env: BST_ACME_SECRET }
    azure_account:
      name: @ACCOUNT@
      keys:
        - { key_env: BST_ACME_AZ_KEY1 }
    retention:
      default: 35d
      client_override: never
      rules:
        - { name: calls, prefix: "calls/", keep: 28d }
        - { name: flex, prefix: "flex/", keep: 10d, client_override: any }
        - { name: short, prefix: "short/", keep: 20d, client_override: shorten }
        - { name: legal, key: "legal/**", keep: keep }
buckets: []
"""


@pytest.fixture(scope="module")
def ret(workdir):
    name = "bs-azint-ret-" + secrets.token_hex(3)
    data = workdir / f"{name}-data"
    account, key = "acme" + secrets.token_hex(4), new_account_key()
    az_port = procs.free_port()
    text = (RETENTION_CONFIG.replace("@AZPORT@", str(az_port)).replace("@DIR@", str(data))
            .replace("@ACCOUNT@", account))
    server = procs.blobseal(workdir, name, {"BST_ACME_SECRET": secrets.token_hex(20), "BST_ACME_AZ_KEY1": key,
                                            "BLOBSEAL_DATA_DIR": str(data)}, config=text)
    wait_azure_port(server, az_port)
    ep = AzEndpoint("blobseal", f"http://127.0.0.1:{az_port}", account, key, [key], data_dir=data, server=server)
    yield ep
    server.stop()


@pytest.fixture
def rcc(ret):
    svc = ret.service()
    name = unique_container("azret-")
    client = svc.create_container(name)
    yield client
    empty_and_delete_container(svc, name)


def _rdisk(ret, rcc) -> Disk:
    # The tenant's bucket prefix: the container `x` is the backend directory `acme-x`.
    return Disk(ret.data_dir, "acme-" + rcc.container_name)


def _stamped(ret, rcc, name: str) -> tuple[str | None, str | None]:
    """(stored authenticated deadline, stored tag deadline) of a blob."""
    o = _rdisk(ret, rcc).obj(name)
    return o.metadata.get(DELETE_AFTER), (o.header.get("tags") or {}).get(DELETE_AFTER)


def test_azure_writes_answer_and_store_the_deadline(ret, rcc):
    writes = {
        "calls/small": lambda bc, h: bc.upload_blob(b"s" * 1000, raw_response_hook=h),
        "calls/big": lambda bc, h: bc.upload_blob(random_bytes(200_000), raw_response_hook=h),
        "calls/chunked": lambda bc, h: bc.upload_blob(random_bytes(2 * MIB + 3), raw_response_hook=h,
                                                      max_concurrency=2),
        "misc/default": lambda bc, h: bc.upload_blob(b"d" * 10, raw_response_hook=h),
    }
    chunky = ret.service(max_single_put_size=MIB, max_block_size=MIB)
    days = {"calls/small": 28, "calls/big": 28, "calls/chunked": 28, "misc/default": 35}
    for name, write in writes.items():
        h = Headers()
        with Clock() as clock:
            write(chunky.get_blob_client(rcc.container_name, name), h)
        got = h.last.get(DELETE_AFTER_HEADER)
        assert got in clock.deadlines(days[name]), (name, got, clock.deadlines(days[name]))
        assert _stamped(ret, rcc, name) == (got, got), name
        # Read back: the same deadline on HEAD and GET.
        h2 = Headers()
        rcc.get_blob_client(name).get_blob_properties(raw_response_hook=h2)
        rcc.download_blob(name, raw_response_hook=h2).readall()
        assert {x.get(DELETE_AFTER_HEADER) for x in h2.all} == {got}, name
        # Blob tags never show blobseal's own tag, and setting tags keeps it.
        rcc.get_blob_client(name).set_blob_tags({"a": "1"})
        assert rcc.get_blob_client(name).get_blob_tags() == {"a": "1"}
        assert _stamped(ret, rcc, name) == (got, got), name

    # Keep: no deadline anywhere.
    h = Headers()
    rcc.get_blob_client("legal/x").upload_blob(b"keep me", raw_response_hook=h)
    assert DELETE_AFTER_HEADER not in h.last
    assert _stamped(ret, rcc, "legal/x") == (None, None)

    # A copy is a new write: the destination's rule decides.
    h = Headers()
    with Clock() as clock:
        rcc.get_blob_client("calls/copied").start_copy_from_url(rcc.get_blob_client("misc/default").url,
                                                               raw_response_hook=h)
    assert h.last.get(DELETE_AFTER_HEADER) in clock.deadlines(28)
    assert _stamped(ret, rcc, "calls/copied")[0] == h.last.get(DELETE_AFTER_HEADER)
    h = Headers()
    rcc.get_blob_client("legal/copied").start_copy_from_url(rcc.get_blob_client("calls/small").url,
                                                            raw_response_hook=h)
    assert DELETE_AFTER_HEADER not in h.last and _stamped(ret, rcc, "legal/copied") == (None, None)


def test_metadata_and_header_changes_keep_the_deadline(ret, rcc):
    bc = rcc.get_blob_client("calls/kept")
    h = Headers()
    bc.upload_blob(random_bytes(100_000), raw_response_hook=h)
    deadline = h.last[DELETE_AFTER_HEADER]
    bc.set_blob_metadata({"x": "1"})
    bc.set_http_headers(ContentSettings(content_type="text/x-kept"))
    assert _stamped(ret, rcc, "calls/kept") == (deadline, deadline)
    h = Headers()
    props = bc.get_blob_properties(raw_response_hook=h)
    assert h.last.get(DELETE_AFTER_HEADER) == deadline
    assert props.metadata == {"x": "1"} and props.content_settings.content_type == "text/x-kept"


def _with_days(days: str) -> dict:
    return {"headers": {RETENTION_DAYS_HEADER: days}}


def test_client_retention_request_honoured_where_the_rule_allows(ret, rcc):
    chunky = ret.service(max_single_put_size=MIB, max_block_size=MIB)
    cases = [  # (name, days asked, uploader, expected days)
        ("flex/small", "3", "small", 3), ("flex/big", "400", "big", 400), ("flex/chunked", "2", "chunked", 2),
        ("short/small", "5", "small", 5), ("short/chunked", "19", "chunked", 19),
    ]
    for name, days, how, want in cases:
        bc = chunky.get_blob_client(rcc.container_name, name)
        body = {"small": b"x" * 100, "big": random_bytes(150_000), "chunked": random_bytes(MIB + MIB // 2)}[how]
        h = Headers()
        with Clock() as clock:
            bc.upload_blob(body, raw_response_hook=h, **_with_days(days))
        got = h.last.get(DELETE_AFTER_HEADER)
        assert got in clock.deadlines(want), (name, got, clock.deadlines(want))
        assert _stamped(ret, rcc, name) == (got, got), name
        assert bc.download_blob().readall() == body


def test_client_retention_request_refused_where_the_rule_forbids(ret, rcc):
    chunky = ret.service(max_single_put_size=MIB, max_block_size=MIB)
    disk = _rdisk(ret, rcc)
    cases = [("calls/small", "3", "small"), ("calls/big", "3", "big"), ("calls/chunked", "3", "chunked"),
             ("misc/x", "100", "small"), ("short/longer", "25", "big"), ("short/chunked", "300", "chunked"),
             ("legal/x", "5", "small")]
    for name, days, how in cases:
        bc = chunky.get_blob_client(rcc.container_name, name)
        body = {"small": b"x" * 100, "big": random_bytes(150_000), "chunked": random_bytes(MIB + MIB // 2)}[how]
        az_fails(lambda: bc.upload_blob(body, **_with_days(days)), (403,), "AuthorizationFailure")
        az_fails(bc.get_blob_properties, (404,), "BlobNotFound")
    # Neither blob nor staging object was left (staged blocks of a refused commit may stay: invisible).
    assert {k for k in disk.keys() if not is_staged_block(k)} == set(), disk.keys()
    # Malformed requests are refused as such.
    for bad in ("0", "abc", "-1", "36501"):
        az_fails(lambda: rcc.get_blob_client("flex/bad").upload_blob(b"x", **_with_days(bad)), (400,),
                 "InvalidHeaderValue")


def test_copy_blob_retention_request_refused_or_honoured(ret, rcc):
    """Copy Blob is a new write: `x-blobseal-retention-days` is honoured where the destination's rule allows and
    refused where it does not, whether or not the copy also sets metadata."""
    src = rcc.get_blob_client("misc/src")
    src.upload_blob(b"copy source")
    for meta in ({}, {"m": "1"}):
        dst = rcc.get_blob_client(f"calls/copy-{len(meta)}")
        az_fails(lambda: dst.start_copy_from_url(src.url, metadata=meta or None, **_with_days("3")), (403,),
                 "AuthorizationFailure")
        az_fails(dst.get_blob_properties, (404,), "BlobNotFound")
        dst = rcc.get_blob_client(f"flex/copy-{len(meta)}")
        h = Headers()
        with Clock() as clock:
            dst.start_copy_from_url(src.url, metadata=meta or None, raw_response_hook=h, **_with_days("4"))
        assert h.last.get(DELETE_AFTER_HEADER) in clock.deadlines(4), (meta, h.last.get(DELETE_AFTER_HEADER))


# ---- 6. Azure in, Azure out: blobseal's Azure front end on an Azure (Azurite) backend -------------------------

AZ_BACKEND_CONFIG = """\
listen: "127.0.0.1:{port}"
azure_listen: "127.0.0.1:@AZPORT@"
key_provider: { kind: local, keyring: "@KEYS@/keyring.json", master_key_file: "@KEYS@/keyring.json.master" }
backends:
  - name: azure
    kind: azure
    endpoint: "@URL@"
    account: devstoreaccount1
    region: uksouth
    redundancy: lrs
    credentials:
      account_key_env: BST_AZ_KEY
tenants:
  - name: acme
    default_backend: azure
    bucket_prefix: "acme-"
    access_keys:
      - { id: BSTAZAZAK, secret_env: BST_ACME_SECRET }
    azure_account:
      name: @ACCOUNT@
      keys:
        - { key_env: BST_ACME_AZ_KEY1 }
buckets: []
"""


@dataclass
class AzAz:
    ep: AzEndpoint
    raw: BlobServiceClient  # straight to Azurite: what is really stored
    azurite: procs.Server


@pytest.fixture(scope="module")
def azaz(workdir):
    """Its own Azurite (nothing else's containers in it) and a blobseal whose backend it is, with azure_listen."""
    azurite = procs.azurite_server(workdir)
    server = None
    try:
        url = f"{azurite.endpoint}/{procs.AZURITE_ACCOUNT}"
        name = "bs-azint-azaz-" + secrets.token_hex(3)
        account, key = "azaz" + secrets.token_hex(4), new_account_key()
        az_port = procs.free_port()
        text = (AZ_BACKEND_CONFIG.replace("@AZPORT@", str(az_port)).replace("@KEYS@", str(workdir / f"{name}-keys"))
                .replace("@URL@", url).replace("@ACCOUNT@", account))
        env = {"BST_AZ_KEY": procs.AZURITE_KEY, "BST_ACME_SECRET": secrets.token_hex(20), "BST_ACME_AZ_KEY1": key,
               "BLOBSEAL_DATA_DIR": str(workdir / f"{name}-data")}
        server = procs.blobseal(workdir, name, env, config=text)
        wait_azure_port(server, az_port)
        ep = AzEndpoint("blobseal", f"http://127.0.0.1:{az_port}", account, key, [key], server=server)
        raw = BlobServiceClient.from_connection_string(
            connection_string(azurite.endpoint, procs.AZURITE_ACCOUNT, procs.AZURITE_KEY), **CLIENT_OPTIONS)
        yield AzAz(ep, raw, azurite)
    finally:
        if server is not None:
            server.stop()
        azurite.stop()


def _raw_blobs(raw: BlobServiceClient, container: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    cc = raw.get_container_client(container)
    return {b.name: (cc.download_blob(b.name).readall(), dict(b.metadata or {}))
            for b in cc.list_blobs(include=["metadata"])}


def test_azure_sdk_through_blobseal_on_an_azure_backend(azaz):
    svc = azaz.ep.service()
    chunky = azaz.ep.service(max_single_put_size=MIB, max_block_size=MIB)
    name = unique_container("azaz-")
    cc = svc.create_container(name, metadata={"owner": "ops"})
    token = secrets.token_hex(8)
    try:
        small, big, sdk = canary(30_000, token), canary(300_000, token + "b"), canary(3 * MIB + 11, token + "c")
        blocks = [canary(n, token + f"k{n}") for n in BLOCK_SIZES]
        cc.upload_blob("dir/small", small, metadata={"a": "1"},
                       content_settings=ContentSettings(content_type="text/x-small"))
        cc.upload_blob("dir/big", big)  # staged in `.blobseal/blocks/…/~R` on Azure, then copied
        chunky.get_blob_client(name, "dir/sdk").upload_blob(sdk, max_concurrency=3, metadata={"kind": "sdk"})
        bc = cc.get_blob_client("dir/blocks")
        for i, b in enumerate(blocks):
            bc.stage_block(f"blk-{i}", b)
        # Staged, before the commit: on Azurite, as ciphertext under blobseal's hidden names.
        staged_raw = _raw_blobs(azaz.raw, "acme-" + name)
        staged_names = [n for n in staged_raw if n.startswith(BLOCKS + sha_hex("dir/blocks") + "/")]
        assert len(staged_names) == 3, sorted(staged_raw)
        bc.commit_block_list(["blk-2", "blk-0", "blk-1"], metadata={"kind": "blocks"})
        joined = blocks[2] + blocks[0] + blocks[1]
        cc.get_blob_client("copy/big").start_copy_from_url(cc.get_blob_client("dir/big").url)
        plains = {"dir/small": small, "dir/big": big, "dir/sdk": sdk, "dir/blocks": joined, "copy/big": big}

        # Read back: whole, ranged (across a segment and a block boundary), properties, listing, metadata, tags.
        for n, want in plains.items():
            assert cc.download_blob(n).readall() == want, n
            if len(want) > SEG + 20_000:
                assert cc.download_blob(n, offset=SEG - 10, length=20_000).readall() == want[SEG - 10:SEG + 19_990], n
            assert cc.download_blob(n, offset=len(want) - 7).readall() == want[-7:], n
        assert cc.download_blob("dir/blocks", offset=BLOCK_SIZES[2] - 5, length=10).readall() == \
            joined[BLOCK_SIZES[2] - 5:BLOCK_SIZES[2] + 5]
        p = cc.get_blob_client("dir/small").get_blob_properties()
        assert p.size == len(small) and p.metadata == {"a": "1"} and p.content_settings.content_type == "text/x-small"
        assert [b.name for b in cc.list_blobs()] == sorted(plains)
        assert {b.name: b.size for b in cc.list_blobs(name_starts_with="dir/")} == \
            {n: len(v) for n, v in plains.items() if n.startswith("dir/")}
        assert {b.name: b.metadata for b in cc.list_blobs(include=["metadata"], name_starts_with="dir/s")} == \
            {"dir/small": {"a": "1"}, "dir/sdk": {"kind": "sdk"}}
        assert [(x.id, x.size) for x in bc.get_block_list("committed")[0]] == \
            [("blk-2", BLOCK_SIZES[2]), ("blk-0", BLOCK_SIZES[0]), ("blk-1", BLOCK_SIZES[1])]
        cc.get_blob_client("dir/big").set_blob_metadata({"m": "2"})
        cc.get_blob_client("dir/big").set_blob_tags({"t": "v"})
        assert cc.get_blob_client("dir/big").get_blob_properties().metadata == {"m": "2"}
        assert cc.get_blob_client("dir/big").get_blob_tags() == {"t": "v"}
        assert cc.download_blob("dir/big").readall() == big
        assert cc.get_container_properties().metadata == {"owner": "ops"}

        # What Azurite holds: only ciphertext (no plaintext window, no canary, no plaintext metadata values) and,
        # besides the blobs, one block table per blob committed from blocks: no staging object is left.
        stored = _raw_blobs(azaz.raw, "acme-" + name)
        index = PlaintextIndex(list(plains.values()) + blocks)
        for n, (body, meta) in stored.items():
            assert token.encode() not in body, n
            assert index.leak_offset(body) is None, f"plaintext in Azurite blob {n}"
            for k, v in meta.items():
                assert token not in v and index.leak_offset(v.encode()) is None, (n, k)
        visible = {n for n in stored if not n.startswith(".blobseal/")}
        hidden = {n for n in stored if n.startswith(".blobseal/")}
        assert visible == set(plains), sorted(stored)
        assert not [n for n in hidden if n.startswith(BLOCKS)], sorted(hidden)
        assert sorted(n.split("/")[2] for n in hidden if n.startswith(BLOCKLISTS)) == \
            sorted([sha_hex("dir/blocks"), sha_hex("dir/sdk")]), sorted(hidden)
        assert hidden <= {n for n in hidden if n.startswith(BLOCKLISTS)} | {".blobseal/container-metadata"}, \
            sorted(hidden)
        for n in plains:
            assert len(stored[n][0]) == stored_len(len(plains[n])), n

        # A flipped byte on Azurite is refused through the Azure front end.
        rb = azaz.raw.get_blob_client("acme-" + name, "dir/blocks")
        meta = rb.get_blob_properties().metadata
        body = bytearray(stored["dir/blocks"][0])
        body[len(body) // 2] ^= 1
        rb.upload_blob(bytes(body), overwrite=True, metadata=meta)
        az_unreadable(bc)

        # Delete: blob and its table go.
        cc.delete_blob("dir/sdk")
        assert not [n for n in _raw_blobs(azaz.raw, "acme-" + name)
                    if n == "dir/sdk" or n.startswith(BLOCKLISTS + sha_hex("dir/sdk"))]
    finally:
        empty_and_delete_container(svc, name)
