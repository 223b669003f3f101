"""Custom resources checked against the schema facts of their CRD at a pinned version (components/upstream/*.json,
from scripts/upstream_facts.py), as an API server with strict field validation would check them."""

from __future__ import annotations

from typing import Any

import jsonschema

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


def validate_service_monitor(obj: dict[str, Any]) -> None:
    """Raise jsonschema's ValidationError unless `obj` is a valid ServiceMonitor at the pinned prometheus-operator."""
    facts = upstream_facts("prometheus_operator")["serviceMonitor"]
    assert obj["apiVersion"] == f"{facts['group']}/{facts['version']}" and obj["kind"] == facts["kind"]
    jsonschema.Draft7Validator(strict(facts["schema"])).validate(obj)
