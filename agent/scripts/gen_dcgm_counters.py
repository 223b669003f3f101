"""Writes gpu_metrics_agent/data/dcgm_exporter_counters.json: dcgm-exporter's counter names, types, help and units,
and the labels it puts on GPU series, derived from dcgm-exporter's own files at a pinned release.

The upstream files are read from a checkout of https://github.com/NVIDIA/dcgm-exporter (Apache-2.0) at the tag
below; they are not copied into this repository, only the facts the agent and its tests need. To regenerate:

    git clone --branch 4.5.3-4.8.2 --depth 1 https://github.com/NVIDIA/dcgm-exporter /tmp/dcgm-exporter
    python agent/scripts/gen_dcgm_counters.py /tmp/dcgm-exporter

Files read: etc/default-counters.csv (the counters enabled by default, and the commented-out ones as "not
default"), internal/pkg/rendermetrics/render_metrics.go (the label names of a GPU series) and
internal/pkg/transformation/const.go (the pod labels added on Kubernetes).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

VERSION = "4.5.3-4.8.2"
SOURCE = "https://github.com/NVIDIA/dcgm-exporter"
LICENCE = "Apache-2.0"
OUT = Path(__file__).resolve().parents[1] / "gpu_metrics_agent" / "data" / "dcgm_exporter_counters.json"

_COUNTER = re.compile(r"^(#\s*)?(DCGM_[A-Z0-9_]+)\s*,\s*([a-z]+)\s*,\s*(.+?)\s*$")
_UNIT = re.compile(r"\(in ([^)]+)\)")
_GPU_TEMPLATE = re.compile(r'^\{\{ \$counter\.FieldName \}\}\{gpu=')
_LABEL = re.compile(r'(?:^|,|\{)([A-Za-z_]+|\{\{ \$metric\.UUID \}\})="')
_CONDITIONAL = re.compile(r"\{\{if \$metric\.(\w+) ?\}\}(.*?)\{\{end\}\}")
_POD_ATTRIBUTE = re.compile(r'^\s*(pod|namespace|container)Attribute\s*=\s*"(\w+)"', re.M)
UUID_LABEL = "UUID"
"""The name render_metrics.go's ``{{ $metric.UUID }}`` takes unless dcgm-exporter runs with its old-label flag
(internal/pkg/collector/gpu_collector.go: ``uuid := "UUID"``)."""


def counters(csv_text: str) -> list[dict]:
    """Every counter the file names, enabled by default or commented out; a name listed both ways (the PCIe
    counters) counts as enabled."""
    found: dict[str, dict] = {}
    for line in csv_text.splitlines():
        match = _COUNTER.match(line.strip())
        if not match:
            continue
        commented, name, kind, help_text = match.groups()
        if name in found and found[name]["default"]:
            continue
        unit = _UNIT.search(help_text)
        # The profiling (DCP) counters say "Ratio of ..." rather than "(in unit)": their values are 0-1.
        ratio = help_text.lower().startswith(("ratio", "the ratio"))
        found[name] = {"name": name, "type": kind, "help": help_text,
                       "unit": unit.group(1) if unit else "ratio" if ratio else None, "default": commented is None}
    return list(found.values())


def gpu_labels(render_go: str) -> dict:
    line = next(line for line in render_go.splitlines() if _GPU_TEMPLATE.match(line.strip()))
    conditional = {}
    for condition, body in _CONDITIONAL.findall(line):
        conditional[condition] = [_name(n) for n in _LABEL.findall(body)]
    always = [_name(n) for n in _LABEL.findall(_CONDITIONAL.sub("", line))]
    return {"always": always, "mig": conditional["MigProfile"], "hostname": conditional["Hostname"][0]}


def _name(token: str) -> str:
    return UUID_LABEL if token.startswith("{{") else token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help=f"a checkout of {SOURCE} at tag {VERSION}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    root = args.checkout
    data = {
        "source": SOURCE, "version": VERSION, "licence": LICENCE,
        "files": ["etc/default-counters.csv", "internal/pkg/rendermetrics/render_metrics.go",
                  "internal/pkg/transformation/const.go"],
        "generated_by": "agent/scripts/gen_dcgm_counters.py",
        "gpu_labels": gpu_labels((root / "internal/pkg/rendermetrics/render_metrics.go").read_text()),
        "pod_labels": dict(_POD_ATTRIBUTE.findall((root / "internal/pkg/transformation/const.go").read_text())),
        "counters": counters((root / "etc/default-counters.csv").read_text()),
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}: {len(data['counters'])} counters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
