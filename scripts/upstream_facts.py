#!/usr/bin/env python3
"""Generate the upstream facts the components and their tests rely on, from the upstream repositories' own files at
the versions `components/charts.py` pins. Nothing upstream is copied: only derived facts are stored (value key
paths, free-form value maps, flag defaults, option names, release tags), each file noting its source, tag, commit
and licence.

Usage (each argument a git clone, bare or not, of the named repository; tags must be present):

    python scripts/upstream_facts.py --autoscaler /path/to/kubernetes/autoscaler \
        --device-plugin /path/to/NVIDIA/k8s-device-plugin \
        --prometheus-operator /path/to/prometheus-operator/prometheus-operator \
        --docker-build /path/to/pulumi/pulumi-docker-build

Writes components/upstream/cluster_autoscaler.json, nvidia_device_plugin.json, prometheus_operator.json and
docker_build.json (only those whose clone is given). Run it after changing a pin in components/charts.py;
tests/kubernetes/test_upstream_facts.py fails until the data matches the pins.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from components.charts import (CHARTS, AUTOSCALER_MINORS, DOCKER_BUILD_PROVIDER_VERSION,  # noqa: E402
                               PROMETHEUS_OPERATOR_VERSION)  # noqa: E402  (the pins, read from the repository itself)

OUT = ROOT / "components" / "upstream"

AUTOSCALER_FLAGS = ("scan-interval", "scale-down-unneeded-time", "scale-down-delay-after-add",
                    "scale-down-utilization-threshold", "scale-down-gpu-utilization-threshold",
                    "max-node-provision-time", "balance-similar-node-groups", "skip-nodes-with-local-storage",
                    "expander")
"""The flags whose defaults gpuscale's config repeats (gpuscale/config/kubernetes.py)."""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def licence(repo: Path, tag: str) -> str:
    text = git(repo, "show", f"{tag}:LICENSE")
    if "Apache License" in text and "Version 2.0" in text:
        return "Apache-2.0"
    raise SystemExit(f"{repo}: LICENSE at {tag} is not Apache-2.0; read it and record its licence by hand")


def value_paths(values: object, prefix: str = "") -> dict[str, object]:
    """Every key path of a values mapping ("a.b.c") with its default; lists and scalars are leaves."""
    paths: dict[str, object] = {}
    if isinstance(values, dict):
        for key, value in values.items():
            path = f"{prefix}{key}"
            paths[path] = value if not isinstance(value, dict) or not value else {}
            paths.update(value_paths(value, path + "."))
    return paths


TEMPLATE_WHOLESALE = (
    r"toYaml\s+\(?\s*\.Values\.([A-Za-z0-9_.]+)",            # {{ toYaml .Values.x | nindent 8 }}
    r"range\s+(?:\$\w+\s*,\s*)?\$\w+\s*:=\s*\.Values\.([A-Za-z0-9_.]+)",  # {{ range $k, $v := .Values.x }}
    r"range\s+\.Values\.([A-Za-z0-9_.]+)",
)


def free_form(repo: Path, tag: str, chart_dir: str, paths: dict[str, object]) -> list[str]:
    """Value paths whose content the chart's templates render wholesale (toYaml, range, `with` + toYaml): any key
    beneath them is the user's to choose. Empty default mappings are the chart's documented extension points too."""
    found = {p for p, v in paths.items() if v == {} and not any(q.startswith(p + ".") for q in paths)}
    for name in git(repo, "ls-tree", "-r", "--name-only", tag, f"{chart_dir}/templates").split():
        text = git(repo, "show", f"{tag}:{name}")
        for pattern in TEMPLATE_WHOLESALE:
            found.update(re.findall(pattern, text))
        # {{- with .Values.x }} ... {{- toYaml . | ... }}: the block renders .Values.x whole.
        for match in re.finditer(r"with\s+\.Values\.([A-Za-z0-9_.]+)\s*}}(.*?){{-?\s*end", text, re.S):
            if re.search(r"toYaml\s+\.\s", match.group(2)):
                found.add(match.group(1))
    return sorted(p for p in found if p in paths)


def chart_facts(repo: Path, tag: str, chart_dir: str, source: str) -> dict[str, object]:
    chart = yaml.safe_load(git(repo, "show", f"{tag}:{chart_dir}/Chart.yaml"))
    values = yaml.safe_load(git(repo, "show", f"{tag}:{chart_dir}/values.yaml"))
    paths = value_paths(values)
    return {"source": source, "tag": tag, "commit": git(repo, "rev-list", "-n", "1", tag).strip(),
            "licence": licence(repo, tag), "files": [f"{chart_dir}/Chart.yaml", f"{chart_dir}/values.yaml",
                                                     f"{chart_dir}/templates/"],
            "chart": {"name": chart["name"], "version": str(chart["version"]), "appVersion": str(chart["appVersion"])},
            "valuePaths": sorted(paths), "freeFormValues": free_form(repo, tag, chart_dir, paths)}


