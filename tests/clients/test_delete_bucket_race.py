"""DeleteBucket racing PutObject on the fs backend is linearizable.

The old DeleteBucket checked "empty" and then removed the directory: a PUT renamed in between answered
200 and its object went with the bucket (1-2 rounds in 150). Now either the PUT fails or DeleteBucket
answers BucketNotEmpty and the object is there.
"""

from __future__ import annotations

import threading
import time

from botocore.exceptions import ClientError

from s3util import client_error, unique_bucket

ROUNDS = 150


def test_no_put_answered_ok_is_lost_to_a_racing_delete_bucket(bs_fs):
    put_c, del_c, check_c = bs_fs.client(), bs_fs.client(), bs_fs.client()
    body = b"r" * 40_000
    outcomes = {"put": 0, "delete": 0}
    for round_ in range(ROUNDS):
        bucket = unique_bucket()
        check_c.create_bucket(Bucket=bucket)
        result: dict[str, object] = {}
        go = threading.Barrier(2)

        def do_put():
            go.wait()
            try:
                put_c.put_object(Bucket=bucket, Key="k", Body=body)
                result["put"] = "ok"
            except ClientError as e:
                result["put"] = client_error(e)

        def do_delete():
            go.wait()
            # Sweep the delete across the PUT's lifetime (a PUT through the proxy takes a few ms).
            time.sleep((round_ % 15) * 0.001)
            try:
                del_c.delete_bucket(Bucket=bucket)
                result["delete"] = "ok"
            except ClientError as e:
                result["delete"] = client_error(e)

        threads = [threading.Thread(target=do_put), threading.Thread(target=do_delete)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if result["put"] == "ok":
            assert result["delete"] == (409, "BucketNotEmpty"), f"round {round_}: {result}"
            assert check_c.get_object(Bucket=bucket, Key="k")["Body"].read() == body, f"round {round_}"
            check_c.delete_object(Bucket=bucket, Key="k")
            check_c.delete_bucket(Bucket=bucket)
            outcomes["put"] += 1
        else:
            assert result["delete"] == "ok", f"round {round_}: {result}"
            outcomes["delete"] += 1
    print(outcomes)
    # Both orders happened, so the race was exercised.
    assert outcomes["put"] and outcomes["delete"], outcomes


def test_delete_bucket_killed_after_its_tombstone_rename(workdir):
    """kill -9 inside DeleteBucket (bucket renamed to its tombstone, not yet removed): after a restart
    the bucket is gone, its name can be created again, and nothing of it shows."""
    import secrets

    import procs
    from botocore.exceptions import BotoCoreError
    from s3util import s3_client

    ak, sk = "BSTTOMBACCESSKEY", secrets.token_hex(20)
    data = workdir / "bs-tomb-data"
    env = {"BLOBSEAL_DATA_DIR": str(data), "BLOBSEAL_ACCESS_KEY_ID": ak, "BLOBSEAL_SECRET_ACCESS_KEY": sk}
    armed = procs.blobseal(workdir, "bs-tomb-1", {**env, "BLOBSEAL_FAILPOINT": "fs.delete-bucket.after-tombstone"})
    c = s3_client(armed.endpoint, ak, sk)
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    c.put_object(Bucket=bucket, Key="gone", Body=b"x")
    c.delete_object(Bucket=bucket, Key="gone")
    try:
        c.delete_bucket(Bucket=bucket)
        raise AssertionError("the failpoint was not hit")
    except (BotoCoreError, ClientError):
        pass
    armed.proc.wait(timeout=10)
    armed.stopped = True
    server = procs.blobseal(workdir, "bs-tomb-2", env)
    try:
        c = s3_client(server.endpoint, ak, sk)
        assert bucket not in [b["Name"] for b in c.list_buckets()["Buckets"]]
        c.create_bucket(Bucket=bucket)
        c.put_object(Bucket=bucket, Key="k", Body=b"again")
        assert c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"again"
        assert [o["Key"] for o in c.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["k"]
    finally:
        server.stop()
