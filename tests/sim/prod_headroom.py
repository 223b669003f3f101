"""prod with issue 15's headroom on chat's group: the stack the issue's goal is measured on.

The shipped prod keeps no warm node (issue 14's cost targets on the shipped stacks: a warm node is cost the ideal
never pays); this copy adds what turning the lever on takes: one warm l4-ondemand node (pre-pulling chat's image by
default, KServe's Hugging Face runtime: the pinned chart's runtime images are among the stack's facts), room for it
(maxSize 11), and chat's scale-up window at 0 with a 10 s GPU metric period (the 270 s window waits for cold nodes
that a warm one replaces).
"""

from __future__ import annotations

import copy
from pathlib import Path

from gpuscale.config import StackConfig, load_stack_config, read_stack_values, stack_file_path
from gpuscale.config.pod_autoscalers import PRESETS
from gpuscale.instance_types import RecordedInstanceTypes

ROOT = Path(__file__).resolve().parents[2]


def prod_with_chat_headroom() -> StackConfig:
    return load_stack_config(chat_headroom_values(), "prod", RecordedInstanceTypes())


def chat_headroom_values() -> dict:
    """prod's stack values with the lever on (this module's docstring)."""
    values = copy.deepcopy(read_stack_values(stack_file_path(ROOT, "prod")))
    for group in values["gpuscale:nodeGroups"]:
        if group["name"] == "l4-ondemand":
            group["maxSize"] = 11
    chat = next(s for s in values["gpuscale:services"] if s["name"] == "chat")
    keda = chat["scaling"]["keda"]
    keda["gpuUtilization"]["periodSeconds"] = 10
    keda["behavior"]["scaleUp"]["stabilizationWindowSeconds"] = 0
    values["gpuscale:headroom"] = [{"nodeGroup": "l4-ondemand", "nodes": 1}]
    return values


def knative_chat_values() -> dict:
    """The same, with chat in KServe's Knative mode, scaled by the KPA (preset coreweave-kpa, with the cluster-wide
    values it needs), while batch stays in Standard mode on KEDA: the pod autoscaler that reacts within the goal's
    10 s (Knative's 2 s tick on the activator's and queue-proxies' own request counts, against the HPA's 15 s sync
    after the agent's flush and the metric's period)."""
    values = chat_headroom_values()
    chat = next(s for s in values["gpuscale:services"] if s["name"] == "chat")
    chat["scaling"] = {"preset": "coreweave-kpa"}
    values["gpuscale:kubernetes"]["serving"]["knative"] = dict(PRESETS["coreweave-kpa"].knative)
    return values


def prod_with_knative_chat() -> StackConfig:
    return load_stack_config(knative_chat_values(), "prod", RecordedInstanceTypes())
