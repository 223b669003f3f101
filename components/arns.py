"""ARN rules the config reader and the components share (one home for each). Pure data, so the config reads them
without importing Pulumi."""

from __future__ import annotations

import re

from .arg_rules import Refusal

IAM_ROLE_ARN = r"arn:aws(?:-cn|-us-gov)?:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}"
"""An IAM role's ARN: partition, 12-digit account, optional path, and a role name of 1 to 64 of IAM's characters."""
IAM_ROLE_ARN_DESCRIBED = "an IAM role ARN such as arn:aws:iam::123456789012:role/gpuscale-preview"


def is_iam_role_arn(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(IAM_ROLE_ARN, value) is not None


def iam_role_arn_problem(field: str, value: object) -> Refusal | None:
    """None for an IAM role ARN (or no value), else the refusal of the Args `field`."""
    return None if value is None or is_iam_role_arn(value) else Refusal(field, value, IAM_ROLE_ARN_DESCRIBED)
