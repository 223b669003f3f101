"""Scale-in protection while busy and drain on termination, against a real moto Auto Scaling group on loopback.

moto keeps instance protection (read back with describe_auto_scaling_instances) but does not implement
CompleteLifecycleAction, so a recording proxy in front of moto answers that call itself, after checking the hook
and the instance against moto's own state, and records every Auto Scaling and CloudWatch call in order.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

import boto3
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_support import FakeImds, wait_until
from gpu_metrics_agent.config import parse_config
from gpu_metrics_agent.fake_nvml import FakeNvml
from gpu_metrics_agent.health import Health
from gpu_metrics_agent.imds import TARGET_LIFECYCLE_STATE
from gpu_metrics_agent.prometheus import AgentCollector, make_registry

HOOK = "gpuscale-drain"
# Hold times of a few samples (FAST samples every 50 ms), so each scenario takes about a second.
QUICK = dict(busy_utilization=10.0, busy_hold=0.15, idle_hold=0.2, lifecycle_poll_interval=0.05, prometheus=False)
_XML = 'xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"'


class RecordingProxy:
    """HTTP proxy to moto that records each call's action, answers CompleteLifecycleAction, and injects errors."""

    def __init__(self, upstream: tuple[str, int], autoscaling) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.fail: dict[str, int] = {}
        """Action -> how many of its next calls get a ValidationError (not retried by botocore)."""
        self.no_action_pending = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
                action = target.rsplit(".", 1)[-1] if target else form.get("Action", "")
                proxy.calls.append((action, form))
                if proxy.fail.get(action):
                    proxy.fail[action] -= 1
                    return self._error(f"injected failure of {action}")
                if action == "CompleteLifecycleAction":
                    return self._complete(form)
                upstream_conn = http.client.HTTPConnection(*upstream, timeout=10)
                upstream_conn.request("POST", self.path, body=body, headers=dict(self.headers))
                response = upstream_conn.getresponse()
                self._reply(response.status, response.read(), response.getheader("Content-Type", "text/xml"))
                upstream_conn.close()

            def _complete(self, form: dict[str, str]) -> None:
                hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=form["AutoScalingGroupName"])
                instances = autoscaling.describe_auto_scaling_instances(InstanceIds=[form["InstanceId"]])
                if proxy.no_action_pending or form["LifecycleHookName"] not in \
                        {h["LifecycleHookName"] for h in hooks["LifecycleHooks"]} or not \
                        instances["AutoScalingInstances"]:
                    return self._error(f"No active Lifecycle Action found with instance ID {form['InstanceId']}")
                self._reply(200, f"<CompleteLifecycleActionResponse {_XML}><CompleteLifecycleActionResult/>"
                                 "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>"
                                 "</CompleteLifecycleActionResponse>".encode())

            def _error(self, message: str) -> None:
                self._reply(400, f"<ErrorResponse {_XML}><Error><Type>Sender</Type><Code>ValidationError</Code>"
                                 f"<Message>{message}</Message></Error><RequestId>1</RequestId>"
                                 "</ErrorResponse>".encode())

            def _reply(self, status: int, data: bytes, content_type: str = "text/xml") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def actions(self, name: str) -> list[dict[str, str]]:
        return [form for action, form in self.calls if action == name]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Group(NamedTuple):
    name: str
    instance_id: str
    autoscaling: object
    """A boto3 Auto Scaling client reading moto directly."""

    def protected(self) -> bool:
        return self.autoscaling.describe_auto_scaling_instances(
            InstanceIds=[self.instance_id])["AutoScalingInstances"][0]["ProtectedFromScaleIn"]


@pytest.fixture(scope="module")
def aws(moto_server):
    """Clients on a moto reset once for this module (each test has a group of its own), and a launch template."""
    url = "http://%s:%d" % moto_server
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
    clients = {name: boto3.client(name, region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing",
                                  aws_secret_access_key="testing") for name in ("ec2", "autoscaling")}
    clients["ec2"].create_launch_template(LaunchTemplateName="gpu-lt", LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "g6.xlarge"})
    return clients


@pytest.fixture
def group(aws, request, monkeypatch) -> Group:
    """An Auto Scaling group with one in-service instance and a termination hook, named after the test."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)  # for the agent's own clients
    name = request.node.name[:200]
    autoscaling = aws["autoscaling"]
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": "gpu-lt"},
                                          MinSize=1, MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-1a"])
    autoscaling.put_lifecycle_hook(LifecycleHookName=HOOK, AutoScalingGroupName=name, HeartbeatTimeout=30,
                                   LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING", DefaultResult="CONTINUE")
    instance, = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0][
        "Instances"]
    return Group(name, instance["InstanceId"], autoscaling)


@pytest.fixture
def recorder(moto_server, group):
    recording = RecordingProxy(moto_server, group.autoscaling)
    yield recording
    recording.close()


@pytest.fixture
def imds():
    fake = FakeImds({TARGET_LIFECYCLE_STATE: "InService"})
    yield fake
    fake.close()


@pytest.fixture
def start(make_agent, group, recorder, imds):
    """Starts an agent on `nvml` for the group's instance, Auto Scaling through the recorder, instance metadata fake."""
    def build(nvml: FakeNvml, **options):
        agent = make_agent(nvml, **{**QUICK, "asg_name": group.name, "instance_id": group.instance_id,
                                    "cloudwatch": False, "autoscaling_endpoint": recorder.url,
                                    "imds_endpoint": imds.url, **options})
        agent.start()
        return agent
    return build


