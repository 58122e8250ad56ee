"""Two tenants on one moto backend: credentials and keys keep them apart; virtual-host addressing."""

from __future__ import annotations

import secrets

import pytest
from botocore.exceptions import ClientError

import procs
from instances import MOTO_KEY, MOTO_SECRET
from s3util import client_error, random_bytes, s3_client, unique_bucket

CONFIG = """\
listen: "127.0.0.1:{port}"
virtual_host_domain: s3.localtest
key_provider: {kind: local, keyring: "@KEYRING@", master_key_file: "@KEYRING@.master"}
backends:
  - name: moto
    kind: s3
    endpoint: "@MOTO@"
    region: us-east-1
    force_path_style: true
    credentials: {access_key_id_env: BST_MOTO_KEY, secret_access_key_env: BST_MOTO_SECRET}
tenants:
  - name: alpha
    default_backend: moto
    bucket_prefix: "alpha-"
    access_keys: [{id: ALPHAKEY, secret_env: BST_ALPHA_SECRET}]
  - name: beta
    default_backend: moto
    bucket_prefix: "beta-"
    access_keys: [{id: BETAKEY, secret_env: BST_BETA_SECRET}]
"""


@pytest.fixture(scope="module")
def two_tenants(workdir, moto):
    sa, sb = secrets.token_hex(20), secrets.token_hex(20)
    cfg = CONFIG.replace("@KEYRING@", str(workdir / "tenants-keys" / "keyring.json")).replace("@MOTO@", moto.endpoint)
    server = procs.blobseal(workdir, "bs-tenants", {"BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET,
                                                    "BST_ALPHA_SECRET": sa, "BST_BETA_SECRET": sb,
                                                    "BLOBSEAL_DATA_DIR": str(workdir / "tenants-data")},
                            config=cfg)
    alpha = s3_client(server.endpoint, "ALPHAKEY", sa)
    beta = s3_client(server.endpoint, "BETAKEY", sb)
    raw = s3_client(moto.endpoint, MOTO_KEY, MOTO_SECRET)
    server.alpha_secret = sa
    yield server, alpha, beta, raw
    server.stop()


def test_tenants_cannot_reach_each_others_buckets(two_tenants):
    _, alpha, beta, _ = two_tenants
    bucket = unique_bucket()
    alpha.create_bucket(Bucket=bucket)
    alpha.put_object(Bucket=bucket, Key="secret.txt", Body=b"alpha's data")
    assert bucket in [b["Name"] for b in alpha.list_buckets()["Buckets"]]
    assert bucket not in [b["Name"] for b in beta.list_buckets()["Buckets"]]
    # Bucket names are one namespace across tenants (as across S3 accounts): beta gets AccessDenied on
    # alpha's bucket for every operation, and cannot create a bucket of that name.
    for call in (lambda: beta.get_object(Bucket=bucket, Key="secret.txt"),
                 lambda: beta.head_object(Bucket=bucket, Key="secret.txt"),
                 lambda: beta.put_object(Bucket=bucket, Key="planted.txt", Body=b"x"),
                 lambda: beta.list_objects_v2(Bucket=bucket),
                 lambda: beta.delete_object(Bucket=bucket, Key="secret.txt"),
                 lambda: beta.delete_bucket(Bucket=bucket),
                 lambda: beta.head_bucket(Bucket=bucket)):
        with pytest.raises(ClientError) as e:
            call()
        assert client_error(e.value)[0] == 403, client_error(e.value)
    with pytest.raises(ClientError) as e:
        beta.create_bucket(Bucket=bucket)
    assert client_error(e.value)[:2] == (409, "BucketAlreadyExists"), client_error(e.value)
    assert alpha.get_object(Bucket=bucket, Key="secret.txt")["Body"].read() == b"alpha's data"
    assert [o["Key"] for o in alpha.list_objects_v2(Bucket=bucket)["Contents"]] == ["secret.txt"]
    # Beta cannot reach alpha's backend bucket by its backend name either: that name is under alpha's prefix.
    with pytest.raises(ClientError) as e:
        beta.list_objects_v2(Bucket=f"alpha-{bucket}"[:63])
    assert client_error(e.value)[0] in (403, 404)
    assert alpha.get_object(Bucket=bucket, Key="secret.txt")["Body"].read() == b"alpha's data"


