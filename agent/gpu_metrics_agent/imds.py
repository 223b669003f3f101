"""Who this node is, for CloudWatch dimensions: Auto Scaling group, instance id, instance type and region.

Each comes from an override (flag or environment) or else from EC2 instance metadata through IMDSv2: a session
token is PUT first, then each item is a GET carrying it. The group's name is the instance's
``aws:autoscaling:groupName`` tag, which instance metadata shows only when the launch template enables instance
metadata tags; where it does not (EKS nodes: their '/' tag keys make EC2 refuse metadata tags), the group is looked
up from the instance id (Auto Scaling's DescribeAutoScalingInstances, through ``group_lookup``). The standard
library's urllib is enough for instance metadata and keeps the agent light.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from typing import Callable

TOKEN_TTL_S = 300
"""The token is used for a handful of requests at start-up only."""
_PATHS = {
    "instance_id": "/latest/meta-data/instance-id",
    "instance_type": "/latest/meta-data/instance-type",
    "region": "/latest/meta-data/placement/region",
    "asg_name": "/latest/meta-data/tags/instance/aws:autoscaling:groupName",
}
TARGET_LIFECYCLE_STATE = "/latest/meta-data/autoscaling/target-lifecycle-state"
"""InService, Terminated, Detached, Standby or Warmed:*: where Auto Scaling is taking the instance (no API call)."""
_FLAGS = {"instance_id": "--instance-id", "instance_type": "--instance-type", "region": "--region",
          "asg_name": "--asg-name"}


class IdentityError(Exception):
    """The node's identity could not be determined; the message says what to set."""


GroupLookup = Callable[[str, str], "str | None"]
"""(instance id, region) -> the instance's Auto Scaling group, None when it is in none; raises IdentityError."""


@dataclass(frozen=True)
class NodeIdentity:
    asg_name: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    region: str | None = None

    def missing(self) -> list[str]:
        return [name for name in _PATHS if getattr(self, name) in (None, "")]


class InstanceMetadata:
    """A minimal IMDSv2 client."""

    def __init__(self, endpoint: str = "http://169.254.169.254", timeout: float = 1.0) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._timeout = timeout

    def token(self) -> str:
        request = urllib.request.Request(f"{self._endpoint}/latest/api/token", method="PUT",
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)})
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            return response.read().decode()

    def get(self, path: str, token: str) -> str | None:
        """The item's text, or None when instance metadata does not have it (404)."""
        request = urllib.request.Request(f"{self._endpoint}{path}", headers={"X-aws-ec2-metadata-token": token})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return response.read().decode().strip()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


class TargetLifecycleState:
    """Reads TARGET_LIFECYCLE_STATE every few seconds, renewing the IMDSv2 token before it expires or when refused."""

    def __init__(self, metadata: InstanceMetadata, clock: Callable[[], float] = time.monotonic) -> None:
        self._metadata, self._clock = metadata, clock
        self._token: str | None = None
        self._token_at = 0.0

    def read(self) -> str | None:
        """The state, or None where instance metadata has none (not in an Auto Scaling group). Raises OSError."""
        if self._token is None or self._clock() - self._token_at > TOKEN_TTL_S / 2:
            self._token, self._token_at = self._metadata.token(), self._clock()
        try:
            return self._metadata.get(TARGET_LIFECYCLE_STATE, self._token)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # the token expired early (IMDS restarted): take a new one next time
                self._token = None
            raise


def resolve_identity(overrides: NodeIdentity, metadata: InstanceMetadata,
                     group_lookup: GroupLookup | None = None) -> NodeIdentity:
    """``overrides`` completed from instance metadata, the group from ``group_lookup`` when metadata has no tag;
    raises IdentityError naming what is still unknown."""
    missing = overrides.missing()
    if not missing:
        return overrides
    try:
        token = metadata.token()
        found = {name: metadata.get(_PATHS[name], token) for name in missing}
    except (OSError, urllib.error.URLError) as exc:
        flags = ", ".join(_FLAGS[name] for name in missing)
        raise IdentityError(f"instance metadata request failed ({exc}); not on EC2? set {flags}") from None
    identity = replace(overrides, **{name: value for name, value in found.items() if value})
    if identity.asg_name is None and group_lookup is not None and identity.instance_id and identity.region:
        identity = replace(identity, asg_name=group_lookup(identity.instance_id, identity.region))
        if identity.asg_name is None:
            raise IdentityError(f"instance {identity.instance_id} is in no Auto Scaling group "
                                "(DescribeAutoScalingInstances): set --asg-name (GPU_METRICS_AGENT_ASG_NAME)")
    if identity.asg_name is None:
        raise IdentityError("the aws:autoscaling:groupName tag is not in instance metadata: set --asg-name "
                            "(GPU_METRICS_AGENT_ASG_NAME), or enable instance metadata tags in the launch template "
                            "(instance_metadata_tags; not on EKS managed node groups, whose '/' tag keys EC2 then "
                            "refuses)")
    still_missing = identity.missing()
    if still_missing:
        raise IdentityError("instance metadata has no " + ", ".join(still_missing) + "; set "
                            + ", ".join(_FLAGS[name] for name in still_missing))
    return identity
