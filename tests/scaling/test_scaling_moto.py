"""Against a moto server on loopback: the plan's policies, hook and alarms created through boto3 read back as sent,
alarm actions reach the right policy, and the agent's datapoints are found by each alarm's exact metric query."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto.server import ThreadedMotoServer
from scaling_harness import ASG, REGION, full_policies_args, run_program
from scaling_replay import ALARM, HOOK, POLICY, ROLE_POLICY, api_params, replay, subset_mismatches

from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.buffer import Row
from gpu_metrics_agent.cloudwatch_batch import RequestBuilder, SeriesTable
from gpu_metrics_agent.imds import NodeIdentity
from gpu_metrics_agent.snapshot import GpuReading, Snapshot
from gpuscale.components.gpu_alarms import GpuAlarms
from gpuscale.components.gpu_alert_topic import GpuAlertTopic
from gpuscale.components.gpu_dashboard import GpuDashboard
from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies

SECONDS = 30
NODES = {"i-0aaaaaaaaaaaaaaa1": 2, "i-0bbbbbbbbbbbbbbb2": 2}
"""Instance id -> GPUs, both g6.12xlarge-like nodes of the group."""


@pytest.fixture(scope="module")
def aws():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    kw = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION, aws_access_key_id="testing",
              aws_secret_access_key="testing")
    clients = {name: boto3.client(name, **kw) for name in ("autoscaling", "cloudwatch", "sns", "iam")}
    yield clients
    server.stop()


@pytest.fixture(scope="module")
def created(aws):
    def build():
        topic = GpuAlertTopic("alerts", {"topic_name": "gpu-alerts", "email": "oncall@example.com"})
        policies = GpuScalingPolicies("infer-scaling", full_policies_args())
        alarms = GpuAlarms("infer-alarms", {"asg_name": ASG, "target_gpu_utilization": 60.0,
                                            "alarm_topic_arn": topic.topic_arn})
        GpuDashboard("dash", {"dashboard_name": "gpuscale-test", "region": REGION, "groups": [
            {"asg_name": ASG, "alarm_arns": policies.alarm_arns}, {"asg_name": ASG, "alarm_arns": alarms.alarm_arns}]})
    program = run_program(build)
    aws["autoscaling"].create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b",
                                                   InstanceType="g6.12xlarge")
    aws["autoscaling"].create_auto_scaling_group(AutoScalingGroupName=ASG, LaunchConfigurationName="lc", MinSize=0,
                                                 MaxSize=4, AvailabilityZones=[f"{REGION}a"])
    aws["iam"].create_role(RoleName="infer-role", AssumeRolePolicyDocument="{}")
    arns = replay(program.resources, program.outputs, aws)
    return program, arns


def test_policies_read_back_as_the_plan_holds_them(aws, created):
    program, _ = created
    stored = {p["PolicyName"]: p for p in aws["autoscaling"].describe_policies(
        AutoScalingGroupName=ASG)["ScalingPolicies"]}
    for resource in program.of_type(POLICY):
        sent = api_params(resource)
        assert subset_mismatches(sent, stored[sent["PolicyName"]]) == [], resource.name


def test_hook_reads_back(aws, created):
    program, _ = created
    hook, = program.of_type(HOOK)
    sent = api_params(hook)
    stored, = aws["autoscaling"].describe_lifecycle_hooks(AutoScalingGroupName=ASG)["LifecycleHooks"]
    assert subset_mismatches(sent, stored) == []


def test_instance_role_policy_is_a_valid_document(aws, created):
    program, _ = created
    resource, = program.of_type(ROLE_POLICY)
    sent = api_params(resource)
    stored = aws["iam"].get_role_policy(RoleName="infer-role", PolicyName=sent["PolicyName"])
    assert stored["PolicyDocument"]["Statement"][0]["Resource"].endswith(f":autoScalingGroupName/{ASG}")


def test_alarms_read_back_and_act_on_the_right_policy(aws, created):
    program, arns = created
    stored = {a["AlarmName"]: a for a in aws["cloudwatch"].describe_alarms(MaxRecords=100)["MetricAlarms"]}
    assert len(stored) == len(program.of_type(ALARM))
    for resource in program.of_type(ALARM):
        sent = api_params(resource)
        sent["AlarmActions"] = [arns[a] for a in sent["AlarmActions"]]
        sent["OKActions"] = [arns[a] for a in sent["OKActions"]]
        assert subset_mismatches(sent, stored[sent["AlarmName"]]) == [], resource.name
    for step in ("burst", "idle", "wake"):
        action, = stored[f"infer-scaling-{step}-alarm"]["AlarmActions"]
        assert action.endswith(f":autoScalingGroupName/{ASG}:policyName/infer-scaling-{step}"), action
    topic = aws["sns"].list_topics()["Topics"][0]["TopicArn"]
    assert stored["infer-alarms-agent-blind"]["AlarmActions"] == [topic]


def test_dashboard_lists_the_created_alarms(aws, created):
    import json

    body = json.loads(aws["cloudwatch"].get_dashboard(DashboardName="gpuscale-test")["DashboardBody"])
    listed = {a for w in body["widgets"] if w["type"] == "alarm" for a in w["properties"]["alarms"]}
    stored = {a["AlarmArn"] for a in aws["cloudwatch"].describe_alarms(MaxRecords=100)["MetricAlarms"]}
    assert listed == stored


# --- the agent's datapoints against the alarms' queries ------------------------------------------------------------

def gpu_util(node: int, gpu: int, second: int) -> float:
    return float((17 * node + 29 * gpu + 7 * second) % 101)


def snapshots(start: float):
    """(identity, snapshot) per node and second: utilization varies, GPU 1 of the second node is thermally
    throttled for ten seconds and has one XID error."""
    for n, (instance, gpus) in enumerate(NODES.items()):
        identity = NodeIdentity(ASG, instance, "g6.12xlarge", REGION)
        for t in range(SECONDS):
            readings = []
            for g in range(gpus):
                throttled = float(n == 1 and g == 1 and 10 <= t < 20)
                readings.append(GpuReading(g, f"GPU-{n}{g}", {
                    cat.GPU_UTILIZATION.name: gpu_util(n, g, t), cat.GPU_THERMAL_THROTTLE.name: throttled,
                    cat.GPU_POWER_THROTTLE.name: 0.0, cat.GPU_XID_ERRORS.name: float(n == 1 and g == 1),
                    cat.GPU_ECC_UNCORRECTED.name: 0.0}))
            utils = [gpu_util(n, g, t) for g in range(gpus)]
            node = {cat.NODE_GPU_UTILIZATION.name: sum(utils) / gpus, cat.NODE_GPU_UTILIZATION_SUM.name: sum(utils),
                    cat.NODE_GPU_COUNT.name: float(gpus), cat.AGENT_HEARTBEAT.name: 1.0}
            yield identity, Snapshot(start + t, float(t), 0.001, tuple(readings), node)


def expected(metric: str, stat: str, period: int, start: float) -> dict[float, float]:
    """What the group roll-up holds per period: every node's (or GPU's) value of each second counts once."""
    buckets: dict[float, list[float]] = {}
    for _, snap in snapshots(start):
        values = [snap.node[metric]] if metric in snap.node else [g.values[metric] for g in snap.gpus]
        buckets.setdefault(start + (snap.timestamp - start) // period * period, []).extend(values)
    reduce = {"Sum": sum, "Maximum": max, "Average": lambda v: sum(v) / len(v)}[stat]
    return {t: reduce(v) for t, v in buckets.items()}


@pytest.fixture(scope="module")
def published(aws) -> float:
    """Datapoints published the way the agent builds its PutMetricData requests; returns the first second."""
    start = float((int(datetime.now(timezone.utc).timestamp()) // 60 - 3) * 60)
    tables: dict[str, SeriesTable] = {}
    for seq, (identity, snap) in enumerate(snapshots(start)):
        keys, values = tables.setdefault(identity.instance_id, SeriesTable()).flatten(snap)
        batch = RequestBuilder(identity).build([Row(seq, snap.timestamp, keys, values)], 0, now=snap.timestamp)
        aws["cloudwatch"].put_metric_data(Namespace=cat.NAMESPACE, MetricData=batch.metric_data)
    return start


def agent_queries(aws) -> list[tuple[str, dict]]:
    """Every MetricStat on the agent's namespace that an alarm or a target tracking policy holds, as stored."""
    found = [(a["AlarmName"], q["MetricStat"]) for a in aws["cloudwatch"].describe_alarms(
        MaxRecords=100)["MetricAlarms"] for q in a.get("Metrics", []) if "MetricStat" in q]
    for p in aws["autoscaling"].describe_policies(AutoScalingGroupName=ASG)["ScalingPolicies"]:
        spec = p.get("TargetTrackingConfiguration", {}).get("CustomizedMetricSpecification", {})
        found += [(p["PolicyName"], q["MetricStat"]) for q in spec.get("Metrics", []) if "MetricStat" in q]
    return [(owner, stat) for owner, stat in found if stat["Metric"]["Namespace"] == cat.NAMESPACE]


