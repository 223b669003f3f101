"""ModelBucket: an S3 bucket that holds the models KServe's storage initializer downloads, private and encrypted."""

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section

from ._docs import documented
from ._s3 import private_encrypted_tls_only
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
        # ACLs off: every object belongs to the bucket's account, whoever uploaded it, and only policies grant.
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child)
        private_encrypted_tls_only(name, bucket, self)
        if args.get("versioning", True):
            aws.s3.BucketVersioning(f"{name}-versioning", bucket=bucket.id,
                                    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                                        status="Enabled"), opts=child)
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})
