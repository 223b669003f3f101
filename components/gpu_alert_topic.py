"""GpuAlertTopic: the SNS topic a stack's GPU alarms notify, with an optional email subscription."""

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from ._docs import documented

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section
from gpuscale.config.scaling import read_alert_recipients


class GpuAlertTopicArgs(TypedDict):
    topic_name: NotRequired[pulumi.Input[str] | None]
    """Name of the topic to create. Default: Pulumi's auto-name from the component's name."""
    email: NotRequired[pulumi.Input[str] | None]
    """Address subscribed to the topic; AWS mails it a confirmation link first. Default none."""
    tags: NotRequired[pulumi.Input[Mapping[str, str]]]
    """Tags on the topic (cost allocation). Default none."""


def check_args(s: Section) -> None:
    """The rules of GpuAlertTopicArgs: the stack config's `gpuscale:alerts` recipients."""
    read_alert_recipients(s)
    s.input("tags", {})


@documented
class GpuAlertTopic(pulumi.ComponentResource):
    """An SNS topic for alarm notifications (CloudWatch alarms in the same account may publish to it)."""

    topic_arn: pulumi.Output[str]
    """ARN of the SNS topic (alarm actions, GpuAlarmsArgs.alarm_topic_arn)."""

    def __init__(self, name: str, args: GpuAlertTopicArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("GpuAlertTopic", name, args, GpuAlertTopicArgs, check_args, {"snsTopicName": "topic_name"})
        super().__init__("gpuscale:index:GpuAlertTopic", name, None, opts)
        topic = aws.sns.Topic(f"{name}-topic", name=args.get("topic_name"), tags=args.get("tags"),
                                opts=pulumi.ResourceOptions(parent=self))
        email = args.get("email")
        if email is not None:
            aws.sns.TopicSubscription(f"{name}-email", topic=topic.arn, protocol="email", endpoint=email,
                                      opts=pulumi.ResourceOptions(parent=self))
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})