def test_agent_datapoints_are_found_by_each_alarms_exact_query(aws, created, published):
    queries = agent_queries(aws)
    owners = {owner for owner, _ in queries}
    assert {"infer-scaling-burst-alarm", "infer-scaling-idle-alarm", "infer-scaling-gpu-target",
            "infer-alarms-agent-blind", "infer-alarms-xid-errors", "infer-alarms-thermal-throttle"} <= owners
    start = datetime.fromtimestamp(published, timezone.utc)
    for owner, stat in queries:
        answer = aws["cloudwatch"].get_metric_data(
            MetricDataQueries=[{"Id": "q", "MetricStat": stat, "ReturnData": True}], StartTime=start,
            EndTime=start + timedelta(seconds=60))["MetricDataResults"][0]
        got = {ts.timestamp(): v for ts, v in zip(answer["Timestamps"], answer["Values"])}
        want = expected(stat["Metric"]["MetricName"], stat["Stat"], stat["Period"], published)
        assert got == pytest.approx(want), f"{owner}: {stat}"


def test_thermal_throttle_share_and_xid_are_what_the_alarms_see(aws, published):
    # 2 nodes x 2 GPUs, one of them throttled for 10 of 30 seconds: 10 / 120 of the GPU-samples.
    assert expected(cat.GPU_THERMAL_THROTTLE.name, "Average", 60, published) == {published: pytest.approx(10 / 120)}
    assert expected(cat.GPU_XID_ERRORS.name, "Maximum", 60, published) == {published: 1.0}
    assert expected(cat.AGENT_HEARTBEAT.name, "Sum", 60, published) == {published: 2 * SECONDS}
