"""Issue 5 against real moto S3 + KMS: the aws-kms provider, a KMS outage, tenant isolation, and
rotate → rewrap → retire.

Root keys live in moto's KMS (one KMS key per root generation, tagged `blobseal:tenant`); lifetime keys in each
tenant's key store bucket on moto S3; data keys in each object's envelope (raw metadata `blobseal-envelope`).
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from botocore.exceptions import ClientError

import procs
from atrest import RawObject
from keyutil import (Deployment, Tenant, expect_error, kek_id, raw_kek_ids, raw_keys, read, rewrap_counts,
                     subject_key_id, unique_name)
from s3util import client_error, random_bytes, stored_size, unique_bucket

RT, IA, IB, ROT = unique_name("rt"), unique_name("isoa"), unique_name("isob"), unique_name("rot")


@pytest.fixture(scope="module")
def kms_dep(workdir, moto):
    """One blobseal whose tenants' root keys are in the session moto's KMS; cache TTL 1 s."""
    tenants = [Tenant(RT, "krt-"), Tenant(IA, "kia-"), Tenant(IB, "kib-"), Tenant(ROT, "kro-")]
    dep = Deployment(workdir, "bs-keys-kms", moto.endpoint, tenants, provider="kms", ttl=1)
    yield dep
    dep.stop()


def test_kms_round_trip_and_root_key_in_kms(kms_dep):
    dep, t = kms_dep, kms_dep.tenants[RT]
    c = dep.client(RT)
    bucket, data = unique_bucket(), random_bytes(200_000)
    c.create_bucket(Bucket=bucket)
    c.put_object(Bucket=bucket, Key="doc", Body=data)
    assert read(c, bucket, "doc") == data

    raw = RawObject.read(dep.raw, t.backend_bucket(bucket), "doc")
    assert kek_id(raw.metadata) == "tenant:1"
    assert len(raw.body) == stored_size(len(data)) and data[:64] not in raw.body

    # Root generation 1 is a KMS key blobseal created, tagged with the tenant, usable for encrypt/decrypt.
    roots = dep.root_ids(RT)
    assert list(roots) == [1], roots
    arn = roots[1]
    assert arn in [k["KeyArn"] for k in dep.kms.list_keys()["Keys"]]
    meta = dep.kms.describe_key(KeyId=arn)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    tags = dep.kms.list_resource_tags(KeyId=meta["KeyId"])["Tags"]
    assert {"TagKey": "blobseal:tenant", "TagValue": RT} in tags, tags

    # The stored lifetime key tenant:1 is a KMS ciphertext under that key, bound to tenant and key id.
    rec = json.loads(dep.raw.get_object(Bucket=t.key_store, Key=f"keys/{RT}/lifetime/tenant:1")["Body"].read())
    assert rec["root_id"] == arn and rec["root_gen"] == 1
    blob = base64.b64decode(rec["wrapped"])
    cx = {"blobseal:tenant": RT, "blobseal:key-id": "tenant:1"}
    assert len(dep.kms.decrypt(CiphertextBlob=blob, KeyId=arn, EncryptionContext=cx)["Plaintext"]) == 32
    with pytest.raises(ClientError):
        dep.kms.decrypt(CiphertextBlob=blob, KeyId=arn, EncryptionContext={**cx, "blobseal:tenant": IA})

    # After the cache TTL the key comes from KMS again: still the same plaintext.
    dep.wait_ttl()
    assert read(c, bucket, "doc") == data


def test_kms_outage_fails_closed(workdir, moto):
    """KMS on its own moto, S3 on the session's: once KMS is gone and the cache expired, requests get 503."""
    kms_moto = procs.moto_server(workdir)
    t = Tenant(unique_name("out"), "kou-")
    dep = Deployment(workdir, "bs-keys-outage", moto.endpoint, [t], provider="kms", kms_endpoint=kms_moto.endpoint,
                     ttl=1)
    try:
        c = dep.client(t.name)
        bucket = unique_bucket()
        c.create_bucket(Bucket=bucket)
        data, ann = random_bytes(70_000), random_bytes(1000)
        c.put_object(Bucket=bucket, Key="plain", Body=data)
        c.put_object(Bucket=bucket, Key="ann", Body=ann, Metadata={"data-subject": "ann"})
        assert read(c, bucket, "plain") == data and read(c, bucket, "ann") == ann
        assert len(dep.kms.list_keys()["Keys"]) == 1  # the KMS moto holds exactly this tenant's root

        kms_moto.stopped = True  # an outage, not a crash of something under test
        kms_moto.proc.kill()
        kms_moto.proc.wait(timeout=10)
        dep.wait_ttl()
        store_before = raw_keys(dep.raw, t.key_store)
        objects_before = raw_keys(dep.raw, t.backend_bucket(bucket))

        started = time.monotonic()
        for key in ("plain", "ann"):
            expect_error(lambda: c.get_object(Bucket=bucket, Key=key), 503, "ServiceUnavailable")
        # Writes: a new data subject (its key must be wrapped by KMS), the tenant key (must be unwrapped by KMS),
        # and the first object of a new bucket.
        expect_error(lambda: c.put_object(Bucket=bucket, Key="carol", Body=b"c" * 100,
                                          Metadata={"data-subject": "carol"}), 503, "ServiceUnavailable")
        expect_error(lambda: c.put_object(Bucket=bucket, Key="plain2", Body=b"p" * 100), 503, "ServiceUnavailable")
        bucket2 = unique_bucket()
        c.create_bucket(Bucket=bucket2)
        expect_error(lambda: c.put_object(Bucket=bucket2, Key="first", Body=b"f" * 100), 503, "ServiceUnavailable")
        assert time.monotonic() - started < 60, "a dead KMS must fail requests in seconds"

        # Nothing was written under some other key, and no key was created.
        assert raw_keys(dep.raw, t.backend_bucket(bucket)) == objects_before
        assert raw_keys(dep.raw, t.backend_bucket(bucket2)) == []
        assert raw_keys(dep.raw, t.key_store) == store_before
        assert dep.servers[0].alive()
    finally:
        dep.stop()
        kms_moto.stop()


