"""Fixtures: moto_server, Azurite, and three blobseal instances (embedded default on the filesystem; S3 backend
on moto; Azure Blob backend on Azurite).

`instance` is parametrised over all three; tests that only make sense for one of them ask for `bs_fs`, `bs_moto`
or `bs_azure`.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs  # noqa: E402
from instances import MOTO_KEY, MOTO_SECRET, start_azure_blobseal, start_moto_blobseal  # noqa: E402
from s3util import Instance, empty_and_delete, s3_client, unique_bucket  # noqa: E402

# The suite must not pick up the developer's AWS settings (FACTS.md: AWS_CA_BUNDLE is set on these machines).
for _k in list(os.environ):
    if _k.startswith("AWS_"):
        del os.environ[_k]
os.environ["AWS_CONFIG_FILE"] = "/nonexistent/blobseal-test/aws-config"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/blobseal-test/aws-credentials"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def moto(workdir):
    server = procs.moto_server(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bs_fs(workdir) -> Instance:
    """blobseal on its embedded default (filesystem backend, tenant `default`)."""
    ak, sk = "BSTFSACCESSKEY", secrets.token_hex(20)
    data = workdir / "bs-fs-data"
    server = procs.blobseal(workdir, "bs-fs", {"BLOBSEAL_DATA_DIR": str(data), "BLOBSEAL_ACCESS_KEY_ID": ak,
                                               "BLOBSEAL_SECRET_ACCESS_KEY": sk})
    yield Instance("fs", server.endpoint, ak, sk, data_dir=data, server=server)
    server.stop()


@pytest.fixture(scope="session")
def bs_moto(workdir, moto) -> Instance:
    """blobseal with one tenant whose backend is the session's moto_server."""
    server, ak, sk = start_moto_blobseal(workdir, "bs-moto", moto.endpoint)
    yield Instance("moto", server.endpoint, ak, sk, moto_endpoint=moto.endpoint, server=server)
    server.stop()


@pytest.fixture(scope="session")
def azurite(workdir):
    server = procs.azurite_server(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_url(azurite) -> str:
    """The blob service URL of Azurite's development account."""
    return f"{azurite.endpoint}/{procs.AZURITE_ACCOUNT}"


@pytest.fixture(scope="session")
def bs_azure(workdir, azurite_url) -> Instance:
    """blobseal with one tenant whose backend is the session's Azurite account."""
    server, ak, sk = start_azure_blobseal(workdir, "bs-azure", azurite_url)
    yield Instance("azure", server.endpoint, ak, sk, azure_url=azurite_url, server=server)
    server.stop()


@pytest.fixture
def azure_raw(azurite_url):
    """An Azure SDK client straight to Azurite (bypassing blobseal): what is really stored."""
    from azure.storage.blob import BlobServiceClient
    conn = (f"DefaultEndpointsProtocol=http;AccountName={procs.AZURITE_ACCOUNT};AccountKey={procs.AZURITE_KEY};"
            f"BlobEndpoint={azurite_url};")
    return BlobServiceClient.from_connection_string(conn)


@pytest.fixture(params=["fs", "moto", "azure"])
def instance(request) -> Instance:
    """Each blobseal instance in turn."""
    return request.getfixturevalue({"fs": "bs_fs", "moto": "bs_moto", "azure": "bs_azure"}[request.param])


@pytest.fixture
def s3(instance):
    """A default boto3 client (aws-chunked uploads with CRC32 trailers, Expect: 100-continue) for `instance`."""
    return instance.client()


@pytest.fixture
def bucket(instance, s3):
    """A new, empty bucket on `instance`, emptied and deleted afterwards."""
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete(s3, name)


@pytest.fixture
def moto_raw(bs_moto):
    """A boto3 client straight to moto (bypassing blobseal): what is really stored."""
    return s3_client(bs_moto.moto_endpoint, MOTO_KEY, MOTO_SECRET)


@pytest.fixture(autouse=True)
def _servers_still_up():
    """After each test, fail it if a blobseal it may have used has died (a crash is a bug, whatever the test)."""
    yield
    for server in procs.STARTED:
        if server.name.startswith("bs") and not server.stopped and not server.alive():
            pytest.fail(f"{server.name} died during the test:\n{server.log()[-4000:]}")


# ---- Azure Blob front end (test_azure_front.py) ------------------------------------------------------------------
# The same tests run against each endpoint: `azurite` (the reference emulator, straight) and `blobseal` (its Azure
# front end, embedded default on fs). BLOBSEAL_AZFRONT_ENDPOINTS (comma-separated, default both) picks them;
# `-k azurite` / `-k blobseal` select by test id too. blobseal-only tests use `az_blobseal` (id `[blobseal]`).
AZFRONT_ENDPOINTS = [e for e in os.environ.get("BLOBSEAL_AZFRONT_ENDPOINTS", "azurite,blobseal").split(",") if e]


@pytest.fixture(scope="session")
def azfront_azurite(workdir):
    """Azurite of its own, as an Azure endpoint (the reference the front-end tests were proven against)."""
    from azfront import azurite_endpoint
    ep = azurite_endpoint(workdir)
    yield ep
    ep.server.stop()


@pytest.fixture(scope="session")
def azfront_blobseal(workdir):
    """blobseal's embedded default on fs with BLOBSEAL_AZURE_LISTEN/_ACCOUNT/_ACCOUNT_KEY, as an Azure endpoint
    (`.s3` is the same tenant over S3, `.data_dir` its files)."""
    from azfront import blobseal_fs_endpoint
    ep = blobseal_fs_endpoint(workdir)
    yield ep
    ep.server.stop()


@pytest.fixture(params=AZFRONT_ENDPOINTS)
def az_endpoint(request):
    """Each Azure endpoint in turn."""
    return request.getfixturevalue(f"azfront_{request.param}")


@pytest.fixture(params=[e for e in AZFRONT_ENDPOINTS if e == "blobseal"])
def az_blobseal(request):
    """The blobseal Azure endpoint only (tests of what Azurite cannot show: ciphertext, cross-protocol, refusals)."""
    return request.getfixturevalue("azfront_blobseal")


def pytest_configure(config):
    # --strict-markers: every marker the suite uses is declared here.
    config.addinivalue_line("markers", "slow: moves hundreds of MiB (tens of seconds each); deselect with -m 'not slow'")
