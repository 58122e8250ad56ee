"""blobseal's Azure Blob REST front end, driven by the official Python SDK (azure-storage-blob).

Every test that takes `az_endpoint` runs twice: against Azurite straight (`[azurite]`, the reference: it proves
that the test's expectations are what the SDK and Azure's protocol give) and against blobseal's Azure front end
(`[blobseal]`, the embedded default on fs with BLOBSEAL_AZURE_LISTEN/_ACCOUNT/_ACCOUNT_KEY). Tests that take
`az_blobseal` run on blobseal only: ciphertext at rest, the same buckets over S3, and the clean refusal of what
blobseal does not serve (append and page blobs, leases, snapshots), all of which Azurite cannot show.

Run the reference half alone with `-k azurite` (or BLOBSEAL_AZFRONT_ENDPOINTS=azurite); `-k blobseal` for the other.

Where Azurite answers differently from Azure (error codes of authentication failures, Content-MD5 mismatch), the
blobseal expectation follows Azure's documented behaviour and the Azurite one what Azurite 3.35 does: see
`auth_failed_codes` and `md5_mismatch_codes`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (AccountSasPermissions, BlobBlock, BlobClient, BlobPrefix, BlobSasPermissions,
                                BlobType, BlockState, ContainerClient, ContainerSasPermissions, ContentSettings,
                                ResourceTypes, generate_account_sas, generate_blob_sas, generate_container_sas)

from atrest import PlaintextIndex, stored_files
from azfront import AzEndpoint, blobseal_yaml_endpoint, empty_and_delete_container, new_account_key, unique_container
from s3util import MIB, random_bytes

UTC = dt.timezone.utc


# ---- helpers ---------------------------------------------------------------------------------------------------

def code_of(err: HttpResponseError) -> str:
    """The Azure error code of an SDK error (`x-ms-error-code` or the XML `<Code>`), as a plain string."""
    code = err.error_code or err.response.headers.get("x-ms-error-code") or ""
    return str(getattr(code, "value", code))


def az_error(action, status, *codes: str) -> HttpResponseError:
    """Run `action` (reading a downloader to its end); it must raise an HttpResponseError with `status` (one
    status or a tuple) and, when `codes` are given, one of those Azure error codes."""
    with pytest.raises(HttpResponseError) as info:
        result = action()
        if hasattr(result, "readall"):
            result.readall()
    err = info.value
    statuses = status if isinstance(status, tuple) else (status,)
    assert err.status_code in statuses, (err.status_code, code_of(err), str(err)[:500])
    if codes:
        assert code_of(err) in codes, (err.status_code, code_of(err), str(err)[:500])
    return err


def auth_failed_codes(ep: AzEndpoint) -> tuple[str, ...]:
    """The code of a 403 for a bad signature, an expired SAS or a SAS for another resource. Azure answers
    AuthenticationFailed; Azurite 3.35 answers AuthorizationFailure (Azurite-specific)."""
    return ("AuthenticationFailed",) if ep.is_blobseal else ("AuthorizationFailure", "AuthenticationFailed")


def md5_mismatch_codes(ep: AzEndpoint) -> tuple[str, ...]:
    """The code of a 400 for a Content-MD5 that does not match the body. Azure answers Md5Mismatch; Azurite 3.35
    answers InvalidOperation ("Provided contentMD5 doesn't match.", Azurite-specific)."""
    return ("Md5Mismatch",) if ep.is_blobseal else ("InvalidOperation", "Md5Mismatch")


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def b64md5(data: bytes) -> str:
    return base64.b64encode(md5(data)).decode()


def later(hours: float = 1) -> dt.datetime:
    return dt.datetime.now(UTC) + dt.timedelta(hours=hours)


class RequestLog:
    """A `raw_request_hook` recording (method, query, range header) of every request a client sends."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []

    def __call__(self, pipeline_request):
        req = pipeline_request.http_request
        ranged = req.headers.get("x-ms-range") or req.headers.get("Range")
        entry = (req.method, parse_qs(urlsplit(req.url).query), ranged)
        with self.lock:
            self.requests.append(entry)

    def count(self, method: str, comp: str | None = None, ranged: bool | None = None) -> int:
        return sum(1 for m, q, r in self.requests if m == method and (comp is None or q.get("comp") == [comp])
                   and (ranged is None or (r is not None) == ranged))


# ---- fixtures --------------------------------------------------------------------------------------------------

@pytest.fixture
def svc(az_endpoint):
    """A SharedKey BlobServiceClient (from the connection string) for the endpoint under test."""
    return az_endpoint.service()


def _new_container(svc):
    name = unique_container()
    cc = svc.create_container(name)
    yield cc
    empty_and_delete_container(svc, name)


@pytest.fixture
def container(svc):
    """A new, empty container (on blobseal: a new bucket of the tenant), emptied and deleted afterwards."""
    yield from _new_container(svc)


@pytest.fixture
def bs_svc(az_blobseal):
    """`svc` for the blobseal-only tests."""
    return az_blobseal.service()


@pytest.fixture
def bs_container(bs_svc):
    """`container` for the blobseal-only tests."""
    yield from _new_container(bs_svc)


# ---- 1. containers ---------------------------------------------------------------------------------------------

def test_container_create_properties_metadata_delete(svc):
    name = unique_container()
    cc = svc.create_container(name, metadata={"owner": "ops", "purpose": "tests"})
    try:
        props = cc.get_container_properties()
        assert props.name == name
        assert props.metadata == {"owner": "ops", "purpose": "tests"}
        assert props.etag and props.last_modified

        cc.set_container_metadata({"owner": "dev"})  # replaces the whole set
        assert cc.get_container_properties().metadata == {"owner": "dev"}

        err = az_error(lambda: svc.create_container(name), 409, "ContainerAlreadyExists")
        assert isinstance(err, ResourceExistsError)
        assert cc.get_container_properties().metadata == {"owner": "dev"}  # the refused create changed nothing
    finally:
        cc.delete_container()

    err = az_error(cc.get_container_properties, 404, "ContainerNotFound")
    assert isinstance(err, ResourceNotFoundError)
    az_error(cc.delete_container, 404, "ContainerNotFound")
    # A blob in a missing container: the container is what is missing.
    az_error(lambda: cc.upload_blob("x", b"data"), 404, "ContainerNotFound")
    az_error(lambda: cc.download_blob("x"), 404, "ContainerNotFound", "BlobNotFound")
    az_error(lambda: list(cc.list_blobs()), 404, "ContainerNotFound")


def test_invalid_container_names_refused(svc):
    """Azure's container names: 3-63 of a-z 0-9 and single dashes inside. Some are valid S3 bucket names (dots)."""
    for name in ("ab", "x" * 64):
        az_error(lambda: svc.create_container(name), 400, "OutOfRangeInput")
    for name in ("Upper-case", "a--b", "-abc", "abc-", "a.b.c", "a_b"):
        az_error(lambda: svc.create_container(name), 400, "InvalidResourceName")
    assert [c.name for c in svc.list_containers(name_starts_with="a.b")] == []


