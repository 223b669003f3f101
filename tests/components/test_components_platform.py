"""GpuPlatform: the whole stack as one component, fed by a program of its own (its own config namespace), and the
repository's __main__.py as a thin reader around it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from components_harness import Harness, stack_values

from gpuscale.components.platform import GpuPlatform
from gpuscale.config import ConfigError, StackConfig, load_stack_config
from gpuscale.config.reader import ConfigErrors
from gpuscale.instance_types import RecordedInstanceTypes

MINIMAL_VALUES = {
    "aws:region": "us-west-2",
    "gpuscale:cluster": {"mode": "existing", "name": "shared", "kubernetesVersion": "1.33",
                         "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]},
    "gpuscale:nodeGroups": [{"name": "l4", "instanceTypes": ["g6.xlarge"], "minSize": 0, "maxSize": 2}],
}


def minimal_config() -> StackConfig:
    """The smallest stack config a platform accepts: an existing cluster and one GPU node group."""
    return load_stack_config(MINIMAL_VALUES, "test", RecordedInstanceTypes())


def in_namespace(values: dict[str, Any], namespace: str) -> dict[str, Any]:
    """`values` as a program whose config namespace is `namespace` holds them."""
    return {(f"{namespace}:{k.partition(':')[2]}" if k.startswith("gpuscale:") else k): v for k, v in values.items()}


def test_a_program_of_its_own_builds_what_the_repository_program_builds(stack_runs):
    values = {**in_namespace(stack_values("dev"), "platform"), "myapp:team": "ml-serving"}
    config = load_stack_config(values, "dev", RecordedInstanceTypes(), namespace="platform")
    assert config.namespace == "platform"
    assert replace(config, namespace="gpuscale") == load_stack_config(stack_values("dev"), "dev",
                                                                       RecordedInstanceTypes()), "the same stack"

    harness = Harness(stack="dev")
    platform = harness.run(lambda: GpuPlatform("gpuscale", {"config": config}))
    repo_harness, outputs = stack_runs["dev"]
    mine = sorted((r.type, r.name) for r in harness.resources)
    theirs = sorted((r.type, r.name) for r in repo_harness.resources)
    assert mine == theirs, "__main__.py is a thin reader around GpuPlatform"
    assert harness.value(platform.cluster_name) == outputs["clusterName"]
    assert set(harness.value(platform.node_groups)) == set(outputs["nodeGroups"])


def test_every_resource_is_the_platforms_and_each_child_keeps_its_old_place(stack_runs):
    harness, _ = stack_runs["dev"]
    (stack,) = [r for r in harness.resources if r.type == "pulumi:pulumi:Stack"]
    (platform,) = [r for r in harness.resources if r.type == "gpuscale:index:GpuPlatform"]
    assert platform.parent == stack.urn
    children = [r for r in harness.resources if r.parent == platform.urn]
    assert {r.type for r in children} >= {"gpuscale:index:EksCluster", "gpuscale:index:GpuNodeGroup",
                                          "pulumi:providers:kubernetes", "gpuscale:index:ModelService"}
    assert all(r.parent for r in harness.resources if r is not stack), "nothing else at the top"
    for child in children:
        # Declared at the program's top level before GpuPlatform existed: aliased there, so an existing stack's
        # resources are kept, not replaced.
        assert {"spec": {"noParent": True}} in child.aliases, (child.name, child.aliases)


def test_errors_name_the_keys_the_program_wrote():
    values = in_namespace(MINIMAL_VALUES, "platform")
    values["platform:nodeGroups"] = [{**values["platform:nodeGroups"][0], "maxSize": -1}]
    values["platform:agnet"] = {}
    with pytest.raises(ConfigErrors) as e:
        load_stack_config(values, "test", RecordedInstanceTypes(), namespace="platform")
    keys = {x.key for x in e.value.errors}
    assert keys == {"platform:nodeGroups[0].maxSize", "platform:agnet"}, keys
    assert "gpuscale:" not in str(e.value), str(e.value)
    assert "platform:agent" in str(e.value), "the near key, in the program's namespace"


def test_only_the_platforms_namespace_and_the_providers_are_read():
    values = {**in_namespace(MINIMAL_VALUES, "platform"), "myapp:anything": {"x": 1}, "gpuscale:agnet": 1}
    config = load_stack_config(values, "test", RecordedInstanceTypes(), namespace="platform")
    assert [g.name for g in config.node_groups] == ["l4"] and config.region == "us-west-2"


@pytest.mark.parametrize("namespace", ["", "a:b", "9lives", None])
def test_a_namespace_that_pulumi_cannot_have_is_refused(namespace):
    with pytest.raises(ConfigError, match="namespace: .* is not allowed; allowed: a config namespace"):
        load_stack_config(MINIMAL_VALUES, "test", RecordedInstanceTypes(), namespace=namespace)


def test_a_config_that_is_not_a_stack_config_is_refused_before_anything_is_declared(harness):
    with pytest.raises(ConfigErrors, match=r'config \(GpuPlatform "p"\): .* allowed: a gpuscale.config.StackConfig'):
        harness.run(lambda: GpuPlatform("p", {"config": dict(MINIMAL_VALUES)}))
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == []


def test_the_minimal_platform_declares_the_existing_clusters_side_only(harness):
    harness.run(lambda: GpuPlatform("p", {"config": minimal_config()}))
    types = {r.type for r in harness.resources}
    assert "gpuscale:index:ExistingCluster" in types and "gpuscale:index:EksCluster" not in types
    assert "gpuscale:index:GpuNodeGroup" in types and "gpuscale:index:ClusterAutoscaler" in types
    assert not types & {"gpuscale:index:GpuAutoScalingGroup", "gpuscale:index:ModelService"}
