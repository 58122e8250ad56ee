"""Block blobs at scale through blobseal's Azure front end: thousands of staged blocks (each one sealed object
of blobseal's reserved namespace) commit into one blob, in the client's order, within a bounded time; a block
list above Azure's 50,000 limit is refused before anything is read."""

from __future__ import annotations

import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock

from azfront import empty_and_delete_container, unique_container

BLOCKS = 1500


@pytest.fixture
def bs_container(az_blobseal):
    svc = az_blobseal.service()
    name = unique_container()
    yield svc.create_container(name)
    empty_and_delete_container(svc, name)


def test_many_blocks_commit_in_order(bs_container):
    bc = bs_container.get_blob_client("many/blocks.bin")
    parts = [os.urandom(37 + i % 50) for i in range(BLOCKS)]
    ids = [base64.b64encode(f"block-{i:06}".encode()).decode() for i in range(BLOCKS)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: bc.stage_block(ids[i], parts[i]), range(BLOCKS)))
    _, uncommitted = bc.get_block_list("uncommitted")
    assert len(uncommitted) == BLOCKS
    # Committed in reverse: the blob is the blocks in the list's order, not the staging order.
    order = list(reversed(range(BLOCKS)))
    bc.commit_block_list([BlobBlock(ids[i]) for i in order])
    assert bc.download_blob().readall() == b"".join(parts[i] for i in order)
    committed, uncommitted = bc.get_block_list("all")
    assert [b.id for b in committed] == [ids[i] for i in order]
    assert [b.size for b in committed] == [len(parts[i]) for i in order]
    assert uncommitted == []
    assert time.monotonic() - started < 120


def test_block_list_over_the_limit_refused(bs_container):
    bc = bs_container.get_blob_client("too/many")
    ids = [base64.b64encode(f"{i:08}".encode()).decode() for i in range(50_001)]
    try:
        bc.commit_block_list(ids)
    except HttpResponseError as e:
        assert e.status_code == 400 and e.error_code == "InvalidBlockList", (e.status_code, e.error_code)
    else:
        raise AssertionError("a list of 50,001 blocks was accepted")
