"""What every bucket gpuscale creates has (the agent's bundle, the model buckets): public access blocked, SSE-S3
default encryption, and a bucket policy refusing requests that do not use TLS."""

import json

import pulumi
import pulumi_aws as aws


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every request that is not over TLS. Readers are allowed by their own roles' policies, so the bucket
    policy grants nothing."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


def private_encrypted_tls_only(name: str, bucket: aws.s3.Bucket,
                               parent: pulumi.Resource) -> aws.s3.BucketServerSideEncryptionConfiguration:
    """The bucket's public access block, default encryption and TLS-only policy, as children of `parent`; the
    encryption configuration is returned (objects written after it are stored encrypted)."""
    child = pulumi.ResourceOptions(parent=parent)
    block = aws.s3.BucketPublicAccessBlock(f"{name}-public-access", bucket=bucket.id, block_public_acls=True,
                                           block_public_policy=True, ignore_public_acls=True,
                                           restrict_public_buckets=True, opts=child)
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption", bucket=bucket.id,
        # SSE-S3: encrypted at rest with no key policy for every reader to be granted.
        rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=aws.s3.
            BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"))],
        opts=child)
    aws.s3.BucketPolicy(f"{name}-tls-only", bucket=bucket.id, policy=bucket.arn.apply(tls_only_policy),
                        # S3 rejects policy writes that race the public access block being applied.
                        opts=pulumi.ResourceOptions(parent=parent, depends_on=[block]))
    return encryption
