"""SignalQueue: an SQS queue that feeds a GPU fleet and signals its demand, with a dead-letter queue and encryption."""

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section

from ._docs import documented
from .queue_rules import (DEAD_LETTER_RETENTION, DEFAULT_MAX_RECEIVES, DEFAULT_RETENTION, DEFAULT_VISIBILITY_TIMEOUT,
                          created_queue_problem, dead_letter_queue_name)

CONSUMER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes", "sqs:GetQueueUrl")
"""What a worker taking requests from the queue calls: receive, delete when done, extend the visibility of a long
request, and read the queue's URL and attributes (KEDA's aws-sqs-queue scaler needs only GetQueueAttributes)."""


def consumer_statement(queue_arns: list[str], sid: str = "ConsumeRequestQueues") -> dict[str, Any]:
    """The identity-policy statement for the queues' consumers, on the queues' own ARNs (never `*`)."""
    return {"Sid": sid, "Effect": "Allow", "Action": list(CONSUMER_ACTIONS), "Resource": sorted(queue_arns)}


class SignalQueueArgs(TypedDict):
    queue_name: str
    """The queue's name, as the wake and demand signals (CloudWatch's QueueName dimension) know it. A FIFO queue's
    name ends in .fifo; the dead-letter queue is `<name>-dlq` (`<base>-dlq.fifo`)."""
    visibility_timeout_seconds: NotRequired[int]
    """Seconds a received message stays hidden from other workers: longer than a request takes, or a second worker
    runs it too. Default 30 (SQS's)."""
    message_retention_seconds: NotRequired[int]
    """Seconds an unprocessed message is kept, 60 to 1,209,600. Default 345,600 (4 days, SQS's)."""
    max_receive_count: NotRequired[int]
    """Receives before a message moves to the dead-letter queue, 1 to 1000. Default 5."""
    tags: NotRequired[Mapping[str, str]]
    """Tags on both queues. Default none."""


def check_args(s: Section) -> None:
    """The rules of SignalQueueArgs: the stack config's queue rule (components/queue_rules.py)."""
    name = s.str("queue_name", describe="an SQS queue name")
    visibility = s.int("visibility_timeout_seconds", DEFAULT_VISIBILITY_TIMEOUT)
    retention = s.int("message_retention_seconds", DEFAULT_RETENTION)
    receives = s.int("max_receive_count", DEFAULT_MAX_RECEIVES)
    s.refuse(created_queue_problem(name, visibility, retention, receives))
    s.input("tags", {})


@documented
class SignalQueue(pulumi.ComponentResource):
    """The queue, its dead-letter queue (allowed to take messages from this queue only), SQS-managed server-side
    encryption on both, and a queue policy refusing requests that do not use TLS."""

    queue_arn: pulumi.Output[str]
    """ARN of the queue (the consumers' and the alarms' resource)."""
    queue_url: pulumi.Output[str]
    """URL of the queue (what workers and producers send and receive on)."""
    queue_name: pulumi.Output[str]
    """Name of the queue (the signals' QueueName dimension)."""
    dead_letter_queue_arn: pulumi.Output[str]
    """ARN of the dead-letter queue."""

    def __init__(self, name: str, args: SignalQueueArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("SignalQueue", name, args, SignalQueueArgs, check_args)
        queue_name = args["queue_name"]
        visibility = args.get("visibility_timeout_seconds", DEFAULT_VISIBILITY_TIMEOUT)
        retention = args.get("message_retention_seconds", DEFAULT_RETENTION)
        receives = args.get("max_receive_count", DEFAULT_MAX_RECEIVES)
        super().__init__("gpuscale:index:SignalQueue", name, None, opts)
        tags = dict(args.get("tags") or {})
        child = pulumi.ResourceOptions(parent=self)
        fifo = queue_name.endswith(".fifo")

        dead_letter = aws.sqs.Queue(
            f"{name}-dlq", name=dead_letter_queue_name(queue_name), fifo_queue=fifo or None,
            message_retention_seconds=DEAD_LETTER_RETENTION, sqs_managed_sse_enabled=True, tags=tags, opts=child)
        queue = aws.sqs.Queue(
            name, name=queue_name, fifo_queue=fifo or None,
            visibility_timeout_seconds=visibility, message_retention_seconds=retention,
            # Requests carry prompts and user data: encrypted at rest. SQS-managed keys need no KMS grants for the
            # workers or the alarms (a customer key would have to grant kms:Decrypt to every consumer).
            sqs_managed_sse_enabled=True,
            # Long polling: workers wait up to 20 s for a message instead of paying for empty receives.
            receive_wait_time_seconds=20,
            redrive_policy=dead_letter.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": receives})),
            tags=tags, opts=child)
        # The dead-letter queue takes messages from this queue only (a separate resource: the queue's redrive policy
        # names the dead-letter queue, so the dead-letter queue cannot name the queue in its own arguments).
        aws.sqs.RedriveAllowPolicy(
            f"{name}-dlq-source", queue_url=dead_letter.url,
            redrive_allow_policy=queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})),
            opts=child)
        for queue_resource, suffix in ((queue, ""), (dead_letter, "-dlq")):
            aws.sqs.QueuePolicy(f"{name}{suffix}-tls-only", queue_url=queue_resource.url,
                                policy=queue_resource.arn.apply(_tls_only), opts=child)

        self.queue_arn = queue.arn
        self.queue_url = queue.url
        self.queue_name = queue.name
        self.dead_letter_queue_arn = dead_letter.arn
        self.register_outputs({"queue_arn": self.queue_arn, "queue_url": self.queue_url,
                               "queue_name": self.queue_name, "dead_letter_queue_arn": self.dead_letter_queue_arn})


def _tls_only(queue_arn: str) -> str:
    """Deny every request that is not over TLS. Same-account consumers are allowed by their own roles' policies
    (consumer_statement), so the queue policy grants nothing."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
        "Resource": queue_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
