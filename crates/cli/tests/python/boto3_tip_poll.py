"""boto3 polling a shard's tip against a server whose tip wait is long (10 s): the repeated
poll waits on the same pooled connection and returns the record another client puts."""
import threading
import time
import unittest
import urllib.request

from boto3_suite import ENDPOINT, client


def waiting_now():
    text = urllib.request.urlopen(f"{ENDPOINT}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("millstream_get_records_tip_waiting "):
            return float(line.split()[1])
    return None


class TipPoll(unittest.TestCase):
    def test_a_repeated_poll_returns_the_record_put_while_it_waits(self):
        producer, consumer = client(), client()
        producer.create_stream(StreamName="tip-py", ShardCount=1)
        producer.get_waiter("stream_exists").wait(StreamName="tip-py", WaiterConfig={"Delay": 1})
        iterator = consumer.get_shard_iterator(
            StreamName="tip-py", ShardId="shardId-000000000000", ShardIteratorType="LATEST"
        )["ShardIterator"]
        first = consumer.get_records(ShardIterator=iterator)
        self.assertEqual(first["Records"], [])
        answer = {}

        def poll():
            started = time.monotonic()
            answer["page"] = consumer.get_records(ShardIterator=first["NextShardIterator"])
            answer["took"] = time.monotonic() - started

        poller = threading.Thread(target=poll)
        poller.start()
        deadline = time.monotonic() + 30
        while waiting_now() != 1.0:
            self.assertLess(time.monotonic(), deadline, "the repeated poll never waited")
            time.sleep(0.02)
        producer.put_record(StreamName="tip-py", Data=b"for the waiting poll", PartitionKey="k")
        poller.join(30)
        self.assertFalse(poller.is_alive())
        self.assertLess(answer["took"], 5, "answered when the record landed, not after 10 s")
        records = answer["page"]["Records"]
        self.assertEqual([r["Data"] for r in records], [b"for the waiting poll"])
        self.assertEqual(answer["page"]["MillisBehindLatest"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
