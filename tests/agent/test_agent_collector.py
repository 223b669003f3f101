"""The collector against the fake NVML: fields, the three error tiers, XID, GPM, MIG, node aggregates."""

from __future__ import annotations

import pynvml
import pytest

from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.collector import Collector, NvmlUnavailable
from gpu_metrics_agent.fake_nvml import FakeGpu, FakeMig, FakeNvml
from gpu_metrics_agent.health import Health


def _collector(nvml) -> tuple[Collector, Health]:
    health = Health(sample_interval=1.0, stale_intervals=5)
    return Collector(nvml, health), health


def _values(snapshot, index: int = 0):
    return next(g for g in snapshot.gpus if g.index == index).values


def test_fields_are_converted_to_the_catalogue_units():
    gpu = FakeGpu(uuid="GPU-a", utilization_gpu=87, utilization_memory=41, memory_total=80 * 2**30,
                  memory_used=20 * 2**30, power_mw=512_345, energy_mj=7_200_000, temperature_c=61,
                  sm_clock_mhz=1755, ecc_uncorrected=2,
                  clock_reasons=pynvml.nvmlClocksEventReasonHwThermalSlowdown | pynvml.nvmlClocksEventReasonGpuIdle)
    collector, _ = _collector(FakeNvml([gpu]))
    values = _values(collector.collect())
    assert values[cat.GPU_UTILIZATION.name] == 87.0
    assert values[cat.GPU_MEMORY_CONTROLLER_UTILIZATION.name] == 41.0
    assert values[cat.GPU_MEMORY_USED.name] == 20 * 2**30 and values[cat.GPU_MEMORY_TOTAL.name] == 80 * 2**30
    assert values[cat.GPU_MEMORY_UTILIZATION.name] == 25.0
    assert values[cat.GPU_POWER.name] == pytest.approx(512.345)
    assert values[cat.GPU_ENERGY.name] == 7200.0
    assert values[cat.GPU_TEMPERATURE.name] == 61.0
    assert values[cat.GPU_SM_CLOCK.name] == 1755e6
    assert values[cat.GPU_THERMAL_THROTTLE.name] == 1.0 and values[cat.GPU_POWER_THROTTLE.name] == 0.0
    assert values[cat.GPU_ECC_UNCORRECTED.name] == 2.0
    assert values[cat.GPU_XID_ERRORS.name] == 0.0


def test_power_cap_counts_as_power_throttle_and_idle_as_neither():
    nvml = FakeNvml(1)
    nvml.gpus[0].clock_reasons = pynvml.nvmlClocksEventReasonSwPowerCap
    collector, _ = _collector(nvml)
    values = _values(collector.collect())
    assert (values[cat.GPU_THERMAL_THROTTLE.name], values[cat.GPU_POWER_THROTTLE.name]) == (0.0, 1.0)
    nvml.gpus[0].clock_reasons = pynvml.nvmlClocksEventReasonGpuIdle
    values = _values(collector.collect())
    assert (values[cat.GPU_THERMAL_THROTTLE.name], values[cat.GPU_POWER_THROTTLE.name]) == (0.0, 0.0)


def test_an_unsupported_field_is_absent_not_zero_and_is_asked_once():
    nvml = FakeNvml(1)
    nvml.gpus[0].unsupported = {"nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetPowerUsage"}
    calls = []
    real = nvml.nvmlDeviceGetTotalEccErrors
    nvml.nvmlDeviceGetTotalEccErrors = lambda *a: calls.append(a) or real(*a)
    collector, health = _collector(nvml)
    for _ in range(3):
        snapshot = collector.collect()
    values, gpu = _values(snapshot), snapshot.gpus[0]
    assert cat.GPU_ECC_UNCORRECTED.name not in values and cat.GPU_POWER.name not in values
    assert {"ecc", "power"} <= set(gpu.absent)
    assert len(calls) == 1, "a field found unsupported is not asked again in the same NVML session"
    assert values[cat.GPU_UTILIZATION.name] == nvml.gpus[0].utilization_gpu
    assert health.failures == {"device": 0, "lifecycle": 0} and health.absent_fields == len(gpu.absent)