def test_delete_container_with_blobs(svc):
    """Azure deletes a container with everything in it (no "not empty" error as in S3)."""
    name = unique_container()
    cc = svc.create_container(name)
    try:
        cc.upload_blob("one", b"1")
        cc.upload_blob("dir/two", b"2")
        cc.get_blob_client("staged").stage_block("blk-1", b"3")
        cc.delete_container()
        az_error(cc.get_container_properties, 404, "ContainerNotFound")
        # A new container of the same name starts empty. (Azure may refuse the name for a while with 409
        # ContainerBeingDeleted; neither Azurite nor blobseal do.)
        svc.create_container(name)
        assert list(cc.list_blobs()) == []
    finally:
        empty_and_delete_container(svc, name)


def test_list_containers_prefix_paging_metadata(svc):
    prefix = "azl" + uuid.uuid4().hex[:10] + "-"
    names = [f"{prefix}{i}" for i in range(5)]
    for i, n in enumerate(names):
        svc.create_container(n, metadata={"idx": str(i)})
    other = svc.create_container(prefix[:-1] + "x-other")  # shares a shorter prefix only
    try:
        pages = [list(p) for p in svc.list_containers(name_starts_with=prefix, include_metadata=True,
                                                      results_per_page=2).by_page()]
        assert [len(p) for p in pages] == [2, 2, 1]
        listed = [c.name for p in pages for c in p]
        assert listed == names  # lexical order
        assert [c.metadata for p in pages for c in p] == [{"idx": str(i)} for i in range(5)]

        # Resuming from a continuation token gives the rest, once.
        it = svc.list_containers(name_starts_with=prefix, results_per_page=2).by_page()
        first = [c.name for c in next(it)]
        token = it.continuation_token
        assert first == names[:2] and token
        rest = [c.name for p in svc.list_containers(name_starts_with=prefix, results_per_page=2)
                .by_page(continuation_token=token) for c in p]
        assert rest == names[2:]

        # Without a prefix the whole account lists, ours among them.
        everything = {c.name for c in svc.list_containers()}
        assert set(names) | {other.container_name} <= everything
    finally:
        for n in names:
            svc.delete_container(n)
        other.delete_container()
    assert [c.name for c in svc.list_containers(name_starts_with=prefix)] == []


# ---- 2. single-shot blobs --------------------------------------------------------------------------------------

def test_upload_download_properties(az_endpoint, container):
    data = random_bytes(1000)
    bc = container.get_blob_client("docs/report.bin")
    settings = ContentSettings(content_type="application/x-report", content_disposition='attachment; filename="r.bin"',
                               cache_control="max-age=60", content_language="en-GB")
    before = dt.datetime.now(UTC)
    up = bc.upload_blob(data, metadata={"owner": "ops", "Case": "Mixed"}, content_settings=settings)
    assert up["etag"] and up["last_modified"]
    if az_endpoint.is_blobseal:
        # x-ms-request-server-encrypted: Azure sends it on writes; Azurite 3.35 does not.
        assert up["request_server_encrypted"] is True

    assert bc.download_blob().readall() == data
    props = bc.get_blob_properties()
    assert props.size == len(data)  # the plaintext length, whatever is stored
    assert props.blob_type == BlobType.BLOCKBLOB
    assert props.etag == up["etag"]
    assert props.content_settings.content_type == "application/x-report"
    assert props.content_settings.content_disposition == 'attachment; filename="r.bin"'
    assert props.content_settings.cache_control == "max-age=60"
    assert props.content_settings.content_language == "en-GB"
    assert bytes(props.content_settings.content_md5) == md5(data)
    assert {k.lower(): v for k, v in props.metadata.items()} == {"owner": "ops", "case": "Mixed"}
    assert props.creation_time is not None
    assert abs((props.creation_time - before).total_seconds()) < 300
    assert props.server_encrypted is True

    # The downloader carries the same properties.
    dl = bc.download_blob()
    assert dl.size == len(data) and dl.properties.content_settings.content_type == "application/x-report"
    assert dl.readall() == data


def test_ranges(az_endpoint, container):
    data = random_bytes(200_000)  # several of blobseal's 64 KiB segments
    bc = container.get_blob_client("ranged")
    bc.upload_blob(data)
    assert bc.download_blob(offset=100, length=50).readall() == data[100:150]
    assert bc.download_blob(offset=65530, length=20).readall() == data[65530:65550]  # across a segment boundary
    assert bc.download_blob(offset=150_000).readall() == data[150_000:]
    assert bc.download_blob(offset=199_990, length=100).readall() == data[199_990:]  # clamped at the end
    assert bc.download_blob(offset=0, length=1).readall() == data[:1]
    az_error(lambda: bc.download_blob(offset=500_000, length=10), 416, "InvalidRange")
    az_error(lambda: bc.download_blob(offset=200_001, length=10), 416, "InvalidRange")
    if az_endpoint.is_blobseal:
        # A range starting exactly at the end: Azure answers 416 InvalidRange. Azurite 3.35 answers 206 with
        # `Content-Range: bytes 200000-199999/200000` and no body (Azurite-specific), so only blobseal is held to it.
        az_error(lambda: bc.download_blob(offset=200_000, length=10), 416, "InvalidRange")


def test_empty_blob(container):
    bc = container.get_blob_client("empty")
    bc.upload_blob(b"")
    assert bc.download_blob().readall() == b""
    props = bc.get_blob_properties()
    assert props.size == 0 and props.blob_type == BlobType.BLOCKBLOB
    assert bytes(props.content_settings.content_md5) == md5(b"")
    # A range of an empty blob is not satisfiable (the SDK only retries without a range when none was asked).
    az_error(lambda: bc.download_blob(offset=0, length=10), 416, "InvalidRange")


def test_overwrite_rules(container):
    bc = container.get_blob_client("once")
    first = bc.upload_blob(b"first version", overwrite=False)
    err = az_error(lambda: bc.upload_blob(b"second version", overwrite=False), 409, "BlobAlreadyExists")
    assert isinstance(err, ResourceExistsError)
    assert bc.download_blob().readall() == b"first version"
    second = bc.upload_blob(b"second version", overwrite=True)
    assert second["etag"] != first["etag"]
    assert bc.download_blob().readall() == b"second version"
    assert bc.get_blob_properties().size == len(b"second version")


def test_set_metadata_and_http_headers(container):
    data = random_bytes(5000)
    bc = container.get_blob_client("props")
    bc.upload_blob(data, metadata={"a": "1", "b": "2"}, content_settings=ContentSettings(content_type="text/csv"))
    etag0 = bc.get_blob_properties().etag

    bc.set_blob_metadata({"c": "3"})  # replaces
    props = bc.get_blob_properties()
    assert props.metadata == {"c": "3"}
    assert props.content_settings.content_type == "text/csv"
    assert props.etag != etag0

    bc.set_http_headers(ContentSettings(content_type="text/plain", cache_control="no-cache",
                                        content_disposition="inline", content_language="fr"))
    props = bc.get_blob_properties()
    assert props.content_settings.content_type == "text/plain"
    assert props.content_settings.cache_control == "no-cache"
    assert props.content_settings.content_disposition == "inline"
    assert props.content_settings.content_language == "fr"
    assert props.metadata == {"c": "3"}
    assert props.size == len(data)
    assert bc.download_blob().readall() == data

    bc.set_blob_metadata({})  # clears
    assert bc.get_blob_properties().metadata == {}


