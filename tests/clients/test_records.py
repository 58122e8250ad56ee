"""`blobseal records` (issue 15, item 4): the processor's Art. 30(2) record generated from the config, in Markdown and
JSON, on the embedded default and on a YAML config that names the processor and a controller and stores in a
region outside the EEA (a transfer the record must list)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import procs

YAML = """\
listen: 127.0.0.1:9
processor:
  name: Example Processing GmbH
  contact: Hauptstr. 1, 10115 Berlin, privacy@example.net
  dpo: Dr. A. Datenschutz, dpo@example.net
key_provider: { kind: local, keyring: ./rec/keyring.json, master_key_file: ./rec/master.key, region: eu-central-1 }
backends:
  - { name: fra, kind: fs, path: ./rec/fra, region: eu-central-1 }
  - { name: virginia, kind: fs, path: ./rec/us, region: us-east-1 }
tenants:
  - name: acme
    default_backend: fra
    access_keys: [{ id: ACMEKEY, secret_env: ACME_SECRET }]
    controller:
      name: ACME Telecom AG
      contact: legal@acme.example
      purposes: [customer support call recordings]
      data_categories: [voice recordings, phone numbers]
      subject_categories: [customers]
    backups: [{ backend: virginia, bucket: acme-dr }]
    retention: { default: 90d, rules: [{ name: calls, prefix: "calls/", keep: 28d }] }
"""


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    full = procs.clean_env()
    full.update(env)
    return subprocess.run([procs.blobseal_bin(), *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_records_on_the_embedded_default(workdir):
    env = {"BLOBSEAL_DATA_DIR": str(workdir / "rec-default"), "BLOBSEAL_ACCESS_KEY_ID": "RECKEY",
           "BLOBSEAL_SECRET_ACCESS_KEY": "x" * 40}
    md = run(["records"], env, workdir)
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# Record of processing activities of a processor (GDPR Art. 30(2))"), md.stdout[:200]
    assert "## Controller: tenant `default`" in md.stdout and "AES-256-GCM" in md.stdout
    assert "add `processor:` to the config" in md.stdout
    rec = json.loads(run(["records", "--format", "json"], env, workdir).stdout)
    assert rec["processor"] is None and [c["tenant"] for c in rec["controllers"]] == ["default"]
    assert any(s["role"] == "storage" for s in rec["sub_processors"])
    assert "x" * 40 not in md.stdout  # never a secret


def test_records_name_the_parties_places_and_transfers(workdir):
    (workdir / "records.yaml").write_text(YAML)
    env = {"ACME_SECRET": "s" * 40}
    out = run(["records", "--format", "json", "--config", "records.yaml"], env, workdir)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["processor"]["name"] == "Example Processing GmbH" and rec["processor"]["dpo"].startswith("Dr.")
    (acme,) = rec["controllers"]
    assert acme["controller"]["name"] == "ACME Telecom AG"
    assert acme["purposes"] == ["customer support call recordings"]
    assert acme["subject_categories"] == ["customers"]
    where = {p["what"]: p for p in acme["places"]}
    objects = where["objects (backend fra)"]
    assert (objects["country"], objects["third_country"], objects["basis"]) == ("DE", False, "EEA")
    backup = next(p for p in acme["places"] if p["what"].startswith("backup copies"))
    assert backup["country"] == "US" and backup["third_country"]
    assert [p["what"] for p in acme["transfers"]] == [backup["what"]]
    assert acme["retention"] == ["default: 90d", "calls: 28d"]
    assert {s["name"] for s in rec["sub_processors"]} == {"fra", "virginia", "default"}
    md = run(["records", "--config", "records.yaml"], env, workdir).stdout
    assert "Transfers to third countries (30(2)(c))" in md and "to US" in md
    assert "s" * 40 not in md and "s" * 40 not in out.stdout
    # A processor block may not carry a controller's purposes.
    bad = YAML.replace("  dpo: Dr.", "  purposes: [x]\n  dpo: Dr.")
    (workdir / "bad.yaml").write_text(bad)
    res = run(["check-config", "bad.yaml"], env, workdir)
    assert res.returncode == 2 and "belong to each tenant's controller" in res.stderr, res.stderr
