"""boto3 Firehose against a running Millstream (MILLSTREAM_ENDPOINT, data dir MILLSTREAM_DATA_DIR)."""
import gzip
import json
import os
import sys
import time
import unittest

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["MILLSTREAM_ENDPOINT"]
DATA_DIR = os.environ["MILLSTREAM_DATA_DIR"]


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"mode": "legacy", "max_attempts": 2}),
    )


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


def s3_destination(bucket, **extra):
    config = {
        "RoleARN": "arn:aws:iam::000000000000:role/firehose",
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
    }
    config.update(extra)
    return config


def bucket_objects(bucket):
    root = os.path.join(DATA_DIR, "buckets", bucket)
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") or "#" in name:
                continue
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


class FirehoseSuite(unittest.TestCase):
    def setUp(self):
        self.firehose = client("firehose")

    def test_lifecycle_put_batch_and_delivery(self):
        name = unique("py")
        bucket = unique("bucket")
        arn = self.firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration=s3_destination(
                bucket, CompressionFormat="GZIP", Prefix="events/"),
        )["DeliveryStreamARN"]
        self.assertEqual(arn, f"arn:aws:firehose:us-east-1:000000000000:deliverystream/{name}")
        description = self.firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        self.assertEqual(description["DeliveryStreamStatus"], "ACTIVE")
        self.assertEqual(description["VersionId"], "1")
        self.assertIn("DirectPutSourceDescription", description["Source"])
        records = [{"Data": json.dumps({"n": n}).encode() + b"\n"} for n in range(30)]
        response = self.firehose.put_record_batch(DeliveryStreamName=name, Records=records)
        self.assertEqual(response["FailedPutCount"], 0)
        self.assertEqual(len(response["RequestResponses"]), 30)
        self.assertTrue(all("RecordId" in entry for entry in response["RequestResponses"]))
        single = self.firehose.put_record(DeliveryStreamName=name, Record={"Data": b'{"n": 30}\n'})
        self.assertFalse(single["Encrypted"])
        deadline = time.time() + 20
        lines = []
        while time.time() < deadline:
            objects = bucket_objects(bucket)
            lines = [line for body in objects.values() for line in gzip.decompress(body).splitlines()]
            if len(lines) >= 31:
                break
            time.sleep(0.2)
        self.assertEqual([json.loads(line)["n"] for line in lines], list(range(31)))
        for key in objects:
            self.assertTrue(key.startswith("events/"), key)
            self.assertTrue(key.endswith(".gz"), key)
            self.assertIn(f"/{name}-1-", key)

    def test_errors_carry_aws_codes_and_messages(self):
        with self.assertRaises(ClientError) as missing:
            self.firehose.describe_delivery_stream(DeliveryStreamName="does-not-exist")
        error = missing.exception.response["Error"]
        self.assertEqual(error["Code"], "ResourceNotFoundException")
        self.assertEqual(error["Message"], "Firehose does-not-exist under account 000000000000 not found.")
        self.assertEqual(missing.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)

        with self.assertRaises(ClientError) as invalid:
            self.firehose.create_delivery_stream(
                DeliveryStreamName="bad name!", ExtendedS3DestinationConfiguration=s3_destination("b"))
        self.assertEqual(invalid.exception.response["Error"]["Code"], "ValidationException")
        self.assertIn("deliveryStreamName", invalid.exception.response["Error"]["Message"])

        with self.assertRaises(ClientError) as two:
            self.firehose.create_delivery_stream(
                DeliveryStreamName=unique("two"),
                ExtendedS3DestinationConfiguration=s3_destination("b"),
                HttpEndpointDestinationConfiguration={
                    "EndpointConfiguration": {"Url": "https://example.com"},
                    "S3Configuration": s3_destination("b"),
                })
        self.assertEqual(two.exception.response["Error"]["Code"], "InvalidArgumentException")

    def test_kinesis_source_rejects_direct_puts(self):
        kinesis = client("kinesis")
        stream = unique("src")
        kinesis.create_stream(StreamName=stream, ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
        stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
        name = unique("fromkds")
        self.firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration={
                "KinesisStreamARN": stream_arn, "RoleARN": "arn:aws:iam::000000000000:role/r"},
            ExtendedS3DestinationConfiguration=s3_destination(unique("kdsbucket")),
        )
        description = self.firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        self.assertEqual(description["DeliveryStreamType"], "KinesisStreamAsSource")
        self.assertEqual(description["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"], stream_arn)
        with self.assertRaises(ClientError) as rejected:
            self.firehose.put_record(DeliveryStreamName=name, Record={"Data": b"x"})
        self.assertEqual(rejected.exception.response["Error"]["Code"], "InvalidArgumentException")
        self.assertEqual(
            rejected.exception.response["Error"]["Message"],
            "This operation is not permitted on KinesisStreamAsSource delivery stream type.")
        listed = self.firehose.list_delivery_streams(DeliveryStreamType="KinesisStreamAsSource")
        self.assertIn(name, listed["DeliveryStreamNames"])


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