def test_delete_and_missing_blob(container):
    bc = container.get_blob_client("gone")
    bc.upload_blob(b"soon gone")
    bc.delete_blob()
    err = az_error(bc.download_blob, 404, "BlobNotFound")
    assert isinstance(err, ResourceNotFoundError)
    assert b"soon gone" not in (err.response.text() or "").encode()
    az_error(bc.get_blob_properties, 404, "BlobNotFound")
    az_error(bc.delete_blob, 404, "BlobNotFound")
    assert not bc.exists()
    assert container.get_blob_client("never-was").exists() is False


def test_odd_blob_names_round_trip(container):
    names = ["sp ace.txt", "ünï/cödé.bin", "pct%41%2F", "q?x=1&y", "hash#frag", "a+b=c", "dir//double", "~tilde",
             "quote'\"", "semi;colon,comma"]
    for n in names:
        container.upload_blob(n, n.encode())
    for n in names:
        assert container.download_blob(n).readall() == n.encode(), n
        assert container.get_blob_client(n).get_blob_properties().name == n
    assert sorted(b.name for b in container.list_blobs()) == sorted(names)


# ---- 3. staged blocks ------------------------------------------------------------------------------------------

def test_chunked_upload_and_parallel_ranged_download(az_endpoint, container):
    data = random_bytes(9 * MIB + 12345)
    log = RequestLog()
    up_svc = az_endpoint.service(max_single_put_size=MIB, max_block_size=MIB, raw_request_hook=log)
    bc = up_svc.get_blob_client(container.container_name, "big/chunked.bin")
    bc.upload_blob(data, max_concurrency=4, metadata={"kind": "chunked"},
                   content_settings=ContentSettings(content_type="application/octet-stream"))
    # The SDK staged 1 MiB blocks (Put Block) and committed them (Put Block List): no single Put Blob.
    assert log.count("PUT", "block") == 10, log.requests
    assert log.count("PUT", "blocklist") == 1
    committed, uncommitted = bc.get_block_list("all")
    assert uncommitted == []
    assert [b.size for b in committed] == [MIB] * 9 + [12345]
    props = bc.get_blob_properties()
    assert props.size == len(data) and props.blob_type == BlobType.BLOCKBLOB
    assert props.metadata == {"kind": "chunked"}

    log.requests.clear()
    dl_svc = az_endpoint.service(max_single_get_size=MIB, max_chunk_get_size=MIB, raw_request_hook=log)
    got = dl_svc.get_blob_client(container.container_name, "big/chunked.bin").download_blob(max_concurrency=4)
    assert got.size == len(data)
    assert got.readall() == data
    assert log.count("GET", ranged=True) >= 10, log.requests  # 1 MiB ranges, fetched in parallel
    # A range spanning a block boundary (blocks are the client's, not blobseal's segments).
    assert bc.download_blob(offset=MIB - 10, length=MIB + 20).readall() == data[MIB - 10:2 * MIB + 10]


def test_explicit_blocks_stage_commit_recommit(container):
    bc = container.get_blob_client("blocks")
    a, b, c = random_bytes(70_000), random_bytes(1234), random_bytes(99)
    bc.stage_block("blk-0001", a)
    bc.stage_block("blk-0002", b)
    # Block ids of one blob all have the same length (Azurite checks it against the uncommitted blocks only).
    az_error(lambda: bc.stage_block("blk-00004", b"longer id"), 400, "InvalidBlobOrBlock")
    committed, uncommitted = bc.get_block_list("all")
    assert committed == []
    assert sorted((x.id, x.size) for x in uncommitted) == [("blk-0001", len(a)), ("blk-0002", len(b))]
    az_error(bc.get_blob_properties, 404, "BlobNotFound")  # nothing committed yet: no blob
    assert [x.name for x in container.list_blobs()] == []

    bc.commit_block_list(["blk-0001", "blk-0002"], metadata={"step": "1"})
    assert bc.download_blob().readall() == a + b
    committed, uncommitted = bc.get_block_list("all")
    assert [(x.id, x.size) for x in committed] == [("blk-0001", len(a)), ("blk-0002", len(b))]
    assert uncommitted == []
    assert [(x.id, x.size) for x in bc.get_block_list("committed")[0]] == [("blk-0001", len(a)), ("blk-0002", len(b))]

    # Re-commit: keep a committed block, add a new one; the block left out is dropped.
    bc.stage_block("blk-0003", c)
    assert [x.id for x in bc.get_block_list("uncommitted")[1]] == ["blk-0003"]
    bc.commit_block_list([BlobBlock("blk-0001", BlockState.COMMITTED), BlobBlock("blk-0003", BlockState.UNCOMMITTED)])
    assert bc.download_blob().readall() == a + c
    assert bc.get_blob_properties().size == len(a) + len(c)
    committed, uncommitted = bc.get_block_list("all")
    assert [(x.id, x.size) for x in committed] == [("blk-0001", len(a)), ("blk-0003", len(c))]
    assert uncommitted == []
    # "Latest" (the SDK's default state) finds a committed block too.
    bc.commit_block_list(["blk-0003", "blk-0001"])
    assert bc.download_blob().readall() == c + a

    # A list naming a block that was never staged, or one dropped by the last commit: refused, blob unchanged.
    az_error(lambda: bc.commit_block_list(["blk-9999"]), 400, "InvalidBlockList")
    az_error(lambda: bc.commit_block_list(["blk-0001", "blk-0002"]), 400, "InvalidBlockList")
    assert bc.download_blob().readall() == c + a


# ---- 4. Content-MD5 --------------------------------------------------------------------------------------------

def test_content_md5(az_endpoint, container):
    data = random_bytes(3 * MIB + 17)
    # Single shot, with the transactional Content-MD5 (validate_content): the service stores the MD5.
    single = container.get_blob_client("md5/single")
    single.upload_blob(data, validate_content=True)
    assert bytes(single.get_blob_properties().content_settings.content_md5) == md5(data)
    # Chunked, the client declaring the whole blob's MD5 (x-ms-blob-content-md5) and each block's Content-MD5.
    up_svc = az_endpoint.service(max_single_put_size=MIB, max_block_size=MIB)
    chunked = up_svc.get_blob_client(container.container_name, "md5/chunked")
    chunked.upload_blob(data, validate_content=True, content_settings=ContentSettings(content_md5=md5(data)))
    assert bytes(chunked.get_blob_properties().content_settings.content_md5) == md5(data)
    # Download in ranges with validate_content: each range must come with its own Content-MD5.
    dl_svc = az_endpoint.service(max_single_get_size=MIB, max_chunk_get_size=MIB)
    for name in ("md5/single", "md5/chunked"):
        got = dl_svc.get_blob_client(container.container_name, name).download_blob(validate_content=True)
        assert got.readall() == data, name

    # A Content-MD5 that does not match the body: refused, nothing written.
    bad = {"Content-MD5": b64md5(b"something else")}
    small = container.get_blob_client("md5/small")
    small.upload_blob(b"original")
    az_error(lambda: small.upload_blob(b"replacement", overwrite=True, headers=bad), 400,
             *md5_mismatch_codes(az_endpoint))
    assert small.download_blob().readall() == b"original"
    az_error(lambda: small.stage_block("blk-1", b"block body", headers=bad), 400, *md5_mismatch_codes(az_endpoint))
    assert small.get_block_list("uncommitted")[1] == []


# ---- 5. listing ------------------------------------------------------------------------------------------------

