"""autoScalingGroups[i].startup: the user's container or user data, refused with the config's own key names."""

from __future__ import annotations

import copy

import pytest
from test_config_validation import CATALOG, ROOT, base

from gpuscale.config import ConfigError, load_stack_config, load_stack_file

CONTAINER = {"image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen3-8B-AWQ"], "ports": [8000],
             "ipcHost": True}


def load(startup):
    cfg = copy.deepcopy(base())
    cfg["gpuscale:autoScalingGroups"][0]["startup"] = startup
    return load_stack_config(cfg, "test", CATALOG)


def test_startup_reads_into_the_components_args():
    group = load({"container": CONTAINER, "userData": "#!/bin/bash\necho ready\n"}).auto_scaling_groups[0]
    assert group.startup == {"container": {"image": "vllm/vllm-openai:v0.11.0", "args": ["--model",
                                                                                        "Qwen/Qwen3-8B-AWQ"],
                                           "ports": [8000], "ipc_host": True},
                             "user_data": "#!/bin/bash\necho ready\n"}


@pytest.mark.parametrize("startup, key, allowed", [
    ({"container": {**CONTAINER, "image": "vllm/vllm-openai"}}, "container.image", "tag or digest"),
    ({"container": {**CONTAINER, "ports": [9410]}}, "container.ports[0]", "not already published"),
    ({"container": {**CONTAINER, "ipcHost": "yes"}}, "container.ipcHost", "true or false"),
    ({"container": {**CONTAINER, "imagePullPolicy": "Always"}}, "container.imagePullPolicy", "keys image"),
    ({"userData": "echo hi"}, "userData", '"#!"'),
    ({"container": {**CONTAINER, "env": {"HF_HOME": 3}}}, "container.env.HF_HOME", "string value"),
])
def test_bad_startup_is_refused_naming_the_config_key(startup, key, allowed):
    with pytest.raises(ConfigError) as err:
        load(startup)
    assert err.value.key == f"gpuscale:autoScalingGroups[0].startup.{key}", str(err.value)
    assert allowed in str(err.value)


@pytest.mark.parametrize("stack, group", [("dev", "infer"), ("prod", "infer-l40s")])
def test_shipped_stacks_run_a_pinned_vllm_server_for_their_workload(stack, group):
    g = next(a for a in load_stack_file(ROOT, stack).auto_scaling_groups if a.name == group)
    container = g.startup["container"]
    assert container["image"].startswith("vllm/vllm-openai:v")
    args = container["args"]
    assert args[args.index("--max-num-seqs") + 1] == str(g.workload.concurrency_per_replica), \
        "the server batches as many sequences as the workload model assumes"