def _set_utilization(nvml: FakeNvml, percent: int) -> None:
    for gpu in nvml.gpus:
        gpu.utilization_gpu = percent


def test_protection_is_set_while_busy_and_removed_when_idle_with_one_call_per_change(group, recorder, start):
    nvml = FakeNvml(2)
    _set_utilization(nvml, 90)
    agent = start(nvml, scale_in_protection=True)
    wait_until(lambda: group.protected(), timeout=5, message="protection set while busy")
    _set_utilization(nvml, 0)
    wait_until(lambda: not group.protected(), timeout=5, message="protection removed when idle")
    time.sleep(0.3)  # several more idle samples: no further calls
    calls = recorder.actions("SetInstanceProtection")
    assert [c["ProtectedFromScaleIn"] for c in calls] == ["true", "false"], "one call per state change"
    assert calls[0]["AutoScalingGroupName"] == group.name and calls[0]["InstanceIds.member.1"] == group.instance_id
    assert agent.health.lc_protection_changes == 2 and agent.health.lc_protected is False
    assert agent.health.collections > 10


def test_a_failed_protection_call_is_counted_and_retried_without_stalling_sampling(group, recorder, start):
    recorder.fail["SetInstanceProtection"] = 1
    nvml = FakeNvml(1)
    _set_utilization(nvml, 90)
    agent = start(nvml, scale_in_protection=True)
    wait_until(lambda: agent.health.lc_errors["set_instance_protection"] == 1, timeout=5, message="failure counted")
    collections = agent.health.collections
    wait_until(lambda: group.protected(), timeout=5, message="protection set on the retry")
    assert agent.health.collections > collections, "sampling went on"
    assert len(recorder.actions("SetInstanceProtection")) == 2


def test_terminating_busy_node_waits_for_idle_flushes_then_completes(group, recorder, imds, start):
    nvml = FakeNvml(2)
    _set_utilization(nvml, 90)
    # CloudWatch through the recorder too, flushing only at start: a later PutMetricData is the drain's flush.
    # No hook name given: the agent finds the group's termination hook itself.
    agent = start(nvml, drain=True, drain_timeout=10.0, cloudwatch=True, cloudwatch_endpoint=recorder.url,
                  flush_interval=60.0)
    wait_until(lambda: recorder.actions("PutMetricData"), timeout=5, message="the first flush")
    imds.items[TARGET_LIFECYCLE_STATE] = "Terminated"
    noticed = len(recorder.calls)
    wait_until(lambda: recorder.actions("DescribeLifecycleHooks"), timeout=5, message="the hook looked up")
    assert agent.health.lc_draining
    time.sleep(0.5)
    assert recorder.actions("CompleteLifecycleAction") == [], "busy GPUs hold the instance"
    waiting = [action for action, _ in recorder.calls[noticed:]]
    assert waiting.count("DescribeLifecycleHooks") == 1, f"the hook is looked up once, at the notice: {waiting}"
    idle = len(recorder.calls)
    _set_utilization(nvml, 0)
    wait_until(lambda: agent.health.lc_actions_completed == 1, timeout=5, message="lifecycle action completed")
    after = [action for action, _ in recorder.calls[idle:]]
    assert after[-1] == "CompleteLifecycleAction" and set(after[:-1]) == {"PutMetricData"}, \
        f"flushed (one or more requests), then completed once: {after}"
    complete, = recorder.actions("CompleteLifecycleAction")
    assert complete == {"Action": "CompleteLifecycleAction", "Version": "2011-01-01", "LifecycleHookName": HOOK,
                        "AutoScalingGroupName": group.name, "InstanceId": group.instance_id,
                        "LifecycleActionResult": "CONTINUE"}
    assert agent.health.lc_draining is False and sum(agent.health.lc_errors.values()) == 0


def test_terminating_node_still_busy_completes_at_the_drain_deadline(recorder, imds, start):
    nvml = FakeNvml(1)
    _set_utilization(nvml, 90)
    agent = start(nvml, drain=True, drain_hook_name=HOOK, drain_timeout=0.8)
    time.sleep(0.2)
    terminated_at = time.monotonic()  # the agent notices at or after this, so completes no earlier than 0.8 s on
    imds.items[TARGET_LIFECYCLE_STATE] = "Terminated"
    wait_until(lambda: recorder.actions("CompleteLifecycleAction"), timeout=5, message="completion at the deadline")
    waited = time.monotonic() - terminated_at
    assert 0.8 <= waited <= 2.5, f"completed {waited:.2f} s after the notice; deadline 0.8 s"
    assert recorder.actions("DescribeLifecycleHooks") == [], "the hook was named: no look-up"
    wait_until(lambda: agent.health.lc_actions_completed == 1, timeout=2, message="completion counted")