def test_delete_objects_on_a_foreign_or_missing_bucket_fails_whole(two_tenants):
    _, alpha, beta, _ = two_tenants
    bucket = unique_bucket()
    alpha.create_bucket(Bucket=bucket)
    alpha.put_object(Bucket=bucket, Key="keep.txt", Body=b"alpha's")
    batch = {"Objects": [{"Key": "keep.txt"}, {"Key": "other"}]}
    with pytest.raises(ClientError) as e:
        beta.delete_objects(Bucket=bucket, Delete=batch)
    assert client_error(e.value)[:2] == (403, "AccessDenied"), client_error(e.value)
    with pytest.raises(ClientError) as e:
        alpha.delete_objects(Bucket=unique_bucket(), Delete=batch)
    assert client_error(e.value)[:2] == (404, "NoSuchBucket"), client_error(e.value)
    assert alpha.get_object(Bucket=bucket, Key="keep.txt")["Body"].read() == b"alpha's"
    done = alpha.delete_objects(Bucket=bucket, Delete=batch)
    assert sorted(d["Key"] for d in done["Deleted"]) == ["keep.txt", "other"]


def test_ciphertext_moved_to_another_tenant_does_not_decrypt(two_tenants):
    _, alpha, beta, raw = two_tenants
    ba, bb = unique_bucket(), unique_bucket()
    alpha.create_bucket(Bucket=ba)
    beta.create_bucket(Bucket=bb)
    data = random_bytes(100_000)
    alpha.put_object(Bucket=ba, Key="doc", Body=data)
    beta.put_object(Bucket=bb, Key="doc", Body=b"beta's own")
    # Someone with backend access copies alpha's raw object (bytes and metadata) over beta's, same key.
    raw.copy_object(Bucket=f"beta-{bb}", Key="doc", CopySource={"Bucket": f"alpha-{ba}", "Key": "doc"},
                    MetadataDirective="COPY")
    with pytest.raises(ClientError) as e:
        beta.get_object(Bucket=bb, Key="doc")["Body"].read()
    assert client_error(e.value)[0] == 500
    with pytest.raises(ClientError):
        beta.head_object(Bucket=bb, Key="doc")
    assert alpha.get_object(Bucket=ba, Key="doc")["Body"].read() == data


def test_wrong_secret_and_unknown_key(two_tenants):
    server, _, _, _ = two_tenants
    bad = s3_client(server.endpoint, "ALPHAKEY", "not-the-secret")
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert client_error(e.value) == (403, "SignatureDoesNotMatch")
    unknown = s3_client(server.endpoint, "NOSUCHKEY", "whatever")
    with pytest.raises(ClientError) as e:
        unknown.list_buckets()
    assert client_error(e.value) == (403, "InvalidAccessKeyId")


def test_virtual_host_style(two_tenants):
    server, alpha, _, _ = two_tenants
    bucket = unique_bucket()
    alpha.create_bucket(Bucket=bucket)
    alpha.put_object(Bucket=bucket, Key="v/h.txt", Body=b"virtual host")
    port = server.endpoint.rsplit(":", 1)[1]
    # Address the bucket by Host header (`<bucket>.s3.localtest`), sending the request to loopback.
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib.error
    import urllib.request
    host = f"{bucket}.s3.localtest:{port}"
    req = AWSRequest(method="GET", url=f"http://{host}/v/h.txt", headers={"Host": host})
    S3SigV4Auth(Credentials("ALPHAKEY", server.alpha_secret), "s3", "us-east-1").add_auth(req)
    r = urllib.request.Request(f"http://127.0.0.1:{port}/v/h.txt", headers=dict(req.headers.items()), method="GET")
    try:
        with urllib.request.urlopen(r) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{e.code}: {e.read()!r}") from e
    assert body == b"virtual host"
