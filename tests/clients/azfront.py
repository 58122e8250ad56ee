"""The Azure Blob REST front end under test: endpoints (Azurite as the reference, blobseal), connection strings
and Azure SDK clients for them (tests/clients/test_azure_front.py).

An endpoint is an account URL, path-style: `http://127.0.0.1:<port>/<account>`, with a SharedKey account key.
The same test functions run against Azurite (the reference emulator: what the SDK and Azure expect) and against
blobseal's Azure front end (embedded default on the filesystem, `BLOBSEAL_AZURE_*` variables).
"""

from __future__ import annotations

import base64
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import procs
from s3util import Instance

# Clients never retry: a server error must show up as the error it is, not be hidden by a retry that
# happened to succeed (the same rule as s3util.s3_client).
CLIENT_OPTIONS = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 120}


@dataclass
class AzEndpoint:
    """One Azure Blob service under test."""
    name: str  # "azurite" (reference) or "blobseal"
    host: str  # http://127.0.0.1:<port>
    account: str
    key: str  # the account key (base64); for blobseal the first of the account's keys
    keys: list[str] = field(default_factory=list)  # every valid key (blobseal YAML accounts have two)
    s3: Instance | None = None  # blobseal: the S3 side of the same tenant (same buckets)
    data_dir: Path | None = None  # blobseal on fs: where the ciphertext files are
    server: object = field(default=None, repr=False)

    @property
    def is_blobseal(self) -> bool:
        return self.name == "blobseal"

    @property
    def account_url(self) -> str:
        return f"{self.host}/{self.account}"

    def conn_str(self, key: str | None = None) -> str:
        return connection_string(self.host, self.account, key or self.key)

    def service(self, key: str | None = None, **options):
        """A BlobServiceClient from the connection string (SharedKey). `options` go to the client (e.g.
        max_single_put_size, max_block_size, max_single_get_size, max_chunk_get_size)."""
        from azure.storage.blob import BlobServiceClient
        return BlobServiceClient.from_connection_string(self.conn_str(key), **{**CLIENT_OPTIONS, **options})

    def service_with(self, credential, **options):
        """A BlobServiceClient on the account URL with any credential (a SAS string, a wrong key, None)."""
        from azure.storage.blob import BlobServiceClient
        return BlobServiceClient(self.account_url, credential=credential, **{**CLIENT_OPTIONS, **options})


def connection_string(host: str, account: str, key: str) -> str:
    """`DefaultEndpointsProtocol=http;AccountName=…;AccountKey=…;BlobEndpoint=<host>/<account>;`"""
    return (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"BlobEndpoint={host}/{account};")


def service_client(endpoint: AzEndpoint, **options):
    """Shorthand for `endpoint.service(**options)`."""
    return endpoint.service(**options)


def new_account_key() -> str:
    """A random account key in Azure's format (base64 of 64 bytes)."""
    return base64.b64encode(os.urandom(64)).decode()


def unique_container(prefix: str = "azf-") -> str:
    """A fresh container name (3-63 of a-z 0-9 -), which is also a valid S3 bucket name."""
    return prefix + uuid.uuid4().hex[:16]


def empty_and_delete_container(service, name: str) -> None:
    """Best-effort clean-up: every blob (and snapshot), then the container."""
    from azure.core.exceptions import HttpResponseError
    cc = service.get_container_client(name)
    try:
        for b in cc.list_blobs():
            try:
                cc.delete_blob(b.name, delete_snapshots="include")
            except HttpResponseError:
                pass
        cc.delete_container()
    except HttpResponseError:
        pass


# ---- starting the endpoints ------------------------------------------------------------------------------------

def azurite_endpoint(workdir: Path) -> AzEndpoint:
    """An Azurite of its own (not the session's `azurite`, whose every container test_azure_backend scans), with
    its well-known development account."""
    server = procs.azurite_server(workdir)
    return AzEndpoint("azurite", server.endpoint, procs.AZURITE_ACCOUNT, procs.AZURITE_KEY, [procs.AZURITE_KEY],
                      server=server)


def wait_azure_port(server: procs.Server, port: int, timeout: float = 15.0) -> None:
    """blobseal logs `listening on` for its S3 listener: wait until its Azure port accepts connections too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise procs.ServerError(f"{server.name} exited before serving Azure:\n{server.log()[-4000:]}")
        if procs.port_open(port):
            return
        time.sleep(0.05)
    server.stop()
    raise procs.ServerError(f"{server.name}: nothing listens on the Azure port {port} after {timeout}s (is the "
                            f"Azure front end built in?):\n{server.log()[-4000:]}")


def blobseal_fs_endpoint(workdir: Path, name: str = "bs-fs-azfront") -> AzEndpoint:
    """blobseal's embedded default on the filesystem with its Azure front end:
    BLOBSEAL_AZURE_LISTEN / BLOBSEAL_AZURE_ACCOUNT / BLOBSEAL_AZURE_ACCOUNT_KEY next to the usual S3 variables."""
    ak, sk = "BSTAZFRONTACCESSKEY", secrets.token_hex(20)
    account, key = "bsfront" + secrets.token_hex(4), new_account_key()
    data = workdir / f"{name}-data"
    az_port = procs.free_port()
    server = procs.blobseal(workdir, name, {
        "BLOBSEAL_DATA_DIR": str(data), "BLOBSEAL_ACCESS_KEY_ID": ak, "BLOBSEAL_SECRET_ACCESS_KEY": sk,
        "BLOBSEAL_AZURE_LISTEN": f"127.0.0.1:{az_port}", "BLOBSEAL_AZURE_ACCOUNT": account,
        "BLOBSEAL_AZURE_ACCOUNT_KEY": key})
    wait_azure_port(server, az_port)
    s3 = Instance("fs", server.endpoint, ak, sk, data_dir=data, server=server)
    return AzEndpoint("blobseal", f"http://127.0.0.1:{az_port}", account, key, [key], s3=s3, data_dir=data,
                      server=server)


# A config file with an fs backend and one tenant whose Azure account has two keys (key1, key2: both valid).
YAML_CONFIG = """\
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
      - { id: @AK@, secret_env: BST_ACME_SECRET }
    azure_account:
      name: @ACCOUNT@
      keys:
        - { key_env: BST_ACME_AZ_KEY1 }
        - { key_env: BST_ACME_AZ_KEY2 }
buckets: []
"""


def blobseal_yaml_endpoint(workdir: Path, name: str) -> AzEndpoint:
    """blobseal from a YAML config (`azure_listen`, a tenant `azure_account` with two keys) on the filesystem."""
    ak, sk = "BSTYAMLAZACCESSKEY", secrets.token_hex(20)
    account, key1, key2 = "acme" + secrets.token_hex(4), new_account_key(), new_account_key()
    data = workdir / f"{name}-data"
    az_port = procs.free_port()
    text = (YAML_CONFIG.replace("@AZPORT@", str(az_port)).replace("@DIR@", str(data)).replace("@AK@", ak)
            .replace("@ACCOUNT@", account))
    server = procs.blobseal(workdir, name, {"BST_ACME_SECRET": sk, "BST_ACME_AZ_KEY1": key1,
                                            "BST_ACME_AZ_KEY2": key2, "BLOBSEAL_DATA_DIR": str(data)}, config=text)
    wait_azure_port(server, az_port)
    s3 = Instance("fs", server.endpoint, ak, sk, data_dir=data, server=server)
    return AzEndpoint("blobseal", f"http://127.0.0.1:{az_port}", account, key1, [key1, key2], s3=s3,
                      data_dir=data, server=server)
