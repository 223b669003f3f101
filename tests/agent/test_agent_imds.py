"""Node identity from IMDSv2 on a loopback server, and overrides."""

from __future__ import annotations

import pytest

from agent_support import FakeImds
from gpu_metrics_agent.imds import IdentityError, InstanceMetadata, NodeIdentity, resolve_identity

ITEMS = {
    "/latest/meta-data/instance-id": "i-0abc",
    "/latest/meta-data/instance-type": "g6.12xlarge",
    "/latest/meta-data/placement/region": "eu-west-1",
    "/latest/meta-data/tags/instance/aws:autoscaling:groupName": "inference-g6",
}


@pytest.fixture
def imds():
    server = FakeImds(dict(ITEMS))
    yield server
    server.close()


def test_everything_from_instance_metadata_with_a_session_token(imds):
    identity = resolve_identity(NodeIdentity(), InstanceMetadata(imds.url))
    assert identity == NodeIdentity("inference-g6", "i-0abc", "g6.12xlarge", "eu-west-1")
    assert imds.requests[0] == ("PUT", "/latest/api/token")


def test_overrides_win_and_only_the_rest_is_asked(imds):
    identity = resolve_identity(NodeIdentity(asg_name="override-asg", region="us-east-2"), InstanceMetadata(imds.url))
    assert identity == NodeIdentity("override-asg", "i-0abc", "g6.12xlarge", "us-east-2")
    asked = {path for _method, path in imds.requests}
    assert "/latest/meta-data/tags/instance/aws:autoscaling:groupName" not in asked
    assert "/latest/meta-data/placement/region" not in asked


def test_full_overrides_never_touch_instance_metadata():
    complete = NodeIdentity("asg", "i-1", "p5.48xlarge", "us-east-1")
    assert resolve_identity(complete, InstanceMetadata("http://127.0.0.1:9", timeout=0.2)) == complete


def test_tags_not_enabled_says_how_to_fix_it(imds):
    del imds.items["/latest/meta-data/tags/instance/aws:autoscaling:groupName"]
    with pytest.raises(IdentityError, match="--asg-name.*instance_metadata_tags"):
        resolve_identity(NodeIdentity(), InstanceMetadata(imds.url))


def test_unreachable_metadata_names_the_flags_to_set():
    with pytest.raises(IdentityError, match="--instance-id.*--instance-type"):
        resolve_identity(NodeIdentity(asg_name="a", region="r"), InstanceMetadata("http://127.0.0.1:9", timeout=0.2))
