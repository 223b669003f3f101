"""A stack with several mistakes is refused once, with every mistake named: key, value and what is allowed."""

from __future__ import annotations

import copy

import pytest
from test_config_validation import CATALOG, base

from gpuscale.config import ConfigError, load_stack_config
from gpuscale.config.reader import ConfigErrors


def load(cfg: dict) -> None:
    load_stack_config(cfg, "test", CATALOG)


def errors_of(cfg: dict) -> ConfigErrors:
    with pytest.raises(ConfigErrors) as caught:
        load(cfg)
    return caught.value


def test_three_mistakes_in_three_places_are_reported_together():
    cfg = copy.deepcopy(base())
    cfg["gpuscale:nodeGroups"][0]["capacityType"] = "PREEMPTIBLE"
    cfg["gpuscale:autoScalingGroups"][0]["maxSise"] = 4
    cfg["gpuscale:agent"] = {"prometheusPort": 80}
    found = errors_of(cfg)
    assert [e.key for e in found.errors] == ["gpuscale:agent.prometheusPort", "gpuscale:nodeGroups[0].capacityType",
                                             "gpuscale:autoScalingGroups[0].maxSise"]
    message = str(found)
    assert message.startswith("3 problems in the config of stack test:")
    for fragment in ("80 is not allowed; allowed: an integer in [1024, 65535]",
                     "'PREEMPTIBLE' is not allowed; allowed: one of ON_DEMAND, SPOT",
                     "maxSise (group \"infer\"): 4 is not allowed; allowed: maxSize (a known key here)"):
        assert fragment in message, f"{fragment!r} missing from {message}"


def test_several_mistakes_in_one_group_are_all_reported():
    """The issue's example: a group whose sizes are crossed and whose instance type has no GPUs."""
    cfg = copy.deepcopy(base())
    cfg["gpuscale:nodeGroups"][0].update(minSize=5, maxSize=3, instanceTypes=["t3.large"], rootVolumeGiB=10)
    found = errors_of(cfg)
    keys = {e.key: e for e in found.errors}
    assert set(keys) == {"gpuscale:nodeGroups[0].minSize", "gpuscale:nodeGroups[0].rootVolumeGiB",
                         "gpuscale:nodeGroups[0].instanceTypes[0]"}, str(found)
    assert "minSize <= maxSize (3)" in keys["gpuscale:nodeGroups[0].minSize"].allowed
    assert "t3.large has no GPUs" in keys["gpuscale:nodeGroups[0].instanceTypes[0]"].allowed
    assert all(e.where == 'group "l4"' for e in found.errors), "each error names its group"


def test_a_group_that_fails_does_not_hide_the_next_groups_mistakes():
    cfg = copy.deepcopy(base())
    cfg["gpuscale:nodeGroups"][0].pop("minSize")  # ends the first group's reading
    cfg["gpuscale:autoScalingGroups"][0]["spotAllocationStrategy"] = "cheapest"
    cfg["gpuscale:kubernetes"] = {"devicePlugin": {"migStrategy": "all"}}
    keys = [e.key for e in errors_of(cfg).errors]
    assert keys == ["gpuscale:nodeGroups[0].minSize", "gpuscale:autoScalingGroups[0].spotAllocationStrategy",
                    "gpuscale:kubernetes.devicePlugin.migStrategy"]


def test_one_mistake_reads_as_before_and_is_still_a_config_error():
    cfg = copy.deepcopy(base())
    cfg["gpuscale:nodeGroups"][0]["maxSize"] = 0
    with pytest.raises(ConfigError) as caught:
        load(cfg)
    assert str(caught.value).startswith("gpuscale:nodeGroups[0].maxSize (group \"l4\"): 0 is not allowed")
    assert "problems" not in str(caught.value)


def test_numbers_stored_as_strings_by_config_set_path_are_numbers():
    """`pulumi config set` writes a top-level value, or one starting with 0, as a string: "5" reads as 5."""
    cfg = copy.deepcopy(base())
    cfg["gpuscale:nodeGroups"][0].update(minSize="0", maxSize="5")
    cfg["gpuscale:agent"] = {"sampleIntervalSeconds": "0.5"}
    loaded = load_stack_config(cfg, "test", CATALOG)
    assert (loaded.node_groups[0].min_size, loaded.node_groups[0].max_size) == (0, 5)
    assert loaded.agent.sample_interval_seconds == 0.5
    cfg["gpuscale:nodeGroups"][0]["maxSize"] = "five"
    with pytest.raises(ConfigError, match=r"maxSize \(group \"l4\"\): 'five' is not allowed; allowed: an integer"):
        load(cfg)
    cfg["gpuscale:nodeGroups"][0]["maxSize"] = "2.5"
    with pytest.raises(ConfigError, match="an integer"):
        load(cfg)