def test_a_failing_device_is_skipped_and_counted_while_the_others_report():
    nvml = FakeNvml(3)
    nvml.gpus[1].error = pynvml.NVML_ERROR_UNKNOWN
    collector, health = _collector(nvml)
    snapshot = collector.collect()
    assert [g.index for g in snapshot.gpus] == [0, 2] and snapshot.skipped == (1,)
    assert snapshot.node[cat.NODE_GPU_COUNT.name] == 2.0
    assert health.failures == {"device": 1, "lifecycle": 0}
    nvml.gpus[1].error = None
    assert [g.index for g in collector.collect().gpus] == [0, 1, 2]
    assert health.nvml_inits == 1


def test_a_lost_gpu_fails_the_cycle_then_is_skipped_after_reinitialisation():
    nvml = FakeNvml(3)
    collector, health = _collector(nvml)
    assert collector.collect() is not None
    nvml.lose_gpu(2)
    assert collector.collect() is None
    assert health.failures["lifecycle"] == 1 and "GpuIsLost" in health.last_error and not health.last_ok
    snapshot = collector.collect()
    assert health.nvml_inits == 2
    assert [g.index for g in snapshot.gpus] == [0, 1] and snapshot.skipped == (2,)
    assert collector.collect().skipped == (2,)
    assert health.failures["lifecycle"] == 1, "a confirmed-lost GPU does not fail later cycles"