def test_list_walk_paging_include(container):
    names = ["a/1", "a/2", "a/b/3", "b/4", "c", "d", "e"]
    sizes = {}
    for i, n in enumerate(names):
        body = random_bytes(10 + 1000 * i)
        sizes[n] = len(body)
        container.upload_blob(n, body, metadata={"n": str(i)} if n in ("a/1", "c") else None,
                              tags={"t": f"v{i}"} if n in ("a/2", "c") else None,
                              content_settings=ContentSettings(content_type=f"x/t{i}"))

    assert [b.name for b in container.list_blobs(name_starts_with="a/")] == ["a/1", "a/2", "a/b/3"]
    assert [b.name for b in container.list_blobs(name_starts_with="zz")] == []
    listed = list(container.list_blobs())
    assert [b.name for b in listed] == names
    assert {b.name: b.size for b in listed} == sizes  # plaintext sizes
    assert {b.name: b.content_settings.content_type for b in listed} == {n: f"x/t{i}" for i, n in enumerate(names)}
    assert all(b.blob_type == BlobType.BLOCKBLOB and b.etag and b.last_modified for b in listed)

    # The SDK yields a page's prefixes (<BlobPrefix>) before its blobs, each group in the server's order.
    top = list(container.walk_blobs(delimiter="/"))
    assert [(x.name, isinstance(x, BlobPrefix)) for x in top] == \
        [("a/", True), ("b/", True), ("c", False), ("d", False), ("e", False)]
    # A prefix iterates its own level.
    assert [(x.name, isinstance(x, BlobPrefix)) for x in top[0]] == [("a/b/", True), ("a/1", False), ("a/2", False)]
    assert [x.name for x in top[1]] == ["b/4"]
    level = list(container.walk_blobs(name_starts_with="a/", delimiter="/"))
    assert [(x.name, isinstance(x, BlobPrefix)) for x in level] == [("a/b/", True), ("a/1", False), ("a/2", False)]
    assert [x.name for x in container.walk_blobs(name_starts_with="a/b/", delimiter="/")] == ["a/b/3"]
    # Paging with a delimiter: prefixes count towards a page, each shows once.
    pages = [[x.name for x in p] for p in container.walk_blobs(delimiter="/", results_per_page=2).by_page()]
    assert sorted(n for p in pages for n in p) == ["a/", "b/", "c", "d", "e"] and len(pages) == 3, pages

    # Paging: 3 a page, continuation tokens to the end, every name once.
    seen, token, page_sizes = [], None, []
    while True:
        pages = container.list_blobs(results_per_page=3).by_page(continuation_token=token)
        page = [b.name for b in next(pages)]
        page_sizes.append(len(page))
        seen += page
        token = pages.continuation_token
        if not token:
            break
    assert seen == names and page_sizes == [3, 3, 1]

    full = {b.name: b for b in container.list_blobs(include=["metadata", "tags"])}
    assert full["a/1"].metadata == {"n": "0"} and full["c"].metadata == {"n": "4"}
    assert not full["d"].metadata
    assert full["a/2"].tags == {"t": "v1"} and full["c"].tags == {"t": "v4"}
    assert not full["d"].tags


# ---- 6. tags ---------------------------------------------------------------------------------------------------

def test_tags(container):
    bc = container.get_blob_client("tagged")
    bc.upload_blob(b"tagged body", tags={"project": "apollo", "tier": "hot"})
    assert bc.get_blob_tags() == {"project": "apollo", "tier": "hot"}
    assert bc.get_blob_properties().tag_count == 2
    bc.set_blob_tags({"project": "gemini"})  # replaces the set
    assert bc.get_blob_tags() == {"project": "gemini"}
    assert bc.download_blob().readall() == b"tagged body"
    bc.set_blob_tags({})
    assert bc.get_blob_tags() == {}
    az_error(lambda: container.get_blob_client("untagged-missing").get_blob_tags(), 404, "BlobNotFound")


# ---- 7. conditions ---------------------------------------------------------------------------------------------

def test_conditions(container):
    data = random_bytes(4096)
    bc = container.get_blob_client("cond")
    etag = bc.upload_blob(data)["etag"]
    wrong = '"0x8DEADBEEF000000"'

    err = az_error(lambda: bc.download_blob(etag=wrong, match_condition=MatchConditions.IfNotModified), 412,
                   "ConditionNotMet")
    assert data[:64] not in (err.response.body() or b"")
    assert bc.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified).readall() == data
    # If-None-Match with the current ETag, If-Modified-Since in the future: 304, no body.
    az_error(lambda: bc.download_blob(etag=etag, match_condition=MatchConditions.IfModified), 304)
    az_error(lambda: bc.download_blob(if_modified_since=later(24)), 304)
    assert bc.download_blob(if_modified_since=later(-24)).readall() == data
    az_error(lambda: bc.download_blob(if_unmodified_since=later(-24)), 412, "ConditionNotMet")
    az_error(lambda: bc.get_blob_properties(etag=wrong, match_condition=MatchConditions.IfNotModified), 412)

    # Writes guarded by the ETag.
    az_error(lambda: bc.upload_blob(b"lost update", overwrite=True, etag=wrong,
                                    match_condition=MatchConditions.IfNotModified), 412, "ConditionNotMet")
    assert bc.download_blob().readall() == data
    etag2 = bc.upload_blob(b"guarded update", overwrite=True, etag=etag,
                           match_condition=MatchConditions.IfNotModified)["etag"]
    assert etag2 != etag and bc.download_blob().readall() == b"guarded update"
    az_error(lambda: bc.set_blob_metadata({"x": "1"}, etag=etag, match_condition=MatchConditions.IfNotModified), 412,
             "ConditionNotMet")
    az_error(lambda: bc.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified), 412, "ConditionNotMet")
    bc.delete_blob(etag=etag2, match_condition=MatchConditions.IfNotModified)
    assert not bc.exists()


# ---- 8. copy ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source_auth", ["same-account", "sas"])
def test_copy_from_url(az_endpoint, container, source_auth):
    data = random_bytes(150_000)
    src = container.get_blob_client("copy/src")
    src.upload_blob(data, metadata={"origin": "src"}, content_settings=ContentSettings(content_type="image/png"))
    url = src.url
    if source_auth == "sas":
        url += "?" + generate_blob_sas(az_endpoint.account, container.container_name, "copy/src",
                                       account_key=az_endpoint.key, permission=BlobSasPermissions(read=True),
                                       expiry=later())
    dst = container.get_blob_client("copy/dst")
    result = dst.start_copy_from_url(url)
    assert result["copy_status"] == "success", result
    assert dst.download_blob().readall() == data
    props = dst.get_blob_properties()
    assert props.size == len(data) and props.copy.status == "success"
    assert props.metadata == {"origin": "src"}  # no metadata given: the source's
    assert props.content_settings.content_type == "image/png"
    # With metadata given, it replaces the source's; into another container too.
    other = unique_container()
    svc = az_endpoint.service()
    try:
        oc = svc.create_container(other)
        d2 = oc.get_blob_client("dst2")
        assert d2.start_copy_from_url(url, metadata={"fresh": "yes"})["copy_status"] == "success"
        assert d2.download_blob().readall() == data and d2.get_blob_properties().metadata == {"fresh": "yes"}
    finally:
        empty_and_delete_container(svc, other)
    # The source is untouched; a missing source is refused.
    assert src.download_blob().readall() == data
    az_error(lambda: dst.start_copy_from_url(container.get_blob_client("copy/missing").url), 404,
             "CannotVerifyCopySource", "BlobNotFound")


