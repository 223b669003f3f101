"""The serving runtimes the pinned KServe chart installs, and which of them KServe picks for a model: from the facts
scripts/upstream_facts.py records from charts/kserve-resources at the pinned tag (components/upstream/kserve.json,
`clusterServingRuntimes`: each runtime's image, model formats, protocols). With them a service whose model names a
format, and no container, has a known serving image: GPU headroom pre-pulls it (gpuscale/config/headroom.py)."""

from functools import cache
from typing import Any

from .charts import upstream_facts

DEFAULT_PROTOCOL = "v1"
"""The protocol of a model that names none and whose format KServe's defaulter leaves alone (ModelSpec.GetProtocol,
pkg/apis/serving/v1beta1/predictor_model.go at v0.16.0); gpuscale's InferenceServices name none."""
DEFAULTED_PROTOCOLS = {"triton": "v2"}
"""The protocol KServe's defaulting webhook gives a `predictor.model` that names none, by model format, before it
picks a runtime: setPredictorModelDefaults (pkg/apis/serving/v1beta1/inference_service_defaults.go at v0.16.0) sets
v2 where `modelFormat.name == constants.SupportedModelTriton` ("triton"), and for no other format of predictor.model
(its v2 for onnx and huggingface belongs to the predictor.onnx and predictor.huggingface fields, which gpuscale does
not write; SetRuntimeDefaults' v2 for MLServer and Triton comes after a runtime is chosen)."""


def model_protocol(model_format: str) -> str:
    """The protocol KServe selects a runtime by for a model of `model_format` that names none."""
    return DEFAULTED_PROTOCOLS.get(model_format, DEFAULT_PROTOCOL)


@cache
def chart_runtimes() -> dict[str, dict[str, Any]]:
    """The ClusterServingRuntimes of the pinned KServe chart by name (the facts, read once)."""
    return upstream_facts("kserve")["clusterServingRuntimes"]


def selected_runtime(model_format: str, runtime: str | None = None) -> str | None:
    """The chart runtime serving a model of `model_format` in gpuscale's InferenceService (one model, one node, the
    protocol KServe's defaulter gives the format: `model_protocol`), or None when the facts cannot say which.

    A named `runtime` serves the model if it is one of the chart's and declares the format (autoSelect or not, as
    KServe's RuntimeSupportsModel counts a named runtime's formats); any other name is a runtime the stack does not
    install, whose image it does not know. Without a name, KServe's GetSupportingRuntimes keeps the enabled,
    single-model, single-node runtimes that declare the format with autoSelect and support the protocol, and takes
    the highest priority (one with a priority before one without); a tie at the top is decided by the runtimes'
    creation times, which a plan cannot know, so it is None too, as is a format no runtime serves."""
    runtimes = chart_runtimes()
    protocol = model_protocol(model_format)
    if runtime is not None:
        return runtime if model_format in runtimes.get(runtime, {}).get("modelFormats", {}) else None
    candidates = {name: rt["modelFormats"][model_format]["priority"] for name, rt in runtimes.items()
                  if rt["modelFormats"].get(model_format, {}).get("autoSelect") and not rt["disabled"]
                  and not rt["multiModel"] and not rt["multiNode"]
                  and (not rt["protocolVersions"] or protocol in rt["protocolVersions"])}
    if not candidates:
        return None
    rank = {name: (priority is not None, priority or 0) for name, priority in candidates.items()}
    best = max(rank.values())
    chosen = [name for name, r in rank.items() if r == best]
    return chosen[0] if len(chosen) == 1 else None


def runtime_image(model_format: str, runtime: str | None = None) -> str | None:
    """The serving image of the runtime `selected_runtime` picks (e.g. kserve/huggingfaceserver:v0.16.0 for
    huggingface), or None where that is unknown."""
    chosen = selected_runtime(model_format, runtime)
    return None if chosen is None else chart_runtimes()[chosen]["image"]
