"""Rules for the S3 buckets that hold the models (`gpuscale:modelBuckets`, the ModelBucket component), shared by the
stack config (gpuscale/config/buckets.py) and the component. Pure data, so the config reads them without Pulumi."""

from __future__ import annotations

import re

from .arg_rules import Refusal

BUCKET_NAME_RULE = ("an S3 bucket name: 3 to 63 lowercase letters, digits, dots or hyphens, starting and ending with "
                    "a letter or digit, no two dots in a row, not shaped like an IP address, not starting with xn--, "
                    "sthree- or amzn-s3-demo- and not ending with -s3alias, --ol-s3, .mrap or --x-s3")
"""S3's general purpose bucket naming rules (Amazon S3 User Guide, "General purpose bucket naming rules")."""
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3")
S3_URI = re.compile(r"s3://([^/\s]+)(/.*)?")
"""An s3:// storage URI: its bucket, then the model's prefix."""


def bucket_name_problem(name: object, field: str = "bucket_name") -> Refusal | None:
    """None when S3 accepts `name` for a general purpose bucket, else the refusal."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name or _IP.fullmatch(name) \
            or name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return Refusal(field, name, BUCKET_NAME_RULE)
    return None


def bucket_of(storage_uri: str | None) -> str | None:
    """The bucket an s3:// storage URI reads from; None for another scheme (pvc://) or no URI."""
    match = S3_URI.fullmatch(storage_uri) if storage_uri else None
    return match.group(1) if match else None