def chart_dir_at(repo: Path, tag: str, candidates: tuple[str, ...]) -> str:
    for candidate in candidates:
        if git(repo, "ls-tree", "--name-only", tag, f"{candidate}/Chart.yaml").strip():
            return candidate
    raise SystemExit(f"{repo}: no chart at {tag} in any of {candidates}")


def autoscaler(repo: Path) -> dict[str, object]:
    pin = CHARTS["cluster-autoscaler"]
    tag = f"cluster-autoscaler-chart-{pin.version}"
    chart_dir = chart_dir_at(repo, tag, ("cluster-autoscaler/charts/cluster-autoscaler", "charts/cluster-autoscaler"))
    facts = chart_facts(repo, tag, chart_dir, "https://github.com/kubernetes/autoscaler")
    # The newest patch release of each minor the config allows: the autoscaler's minor must match the cluster's.
    releases: dict[str, tuple[int, str]] = {}
    for t in git(repo, "tag", "--list", "cluster-autoscaler-1.*").split():
        m = re.fullmatch(r"cluster-autoscaler-(1\.\d+)\.(\d+)", t)
        if m and m.group(1) in AUTOSCALER_MINORS and int(m.group(2)) >= releases.get(m.group(1), (-1, ""))[0]:
            releases[m.group(1)] = (int(m.group(2)), t)
    facts["imageTags"] = {minor: f"v{minor}.{patch}" for minor, (patch, _) in sorted(releases.items())}
    # Flag defaults and the per-ASG options, read at the release matching the chart's own image.
    app_tag = f"cluster-autoscaler-{facts['chart']['appVersion']}"
    flags = git(repo, "show", f"{app_tag}:cluster-autoscaler/config/flags/flags.go")
    consts = git(repo, "show", f"{app_tag}:cluster-autoscaler/config/const.go")
    manager = git(repo, "show", f"{app_tag}:cluster-autoscaler/cloudprovider/aws/aws_manager.go")
    facts["flagDefaults"] = {flag: _flag_default(flags, consts, flag) for flag in AUTOSCALER_FLAGS}
    facts["asgOptionKeys"] = [_const(consts, name) for name in
                              re.findall(r"options\[config\.(\w+Key)\]", manager)]
    # The IAM actions upstream documents for auto-discovery ("Full Cluster Autoscaler Features Policy").
    readme = git(repo, "show", f"{app_tag}:cluster-autoscaler/cloudprovider/aws/README.md")
    block = re.search(r"Full Cluster Autoscaler Features Policy.*?```json\n(.*?)```", readme, re.S)
    if not block:
        raise SystemExit("cloudprovider/aws/README.md: no 'Full Cluster Autoscaler Features Policy' JSON block")
    facts["iamAutoDiscoveryActions"] = [sorted(st["Action"]) for st in json.loads(block.group(1))["Statement"]]
    facts["flagsFrom"] = {"tag": app_tag, "files": ["cluster-autoscaler/config/flags/flags.go",
                                                    "cluster-autoscaler/config/const.go",
                                                    "cluster-autoscaler/cloudprovider/aws/aws_manager.go",
                                                    "cluster-autoscaler/cloudprovider/aws/README.md"]}
    return facts


def _const(consts: str, name: str) -> str:
    m = re.search(rf"\b{name}\s*=\s*(.+)", consts)
    if not m:
        raise SystemExit(f"const.go: no constant {name}")
    return m.group(1).strip().strip('"')


def _flag_default(flags: str, consts: str, flag: str) -> str:
    m = re.search(rf'flag\.\w+\(\s*"{re.escape(flag)}"\s*,\s*([^,]+),', flags)
    if not m:
        raise SystemExit(f"flags.go: no flag {flag}")
    value = m.group(1).strip()
    if value.startswith("config."):
        value = _const(consts, value.removeprefix("config."))
    if value.startswith("expander."):
        value = {"expander.LeastWasteExpanderName": "least-waste", "expander.RandomExpanderName": "random"}[value]
    # Go durations as written in the source: 10*time.Minute, 10 * time.Second -> seconds.
    d = re.fullmatch(r"(\d+)\s*\*\s*time\.(Second|Minute|Hour)", value)
    if d:
        value = str(int(d.group(1)) * {"Second": 1, "Minute": 60, "Hour": 3600}[d.group(2)]) + "s"
    return value.strip('"')


def device_plugin(repo: Path) -> dict[str, object]:
    pin = CHARTS["nvidia-device-plugin"]
    tag = f"v{pin.version}"
    chart_dir = chart_dir_at(repo, tag, ("deployments/helm/nvidia-device-plugin",))
    facts = chart_facts(repo, tag, chart_dir, "https://github.com/NVIDIA/k8s-device-plugin")
    # The plugin's config file schema (api/config/v1): the keys the time-slicing config we write may use.
    spec = git(repo, "show", f"{tag}:api/config/v1/config.go") + git(repo, "show", f"{tag}:api/config/v1/sharing.go") \
        + git(repo, "show", f"{tag}:api/config/v1/replicas.go")
    facts["configJsonKeys"] = sorted(set(re.findall(r'json:"([A-Za-z]+)[,"]', spec)))
    facts["configFiles"] = ["api/config/v1/config.go", "api/config/v1/sharing.go", "api/config/v1/replicas.go"]
    return facts