# ---- 9. account ------------------------------------------------------------------------------------------------

def test_account_information(svc, container):
    for info in (svc.get_account_information(), container.get_account_information()):
        assert info["sku_name"] in ("Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Premium_LRS",
                                    "Standard_GZRS", "Standard_RAGZRS", "Premium_ZRS"), info
        assert info["account_kind"] in ("Storage", "BlobStorage", "StorageV2", "FileStorage", "BlockBlobStorage"), info


# ---- 10. SAS and authentication --------------------------------------------------------------------------------

def test_blob_sas_read_only(az_endpoint, container):
    data = random_bytes(3000)
    container.upload_blob("sas/doc", data)
    container.upload_blob("sas/other", b"other secret " * 10)
    sas = generate_blob_sas(az_endpoint.account, container.container_name, "sas/doc", account_key=az_endpoint.key,
                            permission=BlobSasPermissions(read=True), expiry=later())
    url = container.get_blob_client("sas/doc").url
    ro = BlobClient.from_blob_url(url, credential=sas, retry_total=0)
    assert ro.download_blob().readall() == data
    assert ro.download_blob(offset=10, length=20).readall() == data[10:30]
    assert ro.get_blob_properties().size == len(data)
    # Read-only: no write, no delete (Azure: AuthorizationPermissionMismatch).
    az_error(lambda: ro.upload_blob(b"overwritten", overwrite=True), 403, "AuthorizationPermissionMismatch")
    az_error(ro.delete_blob, 403, "AuthorizationPermissionMismatch")
    assert container.download_blob("sas/doc").readall() == data
    # The signature covers the blob's name: the same SAS on another blob is refused, with nothing leaked.
    other = BlobClient.from_blob_url(container.get_blob_client("sas/other").url, credential=sas, retry_total=0)
    err = az_error(other.download_blob, 403, *auth_failed_codes(az_endpoint))
    assert b"other secret" not in (err.response.body() or b"")
    # A tampered signature.
    bad = sas.replace("sig=", "sig=AAAA")
    az_error(lambda: BlobClient.from_blob_url(url, credential=bad, retry_total=0).download_blob(), 403,
             *auth_failed_codes(az_endpoint))


def test_expired_sas_refused(az_endpoint, container):
    container.upload_blob("exp", b"expired secret " * 4)
    sas = generate_blob_sas(az_endpoint.account, container.container_name, "exp", account_key=az_endpoint.key,
                            permission=BlobSasPermissions(read=True), expiry=later(-1), start=later(-2))
    bc = BlobClient.from_blob_url(container.get_blob_client("exp").url, credential=sas, retry_total=0)
    err = az_error(bc.download_blob, 403, *auth_failed_codes(az_endpoint))
    assert b"expired secret" not in (err.response.body() or b"")
    # Not yet valid either.
    sas = generate_blob_sas(az_endpoint.account, container.container_name, "exp", account_key=az_endpoint.key,
                            permission=BlobSasPermissions(read=True), expiry=later(2), start=later(1))
    bc = BlobClient.from_blob_url(container.get_blob_client("exp").url, credential=sas, retry_total=0)
    az_error(bc.download_blob, 403, *auth_failed_codes(az_endpoint))


def test_container_sas_list_and_read(az_endpoint, container):
    for n in ("c1", "c2", "d/c3"):
        container.upload_blob(n, n.encode() * 10)
    sas = generate_container_sas(az_endpoint.account, container.container_name, account_key=az_endpoint.key,
                                 permission=ContainerSasPermissions(read=True, list=True), expiry=later())
    cc = ContainerClient.from_container_url(container.url, credential=sas, retry_total=0)
    assert [b.name for b in cc.list_blobs()] == ["c1", "c2", "d/c3"]
    assert [b.name for b in cc.list_blobs(name_starts_with="d/")] == ["d/c3"]
    assert cc.download_blob("d/c3").readall() == b"d/c3" * 10
    az_error(lambda: cc.upload_blob("new", b"x"), 403, "AuthorizationPermissionMismatch")
    az_error(lambda: cc.delete_blob("c1"), 403, "AuthorizationPermissionMismatch")
    # A container SAS does not open another container.
    other = unique_container()
    svc = az_endpoint.service()
    try:
        svc.create_container(other).upload_blob("x", b"other container secret")
        oc = ContainerClient.from_container_url(svc.get_container_client(other).url, credential=sas, retry_total=0)
        az_error(lambda: list(oc.list_blobs()), 403)
        err = az_error(lambda: oc.download_blob("x"), 403)
        assert b"other container secret" not in (err.response.body() or b"")
    finally:
        empty_and_delete_container(svc, other)


def test_account_sas(az_endpoint, container):
    sas = generate_account_sas(az_endpoint.account, az_endpoint.key,
                               resource_types=ResourceTypes(service=True, container=True, object=True),
                               permission=AccountSasPermissions(read=True, list=True, write=True, create=True),
                               expiry=later())
    client = az_endpoint.service_with(sas)
    assert container.container_name in {c.name for c in client.list_containers(name_starts_with="azf-")}
    bc = client.get_blob_client(container.container_name, "via-account-sas")
    data = random_bytes(2048)
    bc.upload_blob(data)
    assert bc.download_blob().readall() == data
    assert container.download_blob("via-account-sas").readall() == data  # the same blob for the key holder
    az_error(bc.delete_blob, 403, "AuthorizationPermissionMismatch")  # no delete permission
    # A read-only account SAS cannot write.
    ro = az_endpoint.service_with(generate_account_sas(
        az_endpoint.account, az_endpoint.key, resource_types=ResourceTypes(object=True),
        permission=AccountSasPermissions(read=True), expiry=later()))
    assert ro.get_blob_client(container.container_name, "via-account-sas").download_blob().readall() == data
    az_error(lambda: ro.get_blob_client(container.container_name, "ro").upload_blob(b"x"), 403,
             "AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch")
    # An account SAS signed with a wrong key.
    forged = az_endpoint.service_with(generate_account_sas(
        az_endpoint.account, new_account_key(), resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, list=True), expiry=later()))
    az_error(lambda: list(forged.list_containers()), 403, *auth_failed_codes(az_endpoint))


def test_wrong_account_key_refused(az_endpoint, container):
    container.upload_blob("locked", b"locked secret " * 8)
    wrong = az_endpoint.service(key=new_account_key())
    err = az_error(lambda: wrong.get_blob_client(container.container_name, "locked").download_blob(), 403,
                   *auth_failed_codes(az_endpoint))
    assert b"locked secret" not in (err.response.body() or b"")
    az_error(lambda: list(wrong.list_containers()), 403, *auth_failed_codes(az_endpoint))
    az_error(lambda: list(wrong.get_container_client(container.container_name).list_blobs()), 403,
             *auth_failed_codes(az_endpoint))
    az_error(lambda: wrong.get_blob_client(container.container_name, "new").upload_blob(b"x"), 403,
             *auth_failed_codes(az_endpoint))
    az_error(lambda: wrong.create_container(unique_container()), 403, *auth_failed_codes(az_endpoint))
    assert not container.get_blob_client("new").exists()


