"""`gpuscale:modelBuckets`: the S3 buckets the services' models are read from.

Each entry names a bucket: the stack creates it (components/model_bucket.py: SSE-S3, public access blocked,
TLS-only bucket policy, versioning, bucket-owner-enforced ownership, the stack's cost-allocation tags) unless the
entry says `existing: true`, and then leaves it alone. Every s3:// `storageUri` of `gpuscale:services` must name one
of these buckets: a model bucket is either made by the stack or declared as someone else's, never assumed. The list
is explicit rather than derived from the storage URIs, so that a typo in a URI is refused instead of creating a
bucket nobody filled, and so that a bucket can be created before the service that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..components.bucket_rules import bucket_name_problem, bucket_of
from .reader import ConfigError, Section

if TYPE_CHECKING:
    from .services import ServiceConfig

KEY = "gpuscale:modelBuckets"


@dataclass(frozen=True)
class ModelBucketConfig:
    name: str
    existing: bool
    """True: the bucket exists (another stack's or team's); the stack neither creates nor changes it."""
    entry_key: str
    """The bucket's entry, e.g. gpuscale:modelBuckets[0]."""


def read_model_buckets(value: Any, services: tuple[ServiceConfig, ...]) -> tuple[ModelBucketConfig, ...]:
    """The buckets of `gpuscale:modelBuckets`, each named once with a valid name, and every s3:// storageUri of the
    services on one of them."""
    top = Section({"modelBuckets": value if value is not None else []}, "gpuscale:")
    buckets: dict[str, ModelBucketConfig] = {}
    for s in top.sections("modelBuckets"):
        name = s.str("name")
        problem = bucket_name_problem(name, "name")
        if problem is not None:
            raise s.fail("name", name, problem.allowed)
        if name in buckets:
            raise s.fail("name", name, f"a bucket named once in {KEY} ({buckets[name].entry_key} names it already)")
        existing = s.bool("existing", False)
        s.finish()
        buckets[name] = ModelBucketConfig(name, existing, s.path)
    for i, service in enumerate(services):
        bucket = bucket_of(service.model.storage_uri)
        if bucket is not None and bucket not in buckets:
            raise ConfigError(f"gpuscale:services[{i}].model.storageUri", service.model.storage_uri,
                              f"a model in a bucket of {KEY} (created by the stack, or listed with existing: true): "
                              + (", ".join(buckets) or "(none listed)")
                              + f"; add {{name: {bucket}}} to {KEY} to create it")
    return tuple(buckets.values())
