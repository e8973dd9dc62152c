"""boto3 against a running Millstream (MILLSTREAM_ENDPOINT): what Python users do every day."""
import os
import sys
import time
import unittest

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["MILLSTREAM_ENDPOINT"]


def client():
    return boto3.client(
        "kinesis",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"mode": "legacy", "max_attempts": 2}),
    )


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


class Boto3Suite(unittest.TestCase):
    def setUp(self):
        self.kinesis = client()

    def test_create_wait_put_get(self):
        name = unique("py")
        self.kinesis.create_stream(StreamName=name, ShardCount=2)
        self.kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
        put = self.kinesis.put_record(StreamName=name, Data=b"\x00binary\xff", PartitionKey="pk")
        self.assertEqual(len(put["SequenceNumber"]), 56)
        iterator = self.kinesis.get_shard_iterator(
            StreamName=name, ShardId=put["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=put["SequenceNumber"])["ShardIterator"]
        records = self.kinesis.get_records(ShardIterator=iterator)
        self.assertEqual(records["Records"][0]["Data"], b"\x00binary\xff")
        self.assertEqual(records["Records"][0]["PartitionKey"], "pk")
        self.assertIn("ApproximateArrivalTimestamp", records["Records"][0])
        self.assertEqual(records["MillisBehindLatest"], 0)

    def test_put_records_batch_and_read_back_everything(self):
        name = unique("batch")
        self.kinesis.create_stream(StreamName=name, ShardCount=3)
        entries = [{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(500)]
        result = self.kinesis.put_records(StreamName=name, Records=entries)
        self.assertEqual(result["FailedRecordCount"], 0)
        seen = []
        for shard in self.kinesis.list_shards(StreamName=name)["Shards"]:
            it = self.kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                page = self.kinesis.get_records(ShardIterator=it, Limit=1000)
                seen.extend(r["Data"] for r in page["Records"])
                if not page["Records"] and page["MillisBehindLatest"] == 0:
                    break
                it = page.get("NextShardIterator")
        self.assertEqual(sorted(seen), sorted(e["Data"] for e in entries))

    def test_paginators_walk_every_page(self):
        prefix = unique("pg")
        for i in range(5):
            self.kinesis.create_stream(StreamName=f"{prefix}-{i}", ShardCount=3)
        names = []
        for page in self.kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2}):
            names.extend(page["StreamNames"])
        self.assertEqual([n for n in names if n.startswith(prefix)], [f"{prefix}-{i}" for i in range(5)])
        # botocore's ListShards paginator repeats StreamName next to NextToken, which AWS
        # rejects; real code pages by hand, as here.
        page = self.kinesis.list_shards(StreamName=f"{prefix}-0", MaxResults=1)
        shards = [s["ShardId"] for s in page["Shards"]]
        while page.get("NextToken"):
            page = self.kinesis.list_shards(NextToken=page["NextToken"], MaxResults=1)
            shards.extend(s["ShardId"] for s in page["Shards"])
        self.assertEqual(shards, ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"])
        with self.assertRaises(ClientError) as both:
            list(self.kinesis.get_paginator("list_shards").paginate(StreamName=f"{prefix}-0", PaginationConfig={"PageSize": 1}))
        self.assertEqual(both.exception.response["Error"]["Message"], "NextToken and StreamName cannot be provided together.")
        described = []
        for page in self.kinesis.get_paginator("describe_stream").paginate(StreamName=f"{prefix}-1", PaginationConfig={"PageSize": 2}):
            described.extend(s["ShardId"] for s in page["StreamDescription"]["Shards"])
        self.assertEqual(len(described), 3)

    def test_errors_carry_aws_codes_and_messages(self):
        with self.assertRaises(ClientError) as missing:
            self.kinesis.describe_stream_summary(StreamName="does-not-exist")
        error = missing.exception.response["Error"]
        self.assertEqual(error["Code"], "ResourceNotFoundException")
        self.assertEqual(error["Message"], "Stream does-not-exist under account 000000000000 not found.")
        self.assertEqual(missing.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assertTrue(missing.exception.response["ResponseMetadata"]["RequestId"])
        with self.assertRaises(ClientError) as invalid:
            self.kinesis.get_records(ShardIterator="AAAAAAAAAAEnot-a-real-iterator")
        self.assertEqual(invalid.exception.response["Error"]["Code"], "InvalidArgumentException")

    def test_reshard_and_follow_children(self):
        name = unique("split")
        self.kinesis.create_stream(StreamName=name, ShardCount=1)
        self.kinesis.put_record(StreamName=name, Data=b"parent", PartitionKey="a")
        self.kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                                 NewStartingHashKey=str(2 ** 127))
        self.kinesis.put_record(StreamName=name, Data=b"child", PartitionKey="a")
        it = self.kinesis.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        data, children = [], []
        for _ in range(5):
            page = self.kinesis.get_records(ShardIterator=it)
            data.extend(r["Data"] for r in page["Records"])
            if "NextShardIterator" not in page or page["NextShardIterator"] is None:
                children = [c["ShardId"] for c in page["ChildShards"]]
                break
            it = page["NextShardIterator"]
        self.assertEqual(data, [b"parent"])
        self.assertEqual(children, ["shardId-000000000001", "shardId-000000000002"])

    def test_consumers_and_tags_by_arn(self):
        name = unique("efo")
        self.kinesis.create_stream(StreamName=name, ShardCount=1, Tags={"owner": "py"})
        arn = self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        consumer = self.kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="reader")["Consumer"]
        self.kinesis.tag_resource(ResourceARN=consumer["ConsumerARN"], Tags={"tier": "gold"})
        tags = self.kinesis.list_tags_for_resource(ResourceARN=consumer["ConsumerARN"])["Tags"]
        self.assertEqual(tags, [{"Key": "tier", "Value": "gold"}])
        stream_tags = self.kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
        self.assertEqual(stream_tags, [{"Key": "owner", "Value": "py"}])
        self.kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)

    def test_subscribe_to_shard_pushes_records(self):
        name = unique("efo-push")
        self.kinesis.create_stream(StreamName=name, ShardCount=1)
        arn = self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        consumer = self.kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="py")["Consumer"]
        sent = [self.kinesis.put_record(StreamName=name, Data=f"m{i}".encode(), PartitionKey="k")["SequenceNumber"]
                for i in range(20)]
        response = self.kinesis.subscribe_to_shard(
            ConsumerARN=consumer["ConsumerARN"], ShardId="shardId-000000000000",
            StartingPosition={"Type": "TRIM_HORIZON"})
        received, continuation = [], None
        for event in response["EventStream"]:
            shard_event = event["SubscribeToShardEvent"]
            received.extend((r["SequenceNumber"], r["Data"]) for r in shard_event["Records"])
            continuation = shard_event["ContinuationSequenceNumber"]
            if len(received) >= 20:
                break
        response["EventStream"].close()
        self.assertEqual([s for s, _ in received], sent)
        self.assertEqual([d for _, d in received], [f"m{i}".encode() for i in range(20)])
        self.assertEqual(continuation, sent[-1])


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
