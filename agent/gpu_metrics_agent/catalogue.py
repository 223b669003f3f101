"""The metric catalogue: the one source of truth for metric names, units, dimensions and namespace.

The agent publishes exactly these series; the scaling policies, alarms and dashboard (``gpuscale.components``)
import the same constants, so a name is never typed twice. This module is pure data: it imports nothing from the
rest of the agent, nothing from NVML and nothing from AWS, so any package can read it cheaply.

CloudWatch values are published in the CloudWatch unit named by ``cw_unit``; Prometheus exposes the same reading
in base units (``prom_name`` ends with the base unit, and ``prom_scale`` converts: percent -> ratio is 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NAMESPACE = "GpuScale/Agent"
"""CloudWatch namespace of every series the agent publishes; the instance role may write to this one only."""

PROM_PREFIX = "gpuscale_"
"""Prefix of every Prometheus series the agent exposes."""

# Dimension names. AutoScalingGroupName matches AWS's own EC2 metrics, so dashboards can mix the two.
DIM_ASG = "AutoScalingGroupName"
DIM_INSTANCE_ID = "InstanceId"
DIM_INSTANCE_TYPE = "InstanceType"
DIM_GPU_INDEX = "GpuIndex"
DIM_GPU_UUID = "GpuUuid"
DIM_MIG_INSTANCE = "MigInstance"

PROM_LABELS: dict[str, str] = {DIM_GPU_INDEX: "gpu", DIM_GPU_UUID: "uuid", DIM_MIG_INSTANCE: "mig_instance"}
"""Prometheus label for each dimension below the node. The node's own dimensions (group, instance, type) are not
labels: Prometheus attaches them as target labels from service discovery."""

NODE_DIMENSIONS: tuple[str, ...] = (DIM_ASG, DIM_INSTANCE_ID, DIM_INSTANCE_TYPE)
"""Dimensions of a node-level series: which group, which instance, which instance type."""
GPU_DIMENSIONS: tuple[str, ...] = NODE_DIMENSIONS + (DIM_GPU_INDEX, DIM_GPU_UUID)
"""Dimensions of a per-GPU series: the node's, plus the GPU's index and UUID (the UUID survives re-indexing)."""
MIG_DIMENSIONS: tuple[str, ...] = GPU_DIMENSIONS + (DIM_MIG_INSTANCE,)
"""Dimensions of a per-MIG-instance series."""
GROUP_DIMENSIONS: tuple[str, ...] = (DIM_ASG,)
"""The group roll-up: the same datapoints published again with only the group's name, which is what
scaling policies and group alarms query (CloudWatch cannot aggregate across dimension sets by itself)."""

Scope = Literal["node", "gpu", "mig"]
Kind = Literal["gauge", "counter"]


@dataclass(frozen=True)
class MetricSpec:
    """One series the agent publishes."""

    name: str
    """CloudWatch metric name (PascalCase)."""
    cw_unit: str
    """CloudWatch StandardUnit of the published value."""
    prom_name: str
    """Prometheus series name (snake_case, base-unit suffix, without PROM_PREFIX)."""
    kind: Kind
    """Prometheus type: a gauge, or a counter (monotonic since the GPU's driver load)."""
    help: str
    """What the series measures, with its unit."""
    scope: Scope
    """Which dimension set the series carries: node, gpu or mig."""
    prom_scale: float = 1.0
    """Factor from the CloudWatch value to the Prometheus base unit (percent -> ratio: 0.01)."""
    group_rollup: bool = False
    """Also publish the datapoints under GROUP_DIMENSIONS, for group-wide policies and alarms."""
    cloudwatch: bool = True
    """Published to CloudWatch too; False for a series only Prometheus needs (each CloudWatch series is billed)."""

    @property
    def dimensions(self) -> tuple[str, ...]:
        return {"node": NODE_DIMENSIONS, "gpu": GPU_DIMENSIONS, "mig": MIG_DIMENSIONS}[self.scope]

    @property
    def prom_full_name(self) -> str:
        return PROM_PREFIX + self.prom_name


def _gpu(name, cw_unit, prom_name, help, kind: Kind = "gauge", prom_scale=1.0, group_rollup=False,
         cloudwatch=True) -> MetricSpec:
    return MetricSpec(name, cw_unit, prom_name, kind, help, "gpu", prom_scale, group_rollup, cloudwatch)


def _node(name, cw_unit, prom_name, help, kind: Kind = "gauge", prom_scale=1.0) -> MetricSpec:
    # Node aggregates are what scaling uses, so each is rolled up to the group.
    return MetricSpec(name, cw_unit, prom_name, kind, help, "node", prom_scale, True)


def _mig(name, cw_unit, prom_name, help, prom_scale=1.0) -> MetricSpec:
    return MetricSpec(name, cw_unit, prom_name, "gauge", help, "mig", prom_scale)


# --- Per-GPU readings -------------------------------------------------------------------------------------------
GPU_UTILIZATION = _gpu("GpuUtilization", "Percent", "gpu_utilization_ratio",
                       "Fraction of the sample period in which a kernel ran on the GPU (NVML utilization.gpu).",
                       prom_scale=0.01)
GPU_MEMORY_USED = _gpu("GpuMemoryUsed", "Bytes", "gpu_memory_used_bytes", "Framebuffer memory in use, in bytes.")
GPU_MEMORY_TOTAL = _gpu("GpuMemoryTotal", "Bytes", "gpu_memory_total_bytes", "Framebuffer memory installed, in bytes.")
GPU_MEMORY_UTILIZATION = _gpu("GpuMemoryUtilization", "Percent", "gpu_memory_used_ratio",
                              "Framebuffer memory used over total.", prom_scale=0.01)
GPU_MEMORY_CONTROLLER_UTILIZATION = _gpu(
    "GpuMemoryControllerUtilization", "Percent", "gpu_memory_controller_utilization_ratio",
    "Fraction of the sample period in which device memory was read or written (NVML utilization.memory).",
    prom_scale=0.01)
GPU_POWER = _gpu("GpuPowerUsage", "None", "gpu_power_watts", "Power draw of the board, in watts.")
GPU_ENERGY = _gpu("GpuEnergyConsumption", "None", "gpu_energy_joules_total",
                  "Energy consumed since the driver loaded, in joules.", kind="counter")
GPU_TEMPERATURE = _gpu("GpuTemperature", "None", "gpu_temperature_celsius", "GPU core temperature, in degrees Celsius.")
GPU_SM_CLOCK = _gpu("GpuSmClock", "None", "gpu_sm_clock_hertz", "Streaming multiprocessor clock, in hertz.")
GPU_THERMAL_THROTTLE = _gpu("GpuThermalThrottle", "Count", "gpu_thermal_throttle",
                            "1 while clocks are held down for temperature (software or hardware thermal slowdown), else 0.",
                            group_rollup=True)
GPU_POWER_THROTTLE = _gpu("GpuPowerThrottle", "Count", "gpu_power_throttle",
                          "1 while clocks are held down by the power cap or hardware power brake, else 0.",
                          group_rollup=True)
GPU_ECC_UNCORRECTED = _gpu("GpuEccUncorrectedVolatile", "Count", "gpu_ecc_uncorrected_volatile_errors_total",
                           "Uncorrected ECC errors since the driver loaded (volatile counter).", kind="counter",
                           group_rollup=True)
GPU_XID_ERRORS = _gpu("GpuXidErrors", "Count", "gpu_xid_errors_total",
                      "XID critical error events seen by the agent since it started.", kind="counter",
                      group_rollup=True)
GPU_XID_LAST = _gpu("GpuLastXid", "None", "gpu_last_xid_code",
                    "Code of the last XID critical error seen since the agent started, 0 if none (as dcgm-exporter's "
                    "DCGM_FI_DEV_XID_ERRORS).", cloudwatch=False)
GPU_SM_ACTIVITY = _gpu("GpuSmActivity", "Percent", "gpu_sm_activity_ratio",
                       "GPM: fraction of time streaming multiprocessors had a warp resident (Hopper and newer).",
                       prom_scale=0.01)
GPU_SM_OCCUPANCY = _gpu("GpuSmOccupancy", "Percent", "gpu_sm_occupancy_ratio",
                        "GPM: resident warps over the theoretical maximum, averaged over the SMs (Hopper and newer).",
                        prom_scale=0.01)
GPU_TENSOR_ACTIVITY = _gpu("GpuTensorActivity", "Percent", "gpu_tensor_activity_ratio",
                           "GPM: fraction of time tensor cores were busy (Hopper and newer).", prom_scale=0.01)
GPU_DRAM_BANDWIDTH = _gpu("GpuDramBandwidthUtilization", "Percent", "gpu_dram_bandwidth_utilization_ratio",
                          "GPM: DRAM bandwidth used over peak (Hopper and newer).", prom_scale=0.01)

# --- Per-MIG-instance readings ----------------------------------------------------------------------------------
MIG_MEMORY_USED = _mig("MigMemoryUsed", "Bytes", "mig_memory_used_bytes", "Memory in use by a MIG instance, in bytes.")
MIG_MEMORY_TOTAL = _mig("MigMemoryTotal", "Bytes", "mig_memory_total_bytes", "Memory of a MIG instance, in bytes.")
MIG_SM_ACTIVITY = _mig("MigSmActivity", "Percent", "mig_sm_activity_ratio",
                       "GPM: fraction of time the MIG instance's SMs had a warp resident (Hopper and newer).",
                       prom_scale=0.01)

# --- Node aggregates (what scaling acts on) ---------------------------------------------------------------------
# Utilization for scaling: a GPU's utilization.gpu, or on a MIG-enabled GPU (which has none) its MIG instances'
# GPM SM activity weighted by their SMs, else the whole GPU's GPM SM activity. A GPU with none of these is in
# neither the sum nor the count, so SUM(sum)/SUM(count) over a group is always the mean over the same GPUs.
NODE_GPU_UTILIZATION = _node("NodeGpuUtilization", "Percent", "node_gpu_utilization_ratio",
                             "Mean GPU utilization over the node's GPUs that report one (NodeGpuCount).",
                             prom_scale=0.01)
NODE_GPU_UTILIZATION_SUM = _node("NodeGpuUtilizationSum", "Percent", "node_gpu_utilization_sum_ratio",
                                 "Sum of GPU utilization over the node's GPUs that report one; divided by "
                                 "NodeGpuCount across a group it gives the fleet's mean per-GPU utilization.",
                                 prom_scale=0.01)
NODE_MEMORY_UTILIZATION_MAX = _node("NodeGpuMemoryUtilizationMax", "Percent", "node_gpu_memory_used_max_ratio",
                                    "Highest memory-used ratio among the node's GPUs.", prom_scale=0.01)
NODE_GPU_COUNT = _node("NodeGpuCount", "Count", "node_gpus",
                       "GPUs in NodeGpuUtilizationSum: read successfully, with a utilization NVML offers.")
NODE_GPUS_READ = _node("NodeGpusRead", "Count", "node_gpus_read",
                       "GPUs read successfully in the collection, whether or not they report a utilization.")
AGENT_HEARTBEAT = _node("AgentHeartbeat", "Count", "agent_heartbeat",
                        "1 for each successful collection; a missing heartbeat means the node is blind.")

ALL_METRICS: tuple[MetricSpec, ...] = tuple(v for v in list(globals().values()) if isinstance(v, MetricSpec))
"""Every series, in declaration order."""

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in ALL_METRICS}

SCALING_UTILIZATION_SOURCES: tuple[MetricSpec, ...] = (GPU_UTILIZATION, MIG_SM_ACTIVITY, GPU_SM_ACTIVITY)
"""Where a GPU's utilization for NodeGpuUtilizationSum comes from, first offered first."""
