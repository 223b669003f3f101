"""ModelBucket, and the program creating the model buckets of gpuscale:modelBuckets (not the existing ones)."""

from __future__ import annotations

import json

import pytest
from components_harness import Harness, stack_values

from gpuscale.components.model_bucket import ModelBucket
from gpuscale.config.reader import ConfigErrors

BUCKET = "aws:s3/bucket:Bucket"


def test_bucket_is_private_encrypted_versioned_owner_enforced_and_tls_only(harness):
    b = harness.run(lambda: ModelBucket("models", {"bucket_name": "gpuscale-test-models",
                                                   "tags": {"gpuscale:stack": "test", "team": "ml"}}))
    bucket = harness.one(BUCKET)
    assert bucket.inputs["bucket"] == "gpuscale-test-models" and bucket.inputs["tags"]["team"] == "ml"
    assert "forceDestroy" not in bucket.inputs, "destroy fails on a bucket still holding models"
    block = harness.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))
    (rule,) = harness.one("aws:s3/bucketServerSideEncryptionConfiguration:"
                          "BucketServerSideEncryptionConfiguration").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    assert harness.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"}
    assert harness.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"}
    (deny,) = json.loads(harness.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])["Statement"]
    arn = harness.value(b.bucket_arn)
    assert deny["Effect"] == "Deny" and deny["Resource"] == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert harness.value(b.bucket_name) == "gpuscale-test-models"


def test_versioning_can_be_left_off(harness):
    harness.run(lambda: ModelBucket("models", {"bucket_name": "gpuscale-test-models", "versioning": False}))
    assert harness.of_type("aws:s3/bucketVersioning:BucketVersioning") == []


@pytest.mark.parametrize("args, key, allowed", [
    ({"bucket_name": "ab"}, "bucket_name", "an S3 bucket name: 3 to 63"),
    ({"bucket_name": "xn--models"}, "bucket_name", "not starting with xn--"),
    ({"bucket_name": "models", "versioning": "on"}, "versioning", "true or false"),
])
def test_bad_arguments_are_refused_before_anything_is_declared(harness, args, key, allowed):
    with pytest.raises(ConfigErrors) as caught:
        harness.run(lambda: ModelBucket("models", args))
    (error,) = caught.value.errors
    assert error.key == key and allowed in error.allowed
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_program_creates_the_stacks_model_bucket_and_not_an_existing_one(stack):
    harness = Harness()
    harness.run_program(stack)
    (bucket,) = [r for r in harness.of_type(BUCKET) if r.inputs.get("bucket") == f"gpuscale-{stack}-models"]
    assert bucket.inputs["tags"]["gpuscale:stack"] == stack
    values = stack_values(stack)
    values["gpuscale:modelBuckets"] = [{"name": f"gpuscale-{stack}-models", "existing": True}]
    existing = Harness()
    existing.run_program(stack, values)
    assert [r for r in existing.of_type(BUCKET) if r.inputs.get("bucket") == f"gpuscale-{stack}-models"] == []
    assert existing.of_type("gpuscale:index:ModelBucket") == []