def test_anonymous_refused(az_endpoint, container):
    """No credential at all. Azurite answers 403 AuthorizationFailure; Azure 404 ResourceNotFound or 401/403
    (NoAuthenticationInformation) depending on the operation and version: any 4xx without the data is right for
    the reference, blobseal must answer 403."""
    container.upload_blob("private", b"private secret " * 8)
    anon = az_endpoint.service_with(None)
    expected = 403 if az_endpoint.is_blobseal else (401, 403, 404)
    err = az_error(lambda: anon.get_blob_client(container.container_name, "private").download_blob(), expected)
    assert b"private secret" not in (err.response.body() or b"")
    err = az_error(lambda: list(anon.get_container_client(container.container_name).list_blobs()), expected)
    assert b"private" not in (err.response.body() or b"")
    az_error(lambda: list(anon.list_containers()), expected)
    az_error(lambda: anon.get_blob_client(container.container_name, "anon-write").upload_blob(b"x"), expected)
    assert not container.get_blob_client("anon-write").exists()


# ---- 11. what blobseal does not serve (Azurite serves it all) -------------------------------------------------

def _refused_cleanly(action) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as info:
        action()
    err = info.value
    assert 400 <= err.status_code < 500 or err.status_code == 501, (err.status_code, str(err)[:500])
    assert code_of(err), f"no Azure error code: {str(err)[:500]}"
    return err


def test_unsupported_blob_types_refused(az_blobseal, bs_svc, bs_container):
    _refused_cleanly(lambda: bs_container.get_blob_client("append").upload_blob(b"x", blob_type=BlobType.APPENDBLOB))
    _refused_cleanly(lambda: bs_container.get_blob_client("append").create_append_blob())
    _refused_cleanly(lambda: bs_container.get_blob_client("page").create_page_blob(512))
    _refused_cleanly(lambda: bs_container.get_blob_client("page").upload_blob(b"\0" * 512, blob_type=BlobType.PAGEBLOB))
    assert sorted(b.name for b in bs_container.list_blobs()) == []


def test_leases_and_snapshots_refused(az_blobseal, bs_svc, bs_container):
    bc = bs_container.get_blob_client("plain")
    bc.upload_blob(b"plain body")
    _refused_cleanly(bc.acquire_lease)
    _refused_cleanly(lambda: bs_container.acquire_lease())
    _refused_cleanly(bc.create_snapshot)
    # The blob is still there, unleased: an unconditional overwrite and delete work.
    assert bc.download_blob().readall() == b"plain body"
    bc.upload_blob(b"new body", overwrite=True)
    bc.delete_blob()


# ---- 12. blobseal only: the same buckets over S3, ciphertext at rest ------------------------------------------

def test_s3_put_reads_back_over_azure(az_blobseal, bs_svc):
    s3 = az_blobseal.s3.client()
    bucket = unique_container()
    s3.create_bucket(Bucket=bucket)
    try:
        data = random_bytes(300_000)
        s3.put_object(Bucket=bucket, Key="from/s3", Body=data, Metadata={"owner": "ops", "note": "via s3"},
                      ContentType="application/x-from-s3")
        assert bucket in {c.name for c in bs_svc.list_containers(name_starts_with=bucket)}
        bc = bs_svc.get_blob_client(bucket, "from/s3")
        assert bc.download_blob().readall() == data
        assert bc.download_blob(offset=70_000, length=1000).readall() == data[70_000:71_000]
        props = bc.get_blob_properties()
        assert props.size == len(data)
        assert props.metadata == {"owner": "ops", "note": "via s3"}
        assert props.content_settings.content_type == "application/x-from-s3"
        assert [b.name for b in bs_svc.get_container_client(bucket).list_blobs()] == ["from/s3"]
        # Deleted over Azure: gone over S3.
        bc.delete_blob()
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    finally:
        empty_and_delete_container(bs_svc, bucket)


def test_azure_uploads_read_back_over_s3(az_blobseal, bs_container):
    s3 = az_blobseal.s3.client()
    bucket = bs_container.container_name
    assert bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    small = random_bytes(5000)
    bs_container.upload_blob("single", small, metadata={"owner": "ops"},
                          content_settings=ContentSettings(content_type="text/x-single"))
    big = random_bytes(5 * MIB + 321)
    chunky = az_blobseal.service(max_single_put_size=MIB, max_block_size=MIB)
    chunky.get_blob_client(bucket, "chunked").upload_blob(big, max_concurrency=4, metadata={"kind": "chunked"})
    got = s3.get_object(Bucket=bucket, Key="single")
    assert got["Body"].read() == small
    assert got["Metadata"] == {"owner": "ops"} and got["ContentType"] == "text/x-single"
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == big and got["Metadata"] == {"kind": "chunked"}
    assert s3.get_object(Bucket=bucket, Key="chunked", Range="bytes=1048570-1048589")["Body"].read() == \
        big[1048570:1048590]
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["chunked", "single"]
    assert {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} == \
        {"single": len(small), "chunked": len(big)}


def test_azure_data_at_rest_is_ciphertext(az_blobseal, bs_container, tmp_path):
    sizes = [100, 65536 + 7, 1536 * 1024]
    plains = [random_bytes(n) for n in sizes]
    for i, p in enumerate(plains):
        bs_container.upload_blob(f"secret/{i}", p)
    big = random_bytes(3 * MIB + 5)
    chunky = az_blobseal.service(max_single_put_size=MIB, max_block_size=MIB)
    chunky.get_blob_client(bs_container.container_name, "secret/chunked").upload_blob(big, max_concurrency=4)
    # A staged, not yet committed block is stored too: scanned while it waits.
    staged = random_bytes(200_000)
    bs_container.get_blob_client("secret/staged").stage_block("blk-1", staged)
    bs_container.get_blob_client("secret/copy").start_copy_from_url(bs_container.get_blob_client("secret/2").url)
    plains += [big, staged]

    index = PlaintextIndex(plains)
    files = list(stored_files(az_blobseal.data_dir))
    assert len(files) >= len(sizes) + 2
    for path, blob in files:
        off = index.leak_offset(blob)
        assert off is None, f"plaintext found in {path} at offset {off}"
    bs_container.get_blob_client("secret/staged").commit_block_list(["blk-1"])
    for path, blob in stored_files(az_blobseal.data_dir):
        assert index.leak_offset(blob) is None, path
    assert bs_container.download_blob("secret/staged").readall() == staged
    assert bs_container.download_blob("secret/copy").readall() == plains[2]
    props = bs_container.get_blob_client("secret/chunked").get_blob_properties()
    assert props.server_encrypted is True and props.size == len(big)
    # The check itself can fail: a file holding plaintext is caught.
    planted = tmp_path / "planted"
    planted.write_bytes(b"header" + staged[1000:1040])
    assert index.leak_offset(planted.read_bytes()) is not None


@pytest.fixture
def az_yaml(az_blobseal, workdir):
    """blobseal from a YAML config: `azure_listen`, tenant acme (bucket prefix acme-) with an Azure account and two
    keys (key1, key2)."""
    ep = blobseal_yaml_endpoint(workdir, "bs-yaml-az-" + uuid.uuid4().hex[:6])
    yield ep
    ep.server.stop()


