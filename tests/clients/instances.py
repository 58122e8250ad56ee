"""The blobseal instances under test and their configuration (shared by conftest.py and tests that start their own)."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import procs

MOTO_KEY, MOTO_SECRET = "moto-backend-key", "moto-backend-secret"

# YAML for a blobseal with one backend, named `{backend}`, and one tenant acme on it. `{port}`, `{keyring}`,
# `{access_key}` and `{keystore}` are filled in; BACKENDS below give the backend blocks.
CONFIG = """\
listen: "127.0.0.1:{port}"
key_provider:
  kind: local
  keyring: "{keyring}"
  master_key_file: "{keyring}.master"
backends:
{backend_yaml}tenants:
  - name: acme
    default_backend: {backend}
    bucket_prefix: "acme-"
    # One key store per keyring: several deployments (tests) share this backend, replicas share a keyring.
    key_store: {bucket: "{keystore}"}
    access_keys:
      - id: {access_key}
        secret_env: BST_ACME_SECRET
buckets: []
"""

# The backend blocks: `{url}` is the server's URL (moto's endpoint; the Azurite account's blob URL).
BACKENDS = {
    "moto": """\
  - name: moto
    kind: s3
    endpoint: "{url}"
    region: us-east-1
    force_path_style: true
    credentials:
      access_key_id_env: BST_MOTO_KEY
      secret_access_key_env: BST_MOTO_SECRET
""",
    "azure": """\
  - name: azure
    kind: azure
    endpoint: "{url}"
    account: devstoreaccount1
    region: uksouth
    redundancy: lrs
    credentials:
      account_key_env: BST_AZ_KEY
""",
}


def config(backend: str, url: str, keyring: Path, access_key: str) -> str:
    """CONFIG for `backend` ("moto" or "azure") at `url`, except `{port}` which procs.blobseal replaces once it
    picked the port."""
    keystore = "ks-" + hashlib.sha1(str(keyring).encode()).hexdigest()[:16]
    return (CONFIG.replace("{backend_yaml}", BACKENDS[backend].replace("{url}", url))
            .replace("{backend}", backend).replace("{keyring}", str(keyring))
            .replace("{access_key}", access_key).replace("{keystore}", keystore))


def moto_config(moto_endpoint: str, keyring: Path, access_key: str) -> str:
    return config("moto", moto_endpoint, keyring, access_key)


def start_moto_blobseal(workdir: Path, name: str, moto_endpoint: str) -> tuple[procs.Server, str, str]:
    """A blobseal with `config("moto", ...)` in front of `moto_endpoint`; returns (server, access key, secret)."""
    ak, sk = "BSTMOTOACCESSKEY", secrets.token_hex(20)
    # blobseal creates the keyring (0600, in a new 0700 dir) with a fresh key for each tenant.
    keyring = workdir / f"{name}-keys" / "keyring.json"
    server = procs.blobseal(workdir, name, {"BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET,
                                            "BST_ACME_SECRET": sk, "BLOBSEAL_DATA_DIR": str(workdir / f"{name}-data")},
                            config=moto_config(moto_endpoint, keyring, ak))
    return server, ak, sk


def start_moto_blobseal_with(workdir: Path, name: str, moto_endpoint: str, keyring: Path, access_key: str,
                             secret_key: str) -> procs.Server:
    """Like start_moto_blobseal, but with a given keyring and tenant credentials.

    Several processes started with the same arguments (but different names) are replicas of one
    deployment: same backend, same tenant keys, so any of them can serve an upload another began.
    The first one creates the keyring; start them one after the other.
    """
    return procs.blobseal(workdir, name, {"BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET,
                                          "BST_ACME_SECRET": secret_key,
                                          "BLOBSEAL_DATA_DIR": str(workdir / f"{name}-data")},
                          config=moto_config(moto_endpoint, keyring, access_key))


def start_azure_blobseal(workdir: Path, name: str, azurite_account_url: str) -> tuple[procs.Server, str, str]:
    """A blobseal with `config("azure", ...)` in front of an Azurite account; returns (server, access key, secret)."""
    ak, sk = "BSTAZUREACCESSKEY", secrets.token_hex(20)
    keyring = workdir / f"{name}-keys" / "keyring.json"
    server = procs.blobseal(workdir, name, {"BST_AZ_KEY": procs.AZURITE_KEY, "BST_ACME_SECRET": sk,
                                            "BLOBSEAL_DATA_DIR": str(workdir / f"{name}-data")},
                            config=config("azure", azurite_account_url, keyring, ak))
    return server, ak, sk