def test_init_failing_then_recovering():
    nvml = FakeNvml(2)
    nvml.fail_init(times=2, code=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    collector, health = _collector(nvml)
    assert collector.collect() is None and collector.collect() is None
    assert health.failures["lifecycle"] == 2 and "DriverNotLoaded" in health.last_error
    snapshot = collector.collect()
    assert len(snapshot.gpus) == 2 and health.nvml_inits == 1 and nvml.init_calls == 3


def test_uninitialized_mid_run_reinitialises_and_carries_xid_totals_over():
    nvml = FakeNvml(1)
    collector, health = _collector(nvml)
    nvml.inject_xid(0, 79)
    nvml.inject_xid(0, 48)
    assert _values(collector.collect())[cat.GPU_XID_ERRORS.name] == 2.0
    nvml.nvmlShutdown()  # someone else shut the library down: every call now says Uninitialized
    assert collector.collect() is None
    nvml.inject_xid(0, 79)
    assert _values(collector.collect())[cat.GPU_XID_ERRORS.name] == 3.0
    assert health.nvml_inits == 2
    assert nvml.longest_event_wait_ms == 0, "XID events are polled, never waited for"


def test_open_reports_a_missing_driver():
    nvml = FakeNvml(1)
    nvml.driver_missing = True
    collector, _ = _collector(nvml)
    with pytest.raises(NvmlUnavailable, match="LibraryNotFound"):
        collector.open()


def test_gpm_needs_two_samples_and_is_absent_on_gpus_without_it():
    nvml = FakeNvml([FakeGpu.synthetic(0), FakeGpu(uuid="GPU-a10g")])
    collector, _ = _collector(nvml)
    first = collector.collect()
    assert cat.GPU_SM_ACTIVITY.name not in _values(first, 0), "the first sample only primes GPM"
    second = collector.collect()
    gpm = nvml.gpus[0].gpm
    assert _values(second, 0)[cat.GPU_SM_ACTIVITY.name] == gpm[pynvml.NVML_GPM_METRIC_SM_UTIL]
    assert _values(second, 0)[cat.GPU_SM_OCCUPANCY.name] == gpm[pynvml.NVML_GPM_METRIC_SM_OCCUPANCY]
    assert _values(second, 0)[cat.GPU_TENSOR_ACTIVITY.name] == gpm[pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL]
    assert _values(second, 0)[cat.GPU_DRAM_BANDWIDTH.name] == gpm[pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL]
    nvml.gpus[0].gpm[pynvml.NVML_GPM_METRIC_SM_UTIL] = 12.5
    assert _values(collector.collect(), 0)[cat.GPU_SM_ACTIVITY.name] == 12.5
    assert "gpm" in second.gpus[1].absent and cat.GPU_SM_ACTIVITY.name not in _values(second, 1)


def test_mig_instances_are_reported_and_whole_gpu_utilization_is_absent():
    gpu = FakeGpu(uuid="GPU-mig", mig=[FakeMig(1, 0, 20 * 2**30, 5 * 2**30), FakeMig(1, 1, 20 * 2**30, 5 * 2**30),
                                       FakeMig(2, 0, 40 * 2**30, 1 * 2**30, profile="3g.40gb")])
    collector, _ = _collector(FakeNvml([gpu, FakeGpu(uuid="GPU-plain", utilization_gpu=50)]))
    snapshot = collector.collect()
    mig_gpu = snapshot.gpus[0]
    assert [(m.instance, m.profile, m.values[cat.MIG_MEMORY_USED.name], m.values[cat.MIG_MEMORY_TOTAL.name])
            for m in mig_gpu.migs] == [("1", "1g.10gb", 5 * 2**30, 20 * 2**30), ("2", "3g.40gb", 2**30, 40 * 2**30)]
    assert cat.GPU_UTILIZATION.name not in mig_gpu.values and "utilization" in mig_gpu.absent
    # No GPM here (an A100-like GPU): the MIG GPU has no utilization at all, so it is in neither sum nor count.
    assert snapshot.node[cat.NODE_GPU_UTILIZATION.name] == 50.0, "the mean is over GPUs that report utilization"
    assert snapshot.node[cat.NODE_GPU_COUNT.name] == 1.0 and snapshot.node[cat.NODE_GPUS_READ.name] == 2.0


def _hopper_mig(uuid: str, sm_activity: list[float | None], parent_sm: float | None) -> FakeGpu:
    gpm = None if parent_sm is None else {pynvml.NVML_GPM_METRIC_SM_UTIL: parent_sm}
    migs = [FakeMig(i + 1, 0, 10 * 2**30, 0, sms=sms,
                    gpm=None if activity is None else {pynvml.NVML_GPM_METRIC_SM_UTIL: activity})
            for i, (activity, sms) in enumerate(zip(sm_activity, (16, 48, 66)))]
    return FakeGpu(uuid=uuid, gpm=gpm, mig=migs)


def test_a_mig_gpu_counts_in_the_fleet_utilization_with_its_instances_or_its_parents_reading():
    # Two plain GPUs at 60 and 68 % average 64 %; the MIG GPUs used to count in NodeGpuCount with nothing in the
    # sum, so SUM/COUNT read 0.32 for 0.64. Now each is in both, by its instances' SM activity weighted by SMs,
    # or by the parent GPU's own GPM reading where the driver has none per instance.
    nvml = FakeNvml([FakeGpu(uuid="GPU-a", utilization_gpu=60), FakeGpu(uuid="GPU-b", utilization_gpu=68),
                     _hopper_mig("GPU-mig", [10.0, 50.0, 90.0], parent_sm=33.0),
                     _hopper_mig("GPU-mig-old-driver", [None, None, None], parent_sm=40.0)])
    collector, _ = _collector(nvml)
    first = collector.collect()
    assert first.node[cat.NODE_GPU_COUNT.name] == 2.0, "GPM primes first: the MIG GPUs are in neither sum nor count"
    assert first.node[cat.NODE_GPU_UTILIZATION_SUM.name] == 128.0
    node = collector.collect().node
    per_instance = (10.0 * 16 + 50.0 * 48 + 90.0 * 66) / (16 + 48 + 66)
    assert node[cat.NODE_GPU_COUNT.name] == 4.0 and node[cat.NODE_GPUS_READ.name] == 4.0
    assert node[cat.NODE_GPU_UTILIZATION_SUM.name] == pytest.approx(60 + 68 + per_instance + 40.0)
    assert node[cat.NODE_GPU_UTILIZATION.name] == pytest.approx((60 + 68 + per_instance + 40.0) / 4)
    migs = collector.collect().gpus[2].migs
    assert [m.values[cat.MIG_SM_ACTIVITY.name] for m in migs] == [10.0, 50.0, 90.0]


def test_node_aggregates():
    nvml = FakeNvml(3)
    for gpu, util, used in zip(nvml.gpus, (10, 20, 60), (1, 2, 3)):
        gpu.utilization_gpu, gpu.memory_used, gpu.memory_total = util, used, 4
    collector, _ = _collector(nvml)
    node = collector.collect().node
    assert node == {cat.NODE_GPU_COUNT.name: 3.0, cat.NODE_GPUS_READ.name: 3.0, cat.AGENT_HEARTBEAT.name: 1.0,
                    cat.NODE_GPU_UTILIZATION_SUM.name: 90.0, cat.NODE_GPU_UTILIZATION.name: 30.0,
                    cat.NODE_MEMORY_UTILIZATION_MAX.name: 75.0}


def test_mig_is_not_an_absent_field_on_a_gpu_that_cannot_do_mig():
    nvml = FakeNvml([FakeGpu(uuid="GPU-plain"), FakeGpu(uuid="GPU-capable", mig=[])])
    nvml.gpus[0].unsupported = {"nvmlDeviceGetPowerUsage"}
    collector, health = _collector(nvml)
    snapshot = collector.collect()
    # Fake GPUs built by hand have no GPM; the first offers no power reading either. Neither can do MIG, or has.
    assert set(snapshot.gpus[0].absent) == {"power", "gpm"} and set(snapshot.gpus[1].absent) == {"gpm"}
    assert health.absent_fields == 3


def test_a_lost_gpu_is_found_again_once_it_is_back_and_its_state_is_shown():
    clock = [0.0]
    nvml = FakeNvml(2)
    health = Health(sample_interval=1.0, stale_intervals=5)
    collector = Collector(nvml, health, clock=lambda: clock[0], reprobe_interval=30.0)
    collector.collect()
    nvml.lose_gpu(1)
    assert collector.collect() is None
    snapshot = collector.collect()
    assert [(s.index, s.uuid, s.state) for s in snapshot.states] == [(0, nvml.gpus[0].uuid, "ok"),
                                                                     (1, nvml.gpus[1].uuid, "lost")]
    nvml.gpus[1].lost = False  # the GPU was reset and is back on the bus
    clock[0] = 29.0
    assert collector.collect().skipped == (1,), "not looked for again before the re-probe interval"
    clock[0] = 31.0
    snapshot = collector.collect()
    assert [g.index for g in snapshot.gpus] == [0, 1] and snapshot.skipped == ()
    assert [s.state for s in snapshot.states] == ["ok", "ok"]
    assert health.failures["lifecycle"] == 1, "re-probing is no failed cycle"


def test_an_older_driver_falls_back_to_the_deprecated_functions():
    nvml = FakeNvml(1, missing_functions={"nvmlDeviceGetTemperatureV", "nvmlDeviceGetCurrentClocksEventReasons",
                                          "nvmlGpmQueryDeviceSupport"})
    nvml.gpus[0].clock_reasons = pynvml.nvmlClocksThrottleReasonSwThermalSlowdown
    collector, health = _collector(nvml)
    collector.collect()
    values = _values(collector.collect())
    assert values[cat.GPU_TEMPERATURE.name] == nvml.gpus[0].temperature_c
    assert values[cat.GPU_THERMAL_THROTTLE.name] == 1.0
    assert cat.GPU_SM_ACTIVITY.name not in values, "no GPM on a driver without it, and no failure either"
    assert health.failures == {"device": 0, "lifecycle": 0}


def test_snapshots_are_immutable():
    collector, _ = _collector(FakeNvml(1))
    snapshot = collector.collect()
    with pytest.raises(TypeError):
        snapshot.gpus[0].values[cat.GPU_UTILIZATION.name] = 0.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        snapshot.timestamp = 0.0  # type: ignore[misc]
