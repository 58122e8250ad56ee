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