def test_warm_pool_states_are_not_drained_and_a_pool_termination_completes_at_once(recorder, imds, start):
    nvml = FakeNvml(1)
    _set_utilization(nvml, 90)
    agent = start(nvml, drain=True, drain_timeout=30.0, scale_in_protection=True)
    wait_until(lambda: agent.health.lc_protected, timeout=5, message="protected while busy in service")
    imds.items[TARGET_LIFECYCLE_STATE] = "Warmed:Stopped"
    wait_until(lambda: agent.lifecycle.target_state == "Warmed:Stopped", timeout=5, message="state read")
    _set_utilization(nvml, 0)
    time.sleep(0.5)
    assert not agent.health.lc_draining and recorder.actions("CompleteLifecycleAction") == []
    assert len(recorder.actions("SetInstanceProtection")) == 1, "no protection changes outside service"
    # Terminated out of the pool: no work to wait for; nothing pending is an answer, not an error.
    recorder.no_action_pending = True
    _set_utilization(nvml, 90)
    imds.items[TARGET_LIFECYCLE_STATE] = "Warmed:Terminated"
    wait_until(lambda: recorder.actions("CompleteLifecycleAction"), timeout=2, message="completed without waiting")
    wait_until(lambda: not agent.health.lc_draining, timeout=2, message="drain over")
    assert agent.health.lc_errors["complete_lifecycle_action"] == 0


def test_a_group_with_several_termination_hooks_is_not_drained_without_a_hook_name(group, recorder, imds, start):
    group.autoscaling.put_lifecycle_hook(LifecycleHookName="someone-elses", AutoScalingGroupName=group.name,
                                LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING")
    agent = start(FakeNvml(1), drain=True, drain_timeout=0.0)
    imds.items[TARGET_LIFECYCLE_STATE] = "Terminated"
    wait_until(lambda: agent.health.lc_errors["describe_lifecycle_hooks"] == 1, timeout=5, message="refusal counted")
    time.sleep(0.2)
    assert recorder.actions("CompleteLifecycleAction") == [], "not ours to guess which hook to complete"
    assert len(recorder.actions("DescribeLifecycleHooks")) == 1 and not agent.health.lc_draining


def test_instance_metadata_failures_are_counted_and_sampling_goes_on(make_agent):
    agent = make_agent(FakeNvml(1), imds_endpoint="http://127.0.0.1:9", autoscaling_endpoint="http://127.0.0.1:9",
                       cloudwatch=False, drain=True, **QUICK)
    agent.start()
    wait_until(lambda: agent.health.lc_errors["target_lifecycle_state"] >= 2, timeout=5, message="IMDS failures")
    assert agent.health.collections > 0 and not agent.health.lc_draining


def test_lifecycle_health_is_exported_on_metrics():
    health = Health(1.0, 5)
    health.lc_protected, health.lc_protection_changes, health.lc_draining = True, 3, True
    health.lc_errors["complete_lifecycle_action"] = 2
    text = generate_latest(make_registry(AgentCollector(lambda: None, health, lifecycle=True))).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("gpuscale_agent_scale_in_protected", ())] == 1.0
    assert samples[("gpuscale_agent_scale_in_protection_changes_total", ())] == 3.0
    assert samples[("gpuscale_agent_draining", ())] == 1.0
    assert samples[("gpuscale_agent_lifecycle_errors_total", (("call", "complete_lifecycle_action"),))] == 2.0
    assert samples[("gpuscale_agent_lifecycle_errors_total", (("call", "identity"),))] == 0.0
    off = generate_latest(make_registry(AgentCollector(lambda: None, health))).decode()
    assert "gpuscale_agent_scale_in" not in off and "gpuscale_agent_lifecycle" not in off, "nothing while off"


@pytest.mark.parametrize("argv, env, expected", [
    ([], {"GPU_METRICS_AGENT_DRAIN": "sometimes"}, "(option --drain): must be true or false, got 'sometimes'"),
    ([], {"GPU_METRICS_AGENT_BUSY_UTILIZATION": "100"},
     "GPU_METRICS_AGENT_BUSY_UTILIZATION (option --busy-utilization): must be a percentage, 0 <= value < 100"),
    (["--idle-hold", "-1"], {}, "argument --idle-hold: must be a number, 0 <= value <= 86400 s, got '-1'"),
])
def test_lifecycle_options_are_validated_naming_the_option(argv, env, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argv, env)
    assert exit_info.value.code == 2 and expected in capsys.readouterr().err


def test_lifecycle_is_off_by_default():
    config = parse_config([], {})
    assert (config.scale_in_protection, config.drain) == (False, False)
