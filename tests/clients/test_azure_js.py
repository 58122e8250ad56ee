"""The Azure JS SDK (@azure/storage-blob 12, npm) against blobseal's Azure front end: azure_js_smoke.mjs.

`[azurite]` runs the same script against Azurite straight (the reference), `[blobseal]` against blobseal.
tests/run installs the SDK into $BLOBSEAL_TEST_CACHE/azure-js and exports BLOBSEAL_AZURE_JS; without it the test
fails (it never skips).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from procs import clean_env

SCRIPT = Path(__file__).resolve().parent / "azure_js_smoke.mjs"


def azure_js_dir() -> str:
    path = os.environ.get("BLOBSEAL_AZURE_JS")
    if not path:
        pytest.fail("BLOBSEAL_AZURE_JS is not set: run tests/run, which installs @azure/storage-blob (npm) into "
                    "$BLOBSEAL_TEST_CACHE/azure-js and exports it")
    if not (Path(path) / "node_modules" / "@azure" / "storage-blob" / "package.json").is_file():
        pytest.fail(f"BLOBSEAL_AZURE_JS={path} holds no node_modules/@azure/storage-blob")
    return path


def test_azure_js_sdk_smoke(az_endpoint):
    js_dir = azure_js_dir()
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (Node.js) is not on PATH")
    env = {**clean_env(), "BLOBSEAL_AZURE_JS": js_dir, "AZURE_STORAGE_CONNECTION_STRING": az_endpoint.conn_str()}
    env.pop("NODE_OPTIONS", None)
    proc = subprocess.run([node, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"azure_js_smoke.mjs against {az_endpoint.name} exited {proc.returncode}:\n{output}"
    assert proc.stdout.startswith("OK "), output