def test_yaml_account_with_two_keys(az_yaml):
    key1, key2 = az_yaml.keys
    svc1, svc2 = az_yaml.service(key=key1), az_yaml.service(key=key2)
    name = unique_container()
    cc = svc1.create_container(name)
    data = random_bytes(10_000)
    cc.upload_blob("both-keys", data)
    assert svc2.get_blob_client(name, "both-keys").download_blob().readall() == data
    svc2.get_blob_client(name, "by-key2").upload_blob(b"second key")
    assert [b.name for b in svc1.get_container_client(name).list_blobs()] == ["both-keys", "by-key2"]
    # A SAS signed with either key works; a third key does not.
    for key in (key1, key2):
        sas = generate_blob_sas(az_yaml.account, name, "both-keys", account_key=key,
                                permission=BlobSasPermissions(read=True), expiry=later())
        assert BlobClient.from_blob_url(cc.get_blob_client("both-keys").url, credential=sas,
                                        retry_total=0).download_blob().readall() == data
    az_error(lambda: list(az_yaml.service(key=new_account_key()).list_containers()), 403, "AuthenticationFailed")
    # The container is the tenant's bucket (the tenant sees its names without the backend prefix).
    s3 = az_yaml.s3.client()
    assert s3.get_object(Bucket=name, Key="both-keys")["Body"].read() == data
    empty_and_delete_container(svc1, name)


def test_unsatisfiable_and_doubly_checksummed_requests_are_refused(az_blobseal, bs_container):
    """Azure answers 400 to a read with `If-None-Match: *` (it can never return the blob) and to a body with both
    Content-MD5 and x-ms-content-crc64; blobseal does the same, and stores nothing for the refused write."""
    bc = bs_container.get_blob_client("unsatisfiable")
    bc.upload_blob(b"present")
    az_error(lambda: bc.download_blob(headers={"If-None-Match": "*"}), 400,
             "UnsatisfiableCondition")
    crc = base64.b64encode((0).to_bytes(8, "little")).decode()
    md5 = base64.b64encode(hashlib.md5(b"both").digest()).decode()
    both = bs_container.get_blob_client("both-checksums")
    az_error(lambda: both.upload_blob(b"both", headers={"Content-MD5": md5, "x-ms-content-crc64": crc}), 400,
             "BothCrc64AndMd5HeaderPresent")
    assert not both.exists()
    az_error(lambda: both.stage_block("YmxvY2sx", b"both", headers={"Content-MD5": md5, "x-ms-content-crc64": crc}),
             400, "BothCrc64AndMd5HeaderPresent")


# ---- 12. tag conditions, tag counts, copy options, SAS versions (issue 13's conformance gaps) ------------------

def test_tag_conditions_and_counts(az_endpoint, container):
    """`x-ms-if-tags` on reads and writes (412 ConditionNotMet when the tags do not meet it, 400 when it is
    malformed, before anything changes) and the tag count on Get Blob and in listings. Azurite 3.35 ignores the
    condition on Set Blob Tags (Azure's reference lists it there): that one step is blobseal's only."""
    bc = container.get_blob_client("tag-cond")
    bc.upload_blob(b"tag condition body", tags={"project": "apollo", "stage": "b2"})
    ok, no = "project='apollo' AND stage>='b1'", "project='apollo' AND stage<'b1'"
    assert bc.download_blob(if_tags_match_condition=ok).readall() == b"tag condition body"
    az_error(lambda: bc.download_blob(if_tags_match_condition=no), 412, "ConditionNotMet")
    assert bc.get_blob_properties(if_tags_match_condition="\"project\"='apollo'").size == 18
    az_error(lambda: bc.get_blob_properties(if_tags_match_condition="missing<>'x'"), 412, "ConditionNotMet")
    assert bc.get_blob_tags(if_tags_match_condition="project>'a' or project='z'") == {"project": "apollo",
                                                                                      "stage": "b2"}
    for malformed in ("project=='apollo'", "@container='x'", "project='a$$'", "key+1='v'"):
        az_error(lambda: bc.get_blob_tags(if_tags_match_condition=malformed), 400, "InvalidHeaderValue")
    # Writes: nothing changes when the condition fails.
    az_error(lambda: bc.set_blob_metadata({"m": "1"}, if_tags_match_condition=no), 412, "ConditionNotMet")
    az_error(lambda: bc.upload_blob(b"lost", overwrite=True, if_tags_match_condition=no), 412, "ConditionNotMet")
    if az_endpoint.is_blobseal:
        az_error(lambda: bc.set_blob_tags({"x": "y"}, if_tags_match_condition=no), 412, "ConditionNotMet")
    az_error(lambda: bc.delete_blob(if_tags_match_condition=no), 412, "ConditionNotMet")
    assert bc.download_blob().readall() == b"tag condition body" and bc.get_blob_properties().metadata == {}
    bc.set_blob_metadata({"m": "1"}, if_tags_match_condition=ok)
    assert bc.get_blob_properties().metadata == {"m": "1"}
    # The tag count: on Get Blob and Get Blob Properties, and in listings without include=tags.
    assert bc.download_blob().properties.tag_count == 2
    container.upload_blob("tag-none", b"no tags")
    listed = {b.name: b.tag_count for b in container.list_blobs()}
    assert listed["tag-cond"] == 2 and not listed["tag-none"], listed
    bc.delete_blob(if_tags_match_condition=ok)
    assert not bc.exists()


def test_copy_tag_option_and_source_conditions(az_endpoint, container):
    """Copy Blob's tags: only the request's by default (`REPLACE`), the source's with `COPY` (and `COPY` with
    tags is a 400); `x-ms-source-if-*` guard the source; a source that is not an absolute URL is a 400."""
    src = container.get_blob_client("copy-tags/src")
    src.upload_blob(b"copied with tags", tags={"a": "1", "b": "2"})
    d1 = container.get_blob_client("copy-tags/replace")
    assert d1.start_copy_from_url(src.url, requires_sync=True)["copy_status"] == "success"
    assert d1.get_blob_tags() == {}
    d2 = container.get_blob_client("copy-tags/own")
    d2.start_copy_from_url(src.url, tags={"own": "yes"}, requires_sync=True)
    assert d2.get_blob_tags() == {"own": "yes"}
    d3 = container.get_blob_client("copy-tags/copy")
    d3.start_copy_from_url(src.url, requires_sync=True, headers={"x-ms-copy-source-tag-option": "COPY"})
    assert d3.get_blob_tags() == {"a": "1", "b": "2"} and d3.download_blob().readall() == b"copied with tags"
    d4 = container.get_blob_client("copy-tags/both")
    az_error(lambda: d4.start_copy_from_url(src.url, tags={"x": "y"}, requires_sync=True,
                                            headers={"x-ms-copy-source-tag-option": "COPY"}), 400)
    assert not d4.exists()
    # Source conditions: Azure's code is SourceConditionNotMet (its error-code table); Azurite 3.35 answers
    # ConditionNotMet.
    codes = ("SourceConditionNotMet",) if az_endpoint.is_blobseal else ("SourceConditionNotMet", "ConditionNotMet")
    wrong = '"0x8DEADBEEF000000"'
    az_error(lambda: d4.start_copy_from_url(src.url, requires_sync=True, source_etag=wrong,
                                            source_match_condition=MatchConditions.IfNotModified), 412, *codes)
    if az_endpoint.is_blobseal:  # Azurite 3.35 ignores x-ms-source-if-tags
        az_error(lambda: d4.start_copy_from_url(src.url, requires_sync=True,
                                                source_if_tags_match_condition="a='9'"), 412, *codes)
    assert not d4.exists()
    d4.start_copy_from_url(src.url, requires_sync=True, source_if_tags_match_condition="a='1'",
                           source_etag=src.get_blob_properties().etag,
                           source_match_condition=MatchConditions.IfNotModified)
    assert d4.download_blob().readall() == b"copied with tags"
    # Destination tag condition: the destination's tags must meet it.
    az_error(lambda: d3.start_copy_from_url(src.url, requires_sync=True, if_tags_match_condition="a<>'1'"), 412,
             "ConditionNotMet")
    az_error(lambda: d4.start_copy_from_url("copy-tags/src", requires_sync=True), 400, "InvalidHeaderValue")


