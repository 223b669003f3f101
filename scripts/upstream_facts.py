#!/usr/bin/env python3
"""Generate the upstream facts the components and their tests rely on, from the upstream repositories' own files at
the versions `components/charts.py` pins. Nothing upstream is copied: only derived facts are stored (value key
paths, free-form value maps, flag defaults, option names, release tags), each file noting its source, tag, commit
and licence.

Usage (each argument a git clone, bare or not, of the named repository; tags must be present):

    python scripts/upstream_facts.py --autoscaler /path/to/kubernetes/autoscaler \
        --device-plugin /path/to/NVIDIA/k8s-device-plugin \
        --prometheus-operator /path/to/prometheus-operator/prometheus-operator \
        --docker-build /path/to/pulumi/pulumi-docker-build \
        --kserve /path/to/kserve/kserve --knative-serving /path/to/knative/serving \
        --knative-operator /path/to/knative/operator --keda /path/to/kedacore/keda \
        --keda-charts /path/to/kedacore/charts --cert-manager /path/to/cert-manager/cert-manager \
        --vpa /path/to/kubernetes/autoscaler

Writes components/upstream/cluster_autoscaler.json, nvidia_device_plugin.json, prometheus_operator.json,
docker_build.json, kserve.json, knative_serving.json, knative_operator.json, keda.json, keda_chart.json,
cert_manager.json and vertical_pod_autoscaler.json (only those whose clone is given). Run it after changing a pin in
components/charts.py; tests/kubernetes/test_upstream_facts.py fails until the data matches the pins.
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
                               KNATIVE_SERVING_VERSION, KEDA_VERSION, VPA_VERSION,  # noqa: E402
                               PROMETHEUS_OPERATOR_VERSION)  # noqa: E402  (the pins, read from the repository itself)

OUT = ROOT / "components" / "upstream"

AUTOSCALER_FLAGS = ("scan-interval", "scale-down-unneeded-time", "scale-down-delay-after-add",
                    "scale-down-utilization-threshold", "scale-down-gpu-utilization-threshold",
                    "max-node-provision-time", "balance-similar-node-groups", "skip-nodes-with-local-storage",
                    "expander", "expendable-pods-priority-cutoff")
"""The flags whose defaults gpuscale's config repeats (gpuscale/config/kubernetes.py), and the priority below which
pods trigger no scale-up (GPU headroom's placeholder must stay at or above it: gpuscale/config/headroom.py)."""


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
            "chart": {"name": chart["name"], "version": str(chart["version"]), "appVersion": str(chart.get("appVersion", chart["version"]))},
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


# --- the serving layer (issue 14): KServe, Knative Serving and its operator, KEDA, cert-manager ---------------------
def source_facts(repo: Path, tag: str, source: str, files: list[str]) -> dict[str, object]:
    """What every facts file starts with: where the facts come from, at which tag and commit, under which licence."""
    return {"source": source, "tag": tag, "commit": git(repo, "rev-list", "-n", "1", tag).strip(),
            "licence": licence(repo, tag), "files": files}


def crd_facts(crd: dict, version: str, where: str) -> dict[str, object]:
    """One served version of a CRD: its group, kind, scope and schema facts."""
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in versions:
        raise SystemExit(f"{where}: no version {version} (found {sorted(versions)})")
    return {"group": crd["spec"]["group"], "version": version, "kind": crd["spec"]["names"]["kind"],
            "scope": crd["spec"].get("scope", "Namespaced"), "served": versions[version]["served"],
            "schema": schema_facts(versions[version]["schema"]["openAPIV3Schema"])}


def go_constants(text: str, pattern: str, imported: str = "") -> dict[str, str]:
    """Go string constants `Name = "value"` or `Name = Prefix + "/suffix"` whose name matches `pattern`, with the
    prefix constant resolved from the same text, or from `imported` (the text of the package a `pkg.Name` names)."""
    found: dict[str, str] = {}
    for name, expr in re.findall(rf"\b({pattern})\b\s*(?:\w+\s*)?=\s*([^\n]+)", text):
        parts = []
        for part in expr.split("//")[0].split("+"):
            part = part.strip()
            if part.startswith('"'):
                parts.append(part.strip('"'))
            else:
                source = imported if "." in part else text
                part = part.rsplit(".", 1)[-1]
                m = re.search(rf"\b{re.escape(part)}\s*(?:\w+\s*)?=\s*\"([^\"]*)\"", source)
                if not m:
                    raise SystemExit(f"constant {name}: cannot resolve {part}")
                parts.append(m.group(1))
        found[name] = "".join(parts)
    return found


KSERVE_OMITTED = ("spec.explainer", "spec.transformer", "spec.predictor.workerSpec",
                  *(f"spec.predictor.{framework}" for framework in ("huggingface", "lightgbm", "onnx", "paddle", "pmml",
                                                                    "pytorch", "sklearn", "tensorflow", "triton",
                                                                    "xgboost")))
"""InferenceService fields left out of the facts: gpuscale declares a predictor with `model` (a runtime) or
`containers` only. The explainer, transformer, multi-node worker and per-framework predictor fields each repeat a
whole pod or container schema (the facts would be ten times the size); an object using one fails the check."""


def kserve(repo: Path) -> dict[str, object]:
    """KServe at the pinned chart: the charts' values, the CRDs gpuscale declares (InferenceService) or the model
    cache will (LocalModelCache, LocalModelNodeGroup), the runtimes the chart installs with their images and model
    formats, and the annotation keys and values the controller reads."""
    pin = CHARTS["kserve"]
    tag = pin.version
    crd_dir = "charts/kserve-crd/templates"
    crds = {"InferenceService": ("serving.kserve.io_inferenceservices.yaml", "v1beta1"),
            "LocalModelCache": ("serving.kserve.io_localmodelcaches.yaml", "v1alpha1"),
            "LocalModelNodeGroup": ("serving.kserve.io_localmodelnodegroups.yaml", "v1alpha1")}
    constants = git(repo, "show", f"{tag}:pkg/constants/constants.go")
    s3 = git(repo, "show", f"{tag}:pkg/credentials/s3/s3_secret.go")
    creds = git(repo, "show", f"{tag}:pkg/credentials/service_account_credentials.go")
    facts = source_facts(repo, tag, "https://github.com/kserve/kserve", [
        "charts/kserve-resources/", "charts/kserve-crd/", *(f"{crd_dir}/{f}" for f, _ in crds.values()),
        "pkg/constants/constants.go", "pkg/credentials/s3/s3_secret.go",
        "pkg/credentials/service_account_credentials.go", RUNTIMES_TEMPLATE])
    charts = {}
    for key, chart_dir in (("kserve", "charts/kserve-resources"), ("kserve-crd", "charts/kserve-crd")):
        c = chart_facts(repo, tag, chart_dir, facts["source"])
        if c["chart"]["name"] != CHARTS[key].name or c["chart"]["version"] != CHARTS[key].version:
            raise SystemExit(f"{chart_dir} at {tag} is {c['chart']}, not the pinned {CHARTS[key]}")
        charts[key] = {k: c[k] for k in ("chart", "valuePaths", "freeFormValues")}
    facts["charts"] = charts
    facts["crds"] = {kind: crd_facts(yaml.safe_load(git(repo, "show", f"{tag}:{crd_dir}/{f}")), version, f)
                     for kind, (f, version) in crds.items()}
    isvc = facts["crds"]["InferenceService"]
    for path in KSERVE_OMITTED:
        node = isvc["schema"]
        *parents, leaf = path.split(".")
        for part in parents:
            node = node["properties"][part]
        del node["properties"][leaf]
    isvc["omitted"] = list(KSERVE_OMITTED)
    modes = go_constants(constants, r"(?:Legacy)?(?:Serverless|Knative|RawDeployment|Standard)")
    classes = go_constants(constants, r"AutoscalerClass(?:HPA|KPA|External|Keda|None)")
    allowed = re.search(r"AutoscalerAllowedClassList = \[\]AutoscalerClassType\{(.*?)\}", constants, re.S)
    facts["annotations"] = {
        "deploymentMode": go_constants(constants, "DeploymentMode")["DeploymentMode"],
        "autoscalerClass": go_constants(constants, "AutoscalerClass")["AutoscalerClass"],
        "s3": go_constants(s3, r"InferenceServiceS3\w+Annotation", constants),
        "irsaRoleArn": go_constants(creds, "AwsIrsaAnnotationKey")["AwsIrsaAnnotationKey"],
        # The local model cache: which LocalModelNodeGroup's copy a cached InferenceService mounts.
        "nodeGroup": go_constants(constants, "NodeGroupAnnotationKey")["NodeGroupAnnotationKey"],
    }
    facts["deploymentModes"] = {"Knative": modes["Knative"], "Standard": modes["Standard"]}
    facts["autoscalerClasses"] = sorted(classes.values())
    facts["standardAutoscalerClasses"] = sorted(classes[n.strip()] for n in allowed.group(1).split(",") if n.strip())
    values = yaml.safe_load(git(repo, "show", f"{tag}:charts/kserve-resources/values.yaml"))
    facts["clusterServingRuntimes"] = serving_runtimes(git(repo, "show", f"{tag}:{RUNTIMES_TEMPLATE}"), values)
    return facts


RUNTIMES_TEMPLATE = "charts/kserve-resources/templates/clusterservingruntimes.yaml"
"""The ClusterServingRuntimes the KServe chart installs (what gpuscale installs), with their images from values."""


def render_values(template: str, values: dict) -> str:
    """A Helm template with each `{{ .Values.a.b }}` replaced by its default from values.yaml, the lines that are only
    template actions ({{- with }}, {{- toYaml . }}, {{- end }}) dropped and any other inline action ({{ . }}) left
    empty: enough to read the fields the runtimes' facts take (names, images, formats, protocols, workers)."""
    def value(match: re.Match) -> str:
        path = re.fullmatch(r"\.Values\.([A-Za-z0-9_.]+)", match.group(1).strip())
        if path is None:
            return ""
        node: object = values
        for part in path.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise SystemExit(f"{RUNTIMES_TEMPLATE}: .Values.{path.group(1)} is not in values.yaml")
            node = node[part]
        return str(node).lower() if isinstance(node, bool) else str(node)
    lines = [line for line in template.splitlines() if not re.fullmatch(r"\s*{{.*}}\s*", line)]
    return re.sub(r"{{-?(.*?)-?}}", value, "\n".join(lines))


def serving_runtimes(template: str, values: dict) -> dict[str, object]:
    """Per ClusterServingRuntime of the chart: its serving image, the model formats it declares (autoSelect and
    priority, merged over the formats' versions: gpuscale names no version), protocol versions, whether it is a
    multi-node runtime (a workerSpec) and whether the chart installs it disabled. KServe picks a runtime for a model
    from exactly these (pkg/apis/serving/v1beta1/predictor_model.go: GetSupportingRuntimes)."""
    runtimes: dict[str, object] = {}
    for doc in yaml.safe_load_all(render_values(template, values)):
        if not doc or doc.get("kind") != "ClusterServingRuntime":
            continue
        name, spec = doc["metadata"]["name"], doc["spec"]
        images = {c["image"] for c in spec["containers"] if c["name"] == "kserve-container"}
        if len(images) != 1:
            raise SystemExit(f"{RUNTIMES_TEMPLATE}: {name} has {len(images)} kserve-container images, not one")
        formats: dict[str, dict[str, object]] = {}
        for f in spec["supportedModelFormats"]:
            declared = {"autoSelect": bool(f.get("autoSelect", False)), "priority": f.get("priority")}
            if formats.setdefault(f["name"], declared) != declared:
                raise SystemExit(f"{RUNTIMES_TEMPLATE}: {name} declares {f['name']} twice with different "
                                 f"autoSelect or priority ({formats[f['name']]}, {declared})")
        runtimes[name] = {"image": images.pop(), "modelFormats": dict(sorted(formats.items())),
                          "protocolVersions": list(spec.get("protocolVersions", [])),
                          "multiModel": bool(spec.get("multiModel", False)), "multiNode": "workerSpec" in spec,
                          "disabled": spec.get("disabled", False) is True}
    if not runtimes:
        raise SystemExit(f"{RUNTIMES_TEMPLATE}: no ClusterServingRuntime")
    return dict(sorted(runtimes.items()))


def knative_serving(repo: Path) -> dict[str, object]:
    """Knative Serving at the pinned release: the per-revision annotation keys (autoscaling and progress deadline)
    with the class and metric values, and the keys and defaults of config-autoscaler and config-defaults."""
    tag = f"knative-v{KNATIVE_SERVING_VERSION}"
    files = ["pkg/apis/autoscaling/register.go", "pkg/apis/serving/register.go",
             "config/core/configmaps/autoscaler.yaml", "config/core/configmaps/defaults.yaml",
             "config/core/configmaps/deployment.yaml", "config/core/configmaps/features.yaml"]
    facts = source_facts(repo, tag, "https://github.com/knative/serving", files)
    autoscaling = git(repo, "show", f"{tag}:{files[0]}")
    serving = git(repo, "show", f"{tag}:{files[1]}")
    facts["autoscalingAnnotations"] = go_constants(autoscaling, r"\w+(?:AnnotationKey|Key)")
    facts["autoscalingClasses"] = go_constants(autoscaling, r"KPA|HPA")
    facts["autoscalingMetrics"] = go_constants(autoscaling, r"Concurrency|RPS|CPU|Memory")
    facts["servingAnnotations"] = go_constants(serving, r"ProgressDeadlineAnnotationKey")

    def example_keys(path: str) -> dict[str, str]:
        """The keys of a Knative ConfigMap with their defaults, from its `_example` block."""
        data = yaml.safe_load(git(repo, "show", f"{tag}:{path}"))["data"]["_example"]
        return {k: str(v) for k, v in (yaml.safe_load(data) or {}).items()}
    facts["configAutoscaler"] = example_keys(files[2])
    facts["configDefaults"] = example_keys(files[3])
    facts["configDeployment"] = example_keys(files[4])
    facts["configFeatures"] = example_keys(files[5])
    return facts


def knative_operator(repo: Path) -> dict[str, object]:
    """The Knative Operator chart at the pinned release: its values, the KnativeServing CRD it installs and the
    Serving releases and ingresses it bundles."""
    pin = CHARTS["knative-operator"]
    tag = f"knative-{pin.version}"
    chart_dir = "config/charts/knative-operator"
    template = f"{chart_dir}/templates/operator.yaml"
    facts = source_facts(repo, tag, "https://github.com/knative/operator",
                         [f"{chart_dir}/Chart.yaml", f"{chart_dir}/values.yaml", template, "cmd/operator/kodata/"])
    # hack/generate-helm.sh fills the chart's placeholders at release: {{ version }} without the v, {{ tag }} with.
    fill = {"{{ version }}": pin.version.removeprefix("v"), "{{ tag }}": pin.version}
    chart_text, values_text = (git(repo, "show", f"{tag}:{chart_dir}/{f}") for f in ("Chart.yaml", "values.yaml"))
    for placeholder, value in fill.items():
        chart_text, values_text = chart_text.replace(placeholder, value), values_text.replace(placeholder, value)
    chart, paths = yaml.safe_load(chart_text), value_paths(yaml.safe_load(values_text))
    facts["chart"] = {"name": chart["name"], "version": f"v{chart['version']}", "appVersion": pin.version}
    facts["valuePaths"] = sorted(paths)
    facts["freeFormValues"] = free_form(repo, tag, chart_dir, paths)
    crd = None
    for doc in git(repo, "show", f"{tag}:{template}").split("\n---"):
        if "name: knativeservings.operator.knative.dev" in doc:
            # Template lines ({{- if ... }}) dropped; a tab inside one description is not YAML, spaces are.
            crd = yaml.safe_load("\n".join(line for line in doc.splitlines()
                                           if not line.lstrip().startswith("{{")).replace("\t", " "))
    if crd is None:
        raise SystemExit(f"{template} at {tag}: no knativeservings.operator.knative.dev CRD")
    facts["knativeServing"] = crd_facts(crd, "v1beta1", template)
    kodata = "cmd/operator/kodata"
    facts["servingVersions"] = sorted(git(repo, "ls-tree", "--name-only", tag, f"{kodata}/knative-serving/")
                                      .replace(f"{kodata}/knative-serving/", "").split())
    facts["ingressVersions"] = sorted(git(repo, "ls-tree", "--name-only", tag, f"{kodata}/ingress/")
                                      .replace(f"{kodata}/ingress/", "").split())
    # config-network as the operator deploys the pinned Serving release (it lives in knative/networking, not in
    # knative/serving): the keys spec.config.network may set, e.g. ingress-class.
    core = f"{kodata}/knative-serving/{KNATIVE_SERVING_VERSION}/2-serving-core.yaml"
    facts["files"].append(core)
    for doc in yaml.safe_load_all(git(repo, "show", f"{tag}:{core}")):
        if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "config-network":
            facts["configNetwork"] = {k: str(v) for k, v in yaml.safe_load(doc["data"]["_example"]).items()}
    if "configNetwork" not in facts:
        raise SystemExit(f"{core} at {tag}: no config-network ConfigMap")
    return facts


KEDA_SCALERS = {"aws-cloudwatch": "aws_cloudwatch_scaler.go", "aws-sqs-queue": "aws_sqs_queue_scaler.go",
                "prometheus": "prometheus_scaler.go"}
"""The scalers gpuscale's ScaledObjects use, by trigger type, and the file declaring each one's metadata."""


def keda(repo: Path) -> dict[str, object]:
    """KEDA at the pinned release: the ScaledObject and TriggerAuthentication CRDs and, per scaler gpuscale uses,
    the trigger metadata keys it parses (its `keda:"name=..."` tags: required unless optional or defaulted)."""
    tag = KEDA_VERSION
    crd_dir = "config/crd/bases"
    crds = {"ScaledObject": "keda.sh_scaledobjects.yaml", "TriggerAuthentication": "keda.sh_triggerauthentications.yaml"}
    facts = source_facts(repo, tag, "https://github.com/kedacore/keda",
                         [*(f"{crd_dir}/{f}" for f in crds.values()),
                          *(f"pkg/scalers/{f}" for f in KEDA_SCALERS.values())])
    facts["crds"] = {kind: crd_facts(yaml.safe_load(git(repo, "show", f"{tag}:{crd_dir}/{f}")), "v1alpha1", f)
                     for kind, f in crds.items()}
    scalers = {}
    for trigger, f in KEDA_SCALERS.items():
        text = git(repo, "show", f"{tag}:pkg/scalers/{f}")
        keys = {}
        for tag_text in re.findall(r'keda:"([^"]*)"', text):
            options = [o.strip() for o in tag_text.split(",")]
            named = dict(o.split("=", 1) for o in options if "=" in o)
            if "name" not in named or "triggerMetadata" not in named.get("order", ""):
                continue
            keys[named["name"]] = ("default=" + named["default"]) if "default" in named else (
                "optional" if "optional" in options else "required")
        if not keys:
            raise SystemExit(f"pkg/scalers/{f} at {tag}: no trigger metadata keys found")
        scalers[trigger] = dict(sorted(keys.items()))
    facts["scalerMetadata"] = scalers
    return facts


def keda_chart(repo: Path) -> dict[str, object]:
    pin = CHARTS["keda"]
    facts = chart_facts(repo, f"v{pin.version}", "keda", "https://github.com/kedacore/charts")
    if facts["chart"]["appVersion"] != KEDA_VERSION.removeprefix("v"):
        raise SystemExit(f"keda chart {pin.version} runs KEDA {facts['chart']['appVersion']}, not {KEDA_VERSION}")
    return facts


def cert_manager(repo: Path) -> dict[str, object]:
    """cert-manager's chart at the pinned release; the release tool sets version and appVersion to the tag."""
    pin = CHARTS["cert-manager"]
    chart_dir = "deploy/charts/cert-manager"
    values = yaml.safe_load(git(repo, "show", f"{pin.version}:{chart_dir}/values.yaml"))
    paths = value_paths(values)
    facts = source_facts(repo, pin.version, "https://github.com/cert-manager/cert-manager",
                         [f"{chart_dir}/Chart.template.yaml", f"{chart_dir}/values.yaml", f"{chart_dir}/templates/"])
    name = yaml.safe_load(git(repo, "show", f"{pin.version}:{chart_dir}/Chart.template.yaml"))["name"]
    facts["chart"] = {"name": name, "version": pin.version, "appVersion": pin.version}
    facts["valuePaths"] = sorted(paths)
    facts["freeFormValues"] = free_form(repo, pin.version, chart_dir, paths)
    return facts


def vertical_pod_autoscaler(repo: Path) -> dict[str, object]:
    """The VPA's chart at its release tag (vertical-pod-autoscaler-chart-<version>, as chart-releaser names it), the
    VerticalPodAutoscaler CRD (autoscaling.k8s.io/v1) the chart installs from its crds/ directory, and the feature
    gates of the release the chart runs (VPA_VERSION): whether in-place updates need one."""
    pin = CHARTS["vertical-pod-autoscaler"]
    tag = f"vertical-pod-autoscaler-chart-{pin.version}"
    chart_dir = "vertical-pod-autoscaler/charts/vertical-pod-autoscaler"
    crd_file = f"{chart_dir}/crds/vpa-v1-crd-gen.yaml"
    facts = chart_facts(repo, tag, chart_dir, "https://github.com/kubernetes/autoscaler")
    if facts["chart"]["name"] != pin.name or facts["chart"]["appVersion"] != VPA_VERSION:
        raise SystemExit(f"{chart_dir} at {tag} is {facts['chart']}, not {pin.name} running VPA {VPA_VERSION}")
    facts["files"] = [*facts["files"], crd_file]
    crds = {doc["spec"]["names"]["kind"]: doc for doc in yaml.safe_load_all(git(repo, "show", f"{tag}:{crd_file}"))
            if doc}
    facts["crds"] = {"VerticalPodAutoscaler": crd_facts(crds["VerticalPodAutoscaler"], "v1", crd_file)}
    app_tag = f"vertical-pod-autoscaler/v{VPA_VERSION}"
    gates_file = "vertical-pod-autoscaler/pkg/features/versioned_features.go"
    gates = git(repo, "show", f"{app_tag}:{gates_file}")
    # `Name: {` opens each gate's versioned specs in defaultVersionedFeatureGates.
    facts["featureGates"] = sorted(re.findall(r"^\t(\w+): \{", gates, re.M))
    facts["featureGatesFrom"] = {"tag": app_tag, "commit": git(repo, "rev-list", "-n", "1", app_tag).strip(),
                                 "files": [gates_file]}
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--autoscaler", type=Path, help="a git clone of kubernetes/autoscaler")
    parser.add_argument("--device-plugin", type=Path, help="a git clone of NVIDIA/k8s-device-plugin")
    parser.add_argument("--prometheus-operator", type=Path,
                        help="a git clone of prometheus-operator/prometheus-operator")
    parser.add_argument("--docker-build", type=Path, help="a git clone of pulumi/pulumi-docker-build")
    parser.add_argument("--kserve", type=Path, help="a git clone of kserve/kserve")
    parser.add_argument("--knative-serving", type=Path, help="a git clone of knative/serving")
    parser.add_argument("--knative-operator", type=Path, help="a git clone of knative/operator")
    parser.add_argument("--keda", type=Path, help="a git clone of kedacore/keda")
    parser.add_argument("--keda-charts", type=Path, help="a git clone of kedacore/charts")
    parser.add_argument("--cert-manager", type=Path, help="a git clone of cert-manager/cert-manager")
    parser.add_argument("--vpa", type=Path, help="a git clone of kubernetes/autoscaler (the VPA's chart and CRD)")
    args = parser.parse_args()
    jobs = [(name, make, repo) for name, make, repo in (
        ("cluster_autoscaler", autoscaler, args.autoscaler),
        ("nvidia_device_plugin", device_plugin, args.device_plugin),
        ("prometheus_operator", prometheus_operator, args.prometheus_operator),
        ("docker_build", docker_build, args.docker_build),
        ("kserve", kserve, args.kserve), ("knative_serving", knative_serving, args.knative_serving),
        ("knative_operator", knative_operator, args.knative_operator), ("keda", keda, args.keda),
        ("keda_chart", keda_chart, args.keda_charts), ("cert_manager", cert_manager, args.cert_manager),
        ("vertical_pod_autoscaler", vertical_pod_autoscaler, args.vpa))
        if repo is not None]
    if not jobs:
        parser.error("give at least one clone: --autoscaler, --device-plugin, --prometheus-operator, --docker-build, "
                     "--kserve, --knative-serving, --knative-operator, --keda, --keda-charts, --cert-manager, --vpa")
    OUT.mkdir(exist_ok=True)
    for name, make, repo in jobs:
        facts = {"generatedBy": "scripts/upstream_facts.py", **make(repo)}
        (OUT / f"{name}.json").write_text(json.dumps(facts, indent=1, sort_keys=False) + "\n")
        print(f"wrote {OUT / f'{name}.json'} from {facts['source']} at {facts['tag']}")


if __name__ == "__main__":
    main()