SCHEMA_FACT_KEYS = ("type", "properties", "items", "required", "enum", "additionalProperties", "pattern", "format",
                    "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "anyOf",
                    "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
"""What a structural CRD schema says about a field that an object's validity depends on. Descriptions, defaults
and list/map merge hints are left out: the facts are what is checked, not upstream's documentation."""


def schema_facts(schema: object) -> object:
    """A CRD's openAPIV3Schema reduced to SCHEMA_FACT_KEYS at every level (field names, types, enums, required)."""
    if isinstance(schema, list):
        return [schema_facts(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    facts: dict[str, object] = {}
    for key in SCHEMA_FACT_KEYS:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties":
            facts[key] = {name: schema_facts(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf") or (key == "additionalProperties" and isinstance(value, dict)):
            facts[key] = schema_facts(value)
        else:
            facts[key] = value
    return facts


def prometheus_operator(repo: Path) -> dict[str, object]:
    """The ServiceMonitor CRD's schema facts at the pinned release (its generated CRD, as the operator installs it)."""
    tag = PROMETHEUS_OPERATOR_VERSION
    path = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
    crd = yaml.safe_load(git(repo, "show", f"{tag}:{path}"))
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if "v1" not in versions:
        raise SystemExit(f"{path} at {tag}: no v1 version (found {sorted(versions)})")
    return {"source": "https://github.com/prometheus-operator/prometheus-operator", "tag": tag,
            "commit": git(repo, "rev-list", "-n", "1", tag).strip(), "licence": licence(repo, tag), "files": [path],
            "serviceMonitor": {"group": crd["spec"]["group"], "version": "v1", "kind": crd["spec"]["names"]["kind"],
                               "served": versions["v1"]["served"],
                               "schema": schema_facts(versions["v1"]["schema"]["openAPIV3Schema"])}}


def docker_build(repo: Path) -> dict[str, object]:
    """The `Image` resource's input names (required ones too) and the nested types and enums they reference, from
    the provider's Pulumi schema at the pinned release: what a program may pass, by the names the engine receives."""
    tag = f"v{DOCKER_BUILD_PROVIDER_VERSION}"
    path = "provider/cmd/pulumi-resource-docker-build/schema.json"
    schema = json.loads(git(repo, "show", f"{tag}:{path}"))
    image = schema["resources"]["docker-build:index:Image"]
    types: dict[str, object] = {}

    def refs(prop: dict) -> list[str]:
        """The schema types a property refers to, itself or through its items or map values."""
        found = [prop["$ref"].removeprefix("#/types/")] if str(prop.get("$ref", "")).startswith("#/types/") else []
        for key in ("items", "additionalProperties"):
            if isinstance(prop.get(key), dict):
                found += refs(prop[key])
        return found

    pending = [r for prop in image["inputProperties"].values() for r in refs(prop)]
    while pending:
        name = pending.pop()
        if name in types:
            continue
        t = schema["types"][name]
        if "enum" in t:
            types[name] = {"enum": sorted(e["value"] for e in t["enum"])}
        else:
            props = t.get("properties", {})
            types[name] = {"properties": {k: refs(v) for k, v in sorted(props.items())},
                           "required": sorted(t.get("required", []))}
            pending += [r for v in props.values() for r in refs(v)]
    return {"source": "https://github.com/pulumi/pulumi-docker-build", "tag": tag,
            "commit": git(repo, "rev-list", "-n", "1", tag).strip(), "licence": licence(repo, tag), "files": [path],
            "image": {"inputs": {k: refs(v) for k, v in sorted(image["inputProperties"].items())},
                      "required": sorted(image.get("requiredInputs", []))},
            "types": dict(sorted(types.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--autoscaler", type=Path, help="a git clone of kubernetes/autoscaler")
    parser.add_argument("--device-plugin", type=Path, help="a git clone of NVIDIA/k8s-device-plugin")
    parser.add_argument("--prometheus-operator", type=Path,
                        help="a git clone of prometheus-operator/prometheus-operator")
    parser.add_argument("--docker-build", type=Path, help="a git clone of pulumi/pulumi-docker-build")
    args = parser.parse_args()
    jobs = [(name, make, repo) for name, make, repo in (
        ("cluster_autoscaler", autoscaler, args.autoscaler),
        ("nvidia_device_plugin", device_plugin, args.device_plugin),
        ("prometheus_operator", prometheus_operator, args.prometheus_operator),
        ("docker_build", docker_build, args.docker_build)) if repo is not None]
    if not jobs:
        parser.error("give at least one clone: --autoscaler, --device-plugin, --prometheus-operator, --docker-build")
    OUT.mkdir(exist_ok=True)
    for name, make, repo in jobs:
        facts = {"generatedBy": "scripts/upstream_facts.py", **make(repo)}
        (OUT / f"{name}.json").write_text(json.dumps(facts, indent=1, sort_keys=False) + "\n")
        print(f"wrote {OUT / f'{name}.json'} from {facts['source']} at {facts['tag']}")


if __name__ == "__main__":
    main()
