"""ModelBucket: an S3 bucket that holds the models KServe's storage initializer downloads, private and encrypted."""

import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section

from ._docs import documented
from .bucket_rules import BUCKET_NAME_RULE, bucket_name_problem


class ModelBucketArgs(TypedDict):
    bucket_name: str
    """The bucket's name, as the services' s3:// storage URIs name it (S3's naming rules; unique across AWS)."""
    versioning: NotRequired[bool]
    """Keep every version of an object, so an overwritten or deleted model file can be restored and a model being
    replaced never half-exists. Default true."""
    tags: NotRequired[Mapping[str, str]]
    """Tags on the bucket (the stack's cost-allocation tags). Default none."""


def check_args(s: Section) -> None:
    """The rules of ModelBucketArgs: the stack config's bucket name rule (components/bucket_rules.py)."""
    s.str("bucket_name", describe=BUCKET_NAME_RULE)
    s.refuse(bucket_name_problem(s.raw("bucket_name")) if isinstance(s.raw("bucket_name"), str) else None)
    s.bool("versioning", True)
    s.input("tags", {})


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every request that is not over TLS. Readers are allowed by their own roles' policies (the services'
    storage-initializer roles, each on its model's prefix), so the bucket policy grants nothing."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


@documented
class ModelBucket(pulumi.ComponentResource):
    """The bucket, with its public access blocked, SSE-S3 default encryption, a bucket policy refusing requests that
    do not use TLS, object ownership enforced to the bucket owner (ACLs off) and, by default, versioning."""

    bucket_name: pulumi.Output[str]
    """Name of the bucket."""
    bucket_arn: pulumi.Output[str]
    """ARN of the bucket."""

    def __init__(self, name: str, args: ModelBucketArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("ModelBucket", name, args, ModelBucketArgs, check_args)
        super().__init__("gpuscale:index:ModelBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Models are large and slow to rebuild: `pulumi destroy` fails on a bucket that still holds them rather
        # than deleting them (no force_destroy).
        bucket = aws.s3.Bucket(name, bucket=args["bucket_name"], tags=dict(args.get("tags") or {}), opts=child)
        block = aws.s3.BucketPublicAccessBlock(f"{name}-public-access", bucket=bucket.id, block_public_acls=True,
                                               block_public_policy=True, ignore_public_acls=True,
                                               restrict_public_buckets=True, opts=child)
        # ACLs off: every object belongs to the bucket's account, whoever uploaded it, and only policies grant.
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child)
        # SSE-S3: encrypted at rest with no key policy to grant to every storage initializer's role.
        aws.s3.BucketServerSideEncryptionConfiguration(f"{name}-encryption", bucket=bucket.id, rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"))], opts=child)
        if args.get("versioning", True):
            aws.s3.BucketVersioning(f"{name}-versioning", bucket=bucket.id,
                                    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                                        status="Enabled"), opts=child)
        aws.s3.BucketPolicy(f"{name}-tls-only", bucket=bucket.id, policy=bucket.arn.apply(tls_only_policy),
                            # S3 rejects policy writes that race the public access block being applied.
                            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]))
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})