def test_tenants_isolated_by_credentials_and_keys(kms_dep):
    dep, ta, tb = kms_dep, kms_dep.tenants[IA], kms_dep.tenants[IB]
    a, b = dep.client(IA), dep.client(IB)
    ba, bb = unique_bucket(), unique_bucket()
    a.create_bucket(Bucket=ba)
    b.create_bucket(Bucket=bb)
    secret = random_bytes(50_000)
    b.put_object(Bucket=bb, Key="secret", Body=secret)
    a.put_object(Bucket=ba, Key="secret", Body=b"A's own object")

    assert bb not in [x["Name"] for x in a.list_buckets()["Buckets"]]
    assert ba not in [x["Name"] for x in b.list_buckets()["Buckets"]]
    # A names B's bucket by B's name and by its backend name: never B's bucket. (A tenant cannot even name another
    # tenant's bucket: each name resolves inside the tenant's own prefix, so the answer is 403 or 404.)
    for name in (bb, tb.backend_bucket(bb)):
        for call in (lambda: a.list_objects_v2(Bucket=name),
                     lambda: a.get_object(Bucket=name, Key="secret"),
                     lambda: a.head_bucket(Bucket=name),
                     lambda: a.put_object(Bucket=name, Key="planted", Body=b"x"),
                     lambda: a.delete_object(Bucket=name, Key="secret")):
            expect_error(call, (403, 404))
    assert raw_keys(dep.raw, tb.backend_bucket(bb)) == ["secret"]
    assert read(b, bb, "secret") == secret

    # Someone with backend access copies B's ciphertext and metadata over A's object (same key name).
    dep.raw.copy_object(Bucket=ta.backend_bucket(ba), Key="secret", MetadataDirective="COPY",
                        CopySource={"Bucket": tb.backend_bucket(bb), "Key": "secret"})
    copied = RawObject.read(dep.raw, ta.backend_bucket(ba), "secret")
    assert kek_id(copied.metadata) == "tenant:1"  # A has a tenant:1 too: only the binding keeps them apart
    try:
        got = a.get_object(Bucket=ba, Key="secret")
        body = got["Body"].read()
        pytest.fail(f"B's ciphertext read back through A: {len(body)} bytes, plaintext: {body == secret}")
    except ClientError as e:
        assert client_error(e)[0] in (403, 500), client_error(e)
    assert read(b, bb, "secret") == secret


