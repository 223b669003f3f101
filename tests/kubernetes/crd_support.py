"""Custom resources checked against the schema facts of their CRD at a pinned version (components/upstream/*.json,
from scripts/upstream_facts.py), as an API server with strict field validation would check them."""

from __future__ import annotations

from typing import Any

import jsonschema
from kube_support import known

from gpuscale.components.charts import upstream_facts


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The structural schema as JSON Schema: unknown fields refused wherever the CRD lists the fields (the API server
    refuses them under `fieldValidation=Strict`, and would otherwise drop them silently), int-or-string as either."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = strict(value)
        elif key == "anyOf":
            out[key] = [strict(v) for v in value]
        elif key == "x-kubernetes-int-or-string":
            out["type"] = ["integer", "string"]
        elif not key.startswith("x-kubernetes-"):
            out[key] = value
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def validate_against(obj: dict[str, Any], facts: dict[str, Any]) -> None:
    """Raise jsonschema's ValidationError unless `obj` is a valid object of the CRD version the facts describe
    (AssertionError if it is of another kind or version)."""
    assert obj["apiVersion"] == f"{facts['group']}/{facts['version']}" and obj["kind"] == facts["kind"], \
        f"{obj['apiVersion']} {obj['kind']} is not {facts['group']}/{facts['version']} {facts['kind']}"
    assert facts["served"], f"{facts['kind']} {facts['version']} is not served at the pinned version"
    jsonschema.Draft7Validator(strict(facts["schema"])).validate(known(obj))


def crd(kind: str) -> dict[str, Any]:
    """The facts of a custom resource gpuscale declares, at the pinned version of the project that defines it."""
    where = {"ServiceMonitor": ("prometheus_operator", "serviceMonitor"),
             "KnativeServing": ("knative_operator", "knativeServing")}
    if kind in where:
        facts_name, key = where[kind]
        return upstream_facts(facts_name)[key]
    for facts_name in ("kserve", "keda", "vertical_pod_autoscaler"):
        crds = upstream_facts(facts_name)["crds"]
        if kind in crds:
            return crds[kind]
    raise KeyError(kind)


def validate_custom_resource(obj: dict[str, Any]) -> None:
    """Raise jsonschema's ValidationError unless `obj` is valid against its kind's CRD at the pinned version."""
    validate_against(obj, crd(obj["kind"]))


def validate_service_monitor(obj: dict[str, Any]) -> None:
    """Raise jsonschema's ValidationError unless `obj` is a valid ServiceMonitor at the pinned prometheus-operator."""
    validate_against(obj, crd("ServiceMonitor"))