def test_container_write_conditions(container, svc):
    """If-Modified-Since / If-Unmodified-Since on Set Container Metadata and Delete Container."""
    az_error(lambda: container.set_container_metadata({"k": "v"}, if_modified_since=later(24)), 412,
             "ConditionNotMet")
    assert container.get_container_properties().metadata == {}
    container.set_container_metadata({"k": "v"}, if_modified_since=later(-24 * 365))
    assert container.get_container_properties().metadata == {"k": "v"}
    az_error(lambda: container.delete_container(if_unmodified_since=later(-24 * 365)), 412, "ConditionNotMet")
    assert container.exists()


def test_backslash_in_blob_name_is_a_slash(container):
    container.get_blob_client("dir\\file.txt").upload_blob(b"backslash")
    assert container.get_blob_client("dir/file.txt").download_blob().readall() == b"backslash"
    assert [b.name for b in container.list_blobs(name_starts_with="dir")] == ["dir/file.txt"]


def test_create_only_sas_cannot_overwrite(az_endpoint, container):
    """A SAS with `c` (create) but not `w` writes new blobs only; an overwrite is a permission refusal (403
    AuthorizationPermissionMismatch), not a 409."""
    container.upload_blob("exists", b"original")
    sas = generate_container_sas(az_endpoint.account, container.container_name, account_key=az_endpoint.key,
                                 permission=ContainerSasPermissions(create=True), expiry=later())
    cc = ContainerClient.from_container_url(container.url, credential=sas, retry_total=0)
    cc.upload_blob("fresh", b"new blob")
    az_error(lambda: cc.upload_blob("exists", b"overwrite", overwrite=True), 403, "AuthorizationPermissionMismatch")
    assert container.download_blob("exists").readall() == b"original"


def _service_sas_2016(account: str, key: str, container: str, blob: str | None, permissions: str) -> str:
    """A service SAS of version 2016-05-31, whose string to sign has no `sr` and no snapshot time (Azure's
    "Create a service SAS", versions 2015-04-05 to 2018-11-09): built here, because the Python SDK only
    signs its own (newest) version."""
    import hmac
    from urllib.parse import quote
    se = (dt.datetime.now(UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resource = f"/blob/{account}/{container}" + (f"/{blob}" if blob else "")
    fields = [permissions, "", se, resource, "", "", "", "2016-05-31", "", "", "", "", ""]
    sig = base64.b64encode(hmac.new(base64.b64decode(key), "\n".join(fields).encode(), hashlib.sha256).digest())
    return (f"sv=2016-05-31&sr={'b' if blob else 'c'}&sp={permissions}&se={quote(se, safe='')}"
            f"&sig={quote(sig.decode(), safe='')}")


def test_sas_of_an_older_version(az_endpoint, container):
    container.upload_blob("old-sas", b"read with a 2016 SAS")
    blob_sas = _service_sas_2016(az_endpoint.account, az_endpoint.key, container.container_name, "old-sas", "r")
    bc = BlobClient.from_blob_url(container.get_blob_client("old-sas").url, credential=blob_sas, retry_total=0)
    assert bc.download_blob().readall() == b"read with a 2016 SAS"
    az_error(lambda: bc.upload_blob(b"x", overwrite=True), 403, "AuthorizationPermissionMismatch")
    cont_sas = _service_sas_2016(az_endpoint.account, az_endpoint.key, container.container_name, None, "rl")
    cc = ContainerClient.from_container_url(container.url, credential=cont_sas, retry_total=0)
    assert [b.name for b in cc.list_blobs()] == ["old-sas"]
    # Signed for another blob: refused.
    other = BlobClient.from_blob_url(container.get_blob_client("other").url, credential=blob_sas, retry_total=0)
    az_error(other.download_blob, 403, *auth_failed_codes(az_endpoint))


def test_duplicated_sas_parameters_refused(az_blobseal, bs_container):
    """Azure refuses a SAS with a parameter given twice; so does blobseal (whichever copy is the signed one)."""
    bs_container.upload_blob("dup", b"duplicated parameters")
    sas = generate_blob_sas(az_blobseal.account, bs_container.container_name, "dup", account_key=az_blobseal.key,
                            permission=BlobSasPermissions(read=True), expiry=later())
    url = bs_container.get_blob_client("dup").url
    assert BlobClient.from_blob_url(url, credential=sas, retry_total=0).download_blob().readall()
    for extra in ("&sp=rwd", "&sig=AAAA"):
        bc = BlobClient.from_blob_url(url, credential=sas + extra, retry_total=0)
        err = az_error(bc.download_blob, 403, "AuthenticationFailed")
        assert b"duplicated parameters" not in (err.response.body() or b"")


def test_put_block_answers_its_crc64_and_copy_echoes_the_source_md5(az_blobseal, bs_container):
    """Put Block without Content-MD5 answers with the CRC-64/NVME it computed (Azure's contract, newer than
    Azurite 3.35); Copy Blob with `x-ms-source-content-md5` checks it against the source's plaintext MD5 and
    echoes it as Content-MD5."""
    bc = bs_container.get_blob_client("crc-echo")
    out = bc.stage_block("YmxvY2sx", b"HelloWorld")
    echoed = out.get("content_crc64")
    assert echoed, out
    # The echoed CRC is what the client would have sent: sending it back is accepted, one bit off is refused.
    bc.stage_block("YmxvY2sy", b"HelloWorld", headers={"x-ms-content-crc64": base64.b64encode(echoed).decode()})
    flipped = bytes([echoed[0] ^ 1]) + bytes(echoed[1:])
    az_error(lambda: bc.stage_block("YmxvY2sz", b"HelloWorld",
                                    headers={"x-ms-content-crc64": base64.b64encode(flipped).decode()}),
             400, "Crc64Mismatch")
    src = bs_container.get_blob_client("md5-src")
    src.upload_blob(b"source bytes")
    dst = bs_container.get_blob_client("md5-dst")
    result = dst.start_copy_from_url(src.url, requires_sync=True,
                                     headers={"x-ms-source-content-md5": b64md5(b"source bytes")})
    assert result["copy_status"] == "success"
    az_error(lambda: dst.start_copy_from_url(src.url, requires_sync=True,
                                             headers={"x-ms-source-content-md5": b64md5(b"other bytes")}),
             400, "Md5Mismatch")
    assert dst.download_blob().readall() == b"source bytes"


def test_uncommitted_blob_listing_refused(az_blobseal, bs_container):
    """Staged blocks are kept under a digest of the blob's name, so blobs with only staged blocks cannot be
    listed: `include=uncommittedblobs` is refused (501), not silently ignored."""
    bs_container.get_blob_client("staged-only").stage_block("YmxvY2sx", b"staged")
    err = _refused_cleanly(lambda: list(bs_container.list_blobs(include=["uncommittedblobs"])))
    assert err.status_code == 501, err.status_code
