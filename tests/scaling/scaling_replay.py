"""Replays what the plan recorded as the AWS API calls the provider would make, through boto3 (at moto).

Pulumi's inputs are the AWS API's fields in camelCase with a few renames and reshapes: the provider flattens an
alarm query's MetricStat, takes its dimensions as a map, and takes step bounds as strings. Everything else converts
mechanically, and botocore validates every parameter name and type against the API's own model before sending, so an
input the API does not have fails the replay.
"""

from __future__ import annotations

import json
from typing import Any

from gpuscale.plan.model import PlannedResource

POLICY = "aws:autoscaling/policy:Policy"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

# type -> (client, operation, renamed inputs, parameter holding the physical name). Order: what others refer to
# (topics, policies) is created before what refers to it (subscriptions, alarms, the dashboard).
CALLS: dict[str, tuple[str, str, dict[str, str], str | None]] = {
    TOPIC: ("sns", "create_topic", {}, "Name"),
    SUBSCRIPTION: ("sns", "subscribe", {"topic": "TopicArn"}, None),
    POLICY: ("autoscaling", "put_scaling_policy", {"autoscalingGroupName": "AutoScalingGroupName"}, "PolicyName"),
    HOOK: ("autoscaling", "put_lifecycle_hook", {"autoscalingGroupName": "AutoScalingGroupName"},
           "LifecycleHookName"),
    ROLE_POLICY: ("iam", "put_role_policy", {"role": "RoleName", "policy": "PolicyDocument"}, "PolicyName"),
    ALARM: ("cloudwatch", "put_metric_alarm", {"okActions": "OKActions"}, "AlarmName"),
    DASHBOARD: ("cloudwatch", "put_dashboard", {}, None),
}


def api_params(resource: PlannedResource) -> dict[str, Any]:
    """The request parameters for `resource`'s create call. An auto-named resource takes its Pulumi name."""
    _, _, renames, name_param = CALLS[resource.type]
    inputs = dict(resource.inputs)
    queries = inputs.pop("metricQueries", None)
    name = inputs.pop("name", None)
    params = {renames.get(k, _pascal(k)): _api_value(v) for k, v in inputs.items()}
    if name_param is not None:
        params[name_param] = name or resource.name
    if queries is not None:
        params["Metrics"] = [_alarm_query(q) for q in queries]
    for step in params.get("StepAdjustments", []):
        for bound in ("MetricIntervalLowerBound", "MetricIntervalUpperBound"):
            if bound in step:
                step[bound] = float(step[bound])
    return params


def replay(resources: list[PlannedResource], outputs: dict[str, dict[str, Any]], clients: dict[str, Any]
           ) -> dict[str, str]:
    """Create every replayable resource; returns the plan's (mock) ARNs mapped to the ARNs AWS (moto) gave them.

    References between resources (an alarm's actions, the dashboard's alarm list) are rewritten from the plan's ARNs
    to the created ones; a reference to anything not created here fails.
    """
    arns: dict[str, str] = {}
    for kind in CALLS:
        for resource in (r for r in resources if r.type == kind):
            client_name, operation, _, name_param = CALLS[kind]
            params = _rewrite(api_params(resource), arns)
            client = clients[client_name]
            answer = getattr(client, operation)(**params)
            mock_arn = outputs[resource.urn].get("arn")
            if mock_arn:
                arns[mock_arn] = _created_arn(kind, client, params, answer)
    return arns


def _created_arn(kind: str, client: Any, params: dict[str, Any], answer: dict[str, Any]) -> str:
    if kind == TOPIC:
        return answer["TopicArn"]
    if kind == POLICY:  # moto leaves PolicyARN out of PutScalingPolicy's answer; describe has it
        policies = client.describe_policies(AutoScalingGroupName=params["AutoScalingGroupName"],
                                            PolicyNames=[params["PolicyName"]])["ScalingPolicies"]
        return policies[0]["PolicyARN"]
    if kind == ALARM:
        return client.describe_alarms(AlarmNames=[params["AlarmName"]])["MetricAlarms"][0]["AlarmArn"]
    return answer.get("SubscriptionArn", "")


def _rewrite(params: dict[str, Any], arns: dict[str, str]) -> dict[str, Any]:
    for key in ("AlarmActions", "OKActions"):
        if key in params:
            unknown = [a for a in params[key] if a not in arns]
            assert not unknown, f"{key} refers to {unknown}, which the plan does not create"
            params[key] = [arns[a] for a in params[key]]
    if "TopicArn" in params:
        params["TopicArn"] = arns[params["TopicArn"]]
    if "DashboardBody" in params:
        body = json.loads(params["DashboardBody"])
        for widget in body["widgets"]:
            if widget["type"] == "alarm":
                widget["properties"]["alarms"] = [arns[a] for a in widget["properties"]["alarms"]]
        params["DashboardBody"] = json.dumps(body)
    return params


def _alarm_query(query: dict[str, Any]) -> dict[str, Any]:
    out = {_pascal(k): _api_value(v) for k, v in query.items() if k != "metric"}
    metric = query.get("metric")
    if metric is not None:
        # The provider's flat `metric` block is the API's MetricStat {Metric {..}, Period, Stat, Unit}.
        out["MetricStat"] = {
            "Metric": {"Namespace": metric["namespace"], "MetricName": metric["metricName"],
                       "Dimensions": [{"Name": k, "Value": v} for k, v in metric.get("dimensions", {}).items()]},
            "Period": int(metric["period"]), "Stat": metric["stat"],
            **({"Unit": metric["unit"]} if metric.get("unit") else {})}
    return out


def _pascal(key: str) -> str:
    return key[:1].upper() + key[1:]


def _api_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {_pascal(k): _api_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_api_value(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the plan's numbers are JSON doubles; integer API fields refuse 3.0
    return value


def subset_mismatches(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Where `stored` (what the API gives back) differs from `sent`; keys only in `stored` are fine."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [f"{path}: sent a mapping, got {stored!r}"]
        return [m for k, v in sent.items() for m in subset_mismatches(v, stored.get(k), f"{path}.{k}")]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [f"{path}: sent {sent!r}, got {stored!r}"]
        return [m for i, (a, b) in enumerate(zip(sent, stored)) for m in subset_mismatches(a, b, f"{path}[{i}]")]
    same = sent == stored or (isinstance(sent, (int, float)) and isinstance(stored, (int, float))
                              and float(sent) == float(stored))
    return [] if same else [f"{path}: sent {sent!r}, got {stored!r}"]
