"""What the offline plan shows of the endpoint exposure, the created queues and the fleets' own startup."""

from __future__ import annotations

import base64
import email
import json

from gpuscale.config.policy import PolicyConfig
from gpuscale.policy import evaluate
from gpuscale.policy.rules import Resource

CLUSTER = "aws:eks/cluster:Cluster"


def of(plan: dict, type_: str) -> list[dict]:
    return [r for r in plan["doc"]["resources"] if r["type"] == type_]


def test_plan_shows_each_stacks_api_exposure(plans):
    (prod,) = of(plans["prod"], CLUSTER)
    assert (prod["inputs"]["vpcConfig"]["endpointPublicAccess"], prod["inputs"]["vpcConfig"]["endpointPrivateAccess"]) \
        == (False, True) and "publicAccessCidrs" not in prod["inputs"]["vpcConfig"]
    (dev,) = of(plans["dev"], CLUSTER)
    assert dev["inputs"]["vpcConfig"]["publicAccessCidrs"] == ["0.0.0.0/0"]
    checks = {c["check"]: c for c in plans["dev"]["doc"]["checks"]}
    assert checks["api-endpoint"]["severity"] == "warning"
    assert "api-endpoint" not in {c["check"] for c in plans["prod"]["doc"]["checks"]}


def test_policy_rule_counts_blocks_that_together_are_the_internet():
    cluster = Resource(CLUSTER, "c", "urn:c", {"vpcConfig": {"endpointPublicAccess": True,
                                                              "publicAccessCidrs": ["0.0.0.0/1", "128.0.0.0/1"]}})
    (finding,) = [f for f in evaluate([cluster], PolicyConfig()) if f.rule == "eks-api-not-public"]
    assert "0.0.0.0/1, 128.0.0.0/1" in finding.message
    narrow = Resource(CLUSTER, "c", "urn:c", {"vpcConfig": {"endpointPublicAccess": True,
                                                             "publicAccessCidrs": ["52.94.0.0/16"]}})
    assert [f for f in evaluate([narrow], PolicyConfig()) if f.rule == "eks-api-not-public"] == []


def test_plan_shows_the_created_queues_under_their_component(plans):
    doc = plans["prod"]["doc"]
    components = {r["name"]: r for r in doc["resources"] if r["type"] == "gpuscale:index:SignalQueue"}
    assert set(components) == {"gpuscale-prod-infer-requests", "gpuscale-prod-batch-jobs"}
    queues = {r["name"]: r for r in of(plans["prod"], "aws:sqs/queue:Queue")}
    assert set(queues) == {"gpuscale-prod-infer-requests", "gpuscale-prod-infer-requests-dlq",
                           "gpuscale-prod-batch-jobs", "gpuscale-prod-batch-jobs-dlq"}
    jobs = queues["gpuscale-prod-batch-jobs"]["inputs"]
    assert (jobs["visibilityTimeoutSeconds"], jobs["messageRetentionSeconds"]) == (900, 21600)
    assert json.loads(jobs["redrivePolicy"])["maxReceiveCount"] == 3
    assert "+ gpuscale:index:SignalQueue  gpuscale-prod-batch-jobs" in plans["prod"]["stdout"]


def test_plan_shows_the_fleets_container_in_its_launch_template(plans):
    (template,) = [r for r in of(plans["prod"], "aws:ec2/launchTemplate:LaunchTemplate")
                   if r["name"] == "infer-l40s-lt"]
    archive = email.message_from_string(base64.b64decode(template["inputs"]["userData"]).decode())
    names = [p.get_filename() for p in archive.get_payload()]
    assert names == ["10-gpu-metrics-agent.sh", "20-gpuscale-workload.sh"]
    assert "Qwen/Qwen3-32B-AWQ" in archive.get_payload()[1].get_payload()
