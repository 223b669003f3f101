"""SignalQueue, and the program creating the queues its signals name (or looking up the ones that exist)."""

from __future__ import annotations

import copy
import json

import pytest
from components_harness import Harness, stack_values

from gpuscale.components.signal_queue import CONSUMER_ACTIONS, SignalQueue

QUEUE, POLICY, ALLOW = "aws:sqs/queue:Queue", "aws:sqs/queuePolicy:QueuePolicy", \
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy"


def test_queue_has_an_encrypted_dead_letter_queue_that_takes_from_it_only(harness):
    q = harness.run(lambda: SignalQueue("jobs", {"queue_name": "jobs", "visibility_timeout_seconds": 900,
                                                 "max_receive_count": 3, "tags": {"team": "ml"}}))
    main, dlq = harness.one(QUEUE, "jobs"), harness.one(QUEUE, "jobs-dlq")
    assert main.inputs["name"] == "jobs" and dlq.inputs["name"] == "jobs-dlq"
    assert main.inputs["sqsManagedSseEnabled"] is True and dlq.inputs["sqsManagedSseEnabled"] is True, "encrypted"
    assert main.inputs["visibilityTimeoutSeconds"] == 900 and main.inputs["messageRetentionSeconds"] == 345600
    assert dlq.inputs["messageRetentionSeconds"] == 1209600, "failures kept as long as SQS allows"
    dlq_arn, queue_arn = harness.value(q.dead_letter_queue_arn), harness.value(q.queue_arn)
    assert queue_arn == "arn:aws:sqs:us-west-2:123456789012:jobs"
    assert json.loads(main.inputs["redrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}
    allow = harness.one(ALLOW)
    assert allow.inputs["queueUrl"] == "https://sqs.us-west-2.amazonaws.com/123456789012/jobs-dlq"
    assert json.loads(allow.inputs["redriveAllowPolicy"]) == {"redrivePermission": "byQueue",
                                                              "sourceQueueArns": [queue_arn]}
    policies = {p.name: json.loads(p.inputs["policy"])["Statement"] for p in harness.of_type(POLICY)}
    assert set(policies) == {"jobs-tls-only", "jobs-dlq-tls-only"}
    (deny,) = policies["jobs-tls-only"]
    assert deny["Effect"] == "Deny" and deny["Resource"] == queue_arn
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert all(r.parent == harness.one("gpuscale:index:SignalQueue").urn for r in harness.of_type(QUEUE))


def test_fifo_queue_gets_a_fifo_dead_letter_queue(harness):
    harness.run(lambda: SignalQueue("q", {"queue_name": "orders.fifo"}))
    assert {r.inputs["name"]: r.inputs.get("fifoQueue") for r in harness.of_type(QUEUE)} == {
        "orders.fifo": True, "orders-dlq.fifo": True}


@pytest.mark.parametrize("args, key", [
    ({"queue_name": "q" * 77}, "queue_name"),
    ({"queue_name": "q", "visibility_timeout_seconds": 43201}, "visibility_timeout_seconds"),
    ({"queue_name": "q", "max_receive_count": 0}, "max_receive_count"),
    ({"queue_name": "q", "message_retention_seconds": 30}, "message_retention_seconds"),
    ({"queue_name": "q", "visiblity_timeout_seconds": 60}, "visiblity_timeout_seconds"),
])
def test_queue_refuses_what_sqs_would(harness, args, key):
    with pytest.raises(ValueError, match=rf"^{key} \(SignalQueue \"q\"\): .* is not allowed; allowed: "):
        harness.run(lambda: SignalQueue("q", args))
    assert [r.type for r in harness.resources] == ["pulumi:pulumi:Stack"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_creates_the_queues_its_signals_name_and_grants_them_by_arn(stack_runs, stack):
    harness, outputs = stack_runs[stack]
    groups = stack_values(stack)["gpuscale:autoScalingGroups"]
    for g in groups:
        scaling = g.get("scaling") or {}
        names = {s["queueName"] for s in (scaling.get("demand"), (scaling.get("scaleToZero") or {}).get("wake"))
                 if s and s.get("kind") == "sqs"}
        for queue in names:
            harness.one(QUEUE, queue)
            harness.one(QUEUE, f"{queue}-dlq")
        (statement,) = json.loads(harness.one("aws:iam/rolePolicy:RolePolicy",
                                              f"{g['name']}-requests").inputs["policy"])["Statement"]
        assert statement["Resource"] == sorted(outputs["queues"][q]["arn"] for q in names), \
            f"{g['name']}: its own queues' ARNs, created by the stack"
        assert statement["Action"] == list(CONSUMER_ACTIONS)


def test_existing_queue_is_looked_up_not_created():
    values = copy.deepcopy(stack_values("dev"))
    values["gpuscale:queues"] = [{"name": "gpuscale-dev-infer-requests", "existing": True}]
    harness = Harness()
    outputs = harness.run_program("dev", values)
    assert harness.of_type(QUEUE) == []
    assert ("aws:sqs/getQueue:getQueue", {"name": "gpuscale-dev-infer-requests"}) in \
        [(t, {k: v for k, v in a.items() if k == "name"}) for t, a in harness.invokes]
    arn = outputs["queues"]["gpuscale-dev-infer-requests"]["arn"]
    (statement,) = json.loads(harness.one("aws:iam/rolePolicy:RolePolicy", "infer-requests").inputs["policy"])[
        "Statement"]
    assert statement["Resource"] == [arn] == ["arn:aws:sqs:us-west-2:123456789012:gpuscale-dev-infer-requests"]


def test_an_existing_wake_queue_is_looked_up_once_for_its_arn_and_its_url():
    values = copy.deepcopy(stack_values("prod"))
    values["gpuscale:queues"] = [{"name": "gpuscale-prod-batch-generate", "existing": True}]
    harness = Harness()
    harness.run_program("prod", values)
    lookups = [a for t, a in harness.invokes
               if t == "aws:sqs/getQueue:getQueue" and a.get("name") == "gpuscale-prod-batch-generate"]
    assert len(lookups) == 1, "one look-up serves the KEDA role's ARN and the ScaledObject's URL"
    scaled = harness.one("kubernetes:keda.sh/v1alpha1:ScaledObject", "batch-scaler")
    (sqs,) = [t for t in scaled.inputs["spec"]["triggers"] if t["type"] == "aws-sqs-queue"]
    assert sqs["metadata"]["queueURL"].endswith("/gpuscale-prod-batch-generate"), sqs["metadata"]