def test_rotate_rewrap_retire(kms_dep):
    dep, t = kms_dep, kms_dep.tenants[ROT]
    c = dep.client(ROT)
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    data = {f"o{i}": random_bytes(1000 * i + 70_000 * (i % 2)) for i in range(1, 5)}
    data["subj"] = random_bytes(3000)
    for k, v in data.items():
        c.put_object(Bucket=bucket, Key=k, Body=v, **({"Metadata": {"data-subject": "zed"}} if k == "subj" else {}))
    zed = subject_key_id(ROT, "zed")
    raw_bucket = t.backend_bucket(bucket)
    assert raw_kek_ids(dep.raw, raw_bucket) == {**{f"o{i}": "tenant:1" for i in range(1, 5)}, "subj": zed}
    bodies = {k: dep.raw.get_object(Bucket=raw_bucket, Key=k)["Body"].read() for k in data}
    arn1 = dep.root_ids(ROT)[1]

    dep.cli("keys", "rotate", "--tenant", ROT)
    roots = dep.root_ids(ROT)
    assert sorted(roots) == [1, 2] and roots[1] == arn1 and roots[2] != arn1
    arn2 = roots[2]
    assert dep.cli("keys", "status", "--tenant", ROT).stdout.strip()
    dep.wait_ttl()  # the server picks the rotation up within its cache TTL
    data["z-new"] = random_bytes(5000)
    c.put_object(Bucket=bucket, Key="z-new", Body=data["z-new"])
    assert kek_id(dep.raw.head_object(Bucket=raw_bucket, Key="z-new")["Metadata"]) == "tenant:2"
    for k, v in data.items():
        assert read(c, bucket, k) == v, k

    refused = dep.cli("keys", "retire", "--tenant", ROT, expect_rc=1)
    assert refused.stderr.strip(), "retire must say why it refuses"
    assert dep.kms.describe_key(KeyId=arn1)["KeyMetadata"]["KeyState"] == "Enabled"

    # Rewrap one object, then resume: the rerun continues after the checkpoint.
    first = rewrap_counts(dep.cli("keys", "rewrap", "--tenant", ROT, "--limit", "1").stdout)
    assert first[0] == 1 and first[3] == 0, first
    kinds = raw_kek_ids(dep.raw, raw_bucket)
    assert sorted(kinds[f"o{i}"] for i in range(1, 5)) == ["tenant:1"] * 3 + ["tenant:2"], kinds
    second = rewrap_counts(dep.cli("keys", "rewrap", "--tenant", ROT).stdout)
    assert second[0] == 3 and second[3] == 0, second
    assert second[2] == 1, f"the subject's object counts as under a data-subject key: {second}"
    assert sum(first) + sum(second) == len(data), f"resumed, not restarted: {first} then {second} for {len(data)}"
    assert raw_kek_ids(dep.raw, raw_bucket) == {**{k: "tenant:2" for k in data if k != "subj"}, "subj": zed}
    # Only the envelope changed: the ciphertext bodies are the very same bytes.
    for k, body in bodies.items():
        assert dep.raw.get_object(Bucket=raw_bucket, Key=k)["Body"].read() == body, k
    third = rewrap_counts(dep.cli("keys", "rewrap", "--tenant", ROT, "--bucket", bucket).stdout)
    assert third[0] == 0 and third[3] == 0, third

    dep.cli("keys", "retire", "--tenant", ROT)
    assert dep.kms.describe_key(KeyId=arn1)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert dep.kms.describe_key(KeyId=arn2)["KeyMetadata"]["KeyState"] == "Enabled"
    lifetime = raw_keys(dep.raw, t.key_store, f"keys/{ROT}/lifetime/")
    assert f"keys/{ROT}/lifetime/tenant:1" not in lifetime and f"keys/{ROT}/lifetime/tenant:2" in lifetime
    dep.wait_ttl()
    for k, v in data.items():  # the subject's key was re-wrapped under the new root before the old one went
        assert read(c, bucket, k) == v, k
    c.put_object(Bucket=bucket, Key="after", Body=b"after retire")
    assert kek_id(dep.raw.head_object(Bucket=raw_bucket, Key="after")["Metadata"]) == "tenant:2"
    assert read(c, bucket, "after") == b"after retire"
