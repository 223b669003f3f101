"""Pre-apply checks: each finding names the settings involved."""

from __future__ import annotations

from types import SimpleNamespace

from sim_support import config, group, stack, workload

from gpuscale.plan.checks import ERROR, INFO, WARNING, run_checks

G0 = "gpuscale:autoScalingGroups[0]"
WAKE = {"kind": "sqs", "queueName": "q"}
SCALE_TO_ZERO = {"target": {"gpuUtilization": 70}, "scaleToZero": {"idleMinutes": 1, "wake": WAKE}}
COLD = {"nodeProvisioningSeconds": 120, "imagePullSeconds": 90, "modelLoadSeconds": 90}


def findings(cfg, check, plan=None):
    return [f for f in run_checks(cfg, plan) if f.check == check]


def test_scale_to_zero_without_a_wake_signal():
    cfg = config(group(scaling={"target": {"gpuUtilization": 70}}))
    (f,) = findings(cfg, "wake")
    assert f.severity == ERROR and f"{G0}.minSize" in f.settings and f"{G0}.scaling.scaleToZero" in f.settings
    assert not findings(config(group(scaling=SCALE_TO_ZERO)), "wake")
    assert not findings(config(group(minSize=1, scaling={"target": {"gpuUtilization": 70}})), "wake")


def test_request_timeout_shorter_than_a_cold_start_from_zero():
    cfg = config(group(scaling=SCALE_TO_ZERO, workload=workload(coldStart=COLD, requestTimeoutSeconds=300)))
    (f,) = [f for f in findings(cfg, "cold-start") if "requestTimeoutSeconds" in f.settings[0]]
    assert f.severity == WARNING and "about 360 s" in f.message  # one-minute wake alarm + 300 s cold start


def test_readiness_deadline_and_health_check_grace_shorter_than_the_cold_start():
    cfg = config(group(minSize=1, healthCheckGraceSeconds=120,
                       workload=workload(coldStart=COLD, readinessDeadlineSeconds=200)))
    keys = {f.settings[0]: f.severity for f in findings(cfg, "cold-start")}
    assert keys[f"{G0}.workload.readinessDeadlineSeconds"] == ERROR
    assert keys[f"{G0}.healthCheckGraceSeconds"] == ERROR


def test_instance_warmup_shorter_than_pull_and_load():
    cfg = config(group(minSize=1, instanceWarmupSeconds=60, scaling={"target": {"gpuUtilization": 70}},
                       workload=workload(coldStart=COLD)))
    (f,) = [f for f in findings(cfg, "cold-start") if f.settings[0].endswith("instanceWarmupSeconds")]
    assert f.severity == WARNING and "180 s" in f.message


def test_metric_period_shorter_than_the_agent_flush():
    cfg = config(group(minSize=1, scaling={"target": {"gpuUtilization": 70, "periodSeconds": 30}}),
                 agent={"flushIntervalSeconds": 30})
    assert not findings(cfg, "metric-period")
    fast = config(group(minSize=1, scaling={"target": {"gpuUtilization": 70, "periodSeconds": 30}}))
    short = fast.auto_scaling_groups[0]
    # The config reader refuses this already; the check still catches a config assembled elsewhere.
    slow_agent = SimpleNamespace(sample_interval_seconds=1, flush_interval_seconds=60, prometheus_port=9400)
    cfg = SimpleNamespace(auto_scaling_groups=(short,), agent=slow_agent)
    (f,) = findings(cfg, "metric-period")
    assert f.severity == ERROR and f.settings == (f"{G0}.scaling.target.periodSeconds",
                                                  "gpuscale:agent.flushIntervalSeconds")


def test_two_groups_on_one_queue():
    shared = {"target": {"gpuUtilization": 70}, "demand": {**WAKE, "targetPerInstance": 5}}
    cfg = config(group("a", minSize=1, scaling=shared), group("b", minSize=1, scaling=shared))
    (f,) = findings(cfg, "two-autoscalers")
    assert f.severity == WARNING and f.settings == (f"{G0}.scaling.demand",
                                                    "gpuscale:autoScalingGroups[1].scaling.demand")


def test_time_to_capacity_for_every_scalable_group():
    for name in ("dev", "prod"):
        cfg = stack(name)
        infos = [f for f in findings(cfg, "time-to-capacity") if f.settings[0].startswith("gpuscale:autoScaling")]
        scalable = [i for i, g in enumerate(cfg.auto_scaling_groups) if g.scaling is not None and g.workload]
        assert [f.settings[0] for f in infos] == [f"gpuscale:autoScalingGroups[{i}].scaling" for i in scalable]
        assert all(f.severity == INFO and " s " in f.message for f in infos)
        for i, f in zip(scalable, infos):
            g = cfg.auto_scaling_groups[i]
            onto = f"idle at its {g.min_size} instances" if g.min_size else "onto the group at zero"
            assert onto in f.message, f.message


def test_time_to_capacity_for_every_node_group_with_a_workload():
    for name in ("dev", "prod"):
        cfg = stack(name)
        infos = [f for f in findings(cfg, "time-to-capacity") if f.settings[0].startswith("gpuscale:nodeGroups")]
        groups = [i for i, g in enumerate(cfg.node_groups) if g.workload is not None]
        assert groups and [f.settings for f in infos] == [
            (f"gpuscale:nodeGroups[{i}].workload", "gpuscale:kubernetes.clusterAutoscaler") for i in groups]
        for i, f in zip(groups, infos):
            g = cfg.node_groups[i]
            ready = g.workload.cold_start.gpu_ready_seconds(cfg.kubernetes.cluster_autoscaler.scan_interval_seconds)
            assert f"pending pod to GPU ready at most {ready:.0f} s" in f.message and "cluster-autoscaler" in f.message


def test_errors_come_first():
    cfg = config(group(healthCheckGraceSeconds=60, scaling={"target": {"gpuUtilization": 70}},
                       workload=workload(coldStart=COLD)))
    severities = [f.severity for f in run_checks(cfg)]
    assert severities == sorted(severities, key=[ERROR, WARNING, INFO].index) and severities[0] == ERROR


def test_findings_name_their_group_by_name():
    """A finding about one group says which, by its name, beside the key's index."""
    cfg = config(group(scaling={"target": {"gpuUtilization": 70}}))
    (f,) = findings(cfg, "wake")
    name = cfg.auto_scaling_groups[0].name
    assert f.group == name and f.to_json()["group"] == name
    assert str(f).startswith(f"error: [wake] group {name}: target tracking may scale this group in to zero")
