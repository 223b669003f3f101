"""Writes gpu_metrics_agent/data/kubelet_podresources_v1.json: the kubelet's pod-resources gRPC API (package v1:
its service, methods and messages with their field numbers and types), derived from the API's .proto file at a
pinned release, for the agent to build its protobuf descriptors from at run time (no generated code, no protoc).

The .proto file is read from a checkout of https://github.com/kubernetes/kubelet (Apache-2.0) at the tag below; it
is not copied into this repository. To regenerate:

    git clone --branch kubernetes-1.36.3 --depth 1 https://github.com/kubernetes/kubelet /tmp/kubelet
    python agent/scripts/gen_podresources_proto.py /tmp/kubelet/pkg/apis/podresources/v1/api.proto

The parser understands what this file uses (proto3 messages with scalar, message, repeated and optional fields, and
one service of unary methods) and refuses anything else rather than guessing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

VERSION = "kubernetes-1.36.3"
SOURCE = "https://github.com/kubernetes/kubelet"
PATH = "pkg/apis/podresources/v1/api.proto"
LICENCE = "Apache-2.0"
OUT = Path(__file__).resolve().parents[1] / "gpu_metrics_agent" / "data" / "kubelet_podresources_v1.json"

_SCALARS = {"string", "int64", "uint64", "int32", "uint32", "bool", "bytes", "double", "float"}
_BLOCK_START = re.compile(r"\b(message|service)\s+(\w+)\s*\{")
_FIELD = re.compile(r"^(repeated\s+|optional\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;$")
_RPC = re.compile(r"^rpc\s+(\w+)\s*\(\s*(\w+)\s*\)\s*returns\s*\(\s*(\w+)\s*\)\s*\{\s*\}$")


def _blocks(text: str):
    """(kind, name, body) of each top-level message and service, the body up to its matching brace."""
    for match in _BLOCK_START.finditer(text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        yield match.group(1), match.group(2), text[match.end():i - 1]


def parse(text: str) -> dict:
    text = re.sub(r"//[^\n]*", "", text)
    syntax = re.search(r'syntax\s*=\s*"(\w+)"', text).group(1)
    if syntax != "proto3":
        raise ValueError(f"expected proto3, got {syntax}")
    package = re.search(r"\bpackage\s+([\w.]+)\s*;", text).group(1)
    messages: dict[str, list[dict]] = {}
    services: dict[str, list[dict]] = {}
    for kind, name, body in _blocks(text):
        lines = [line.strip() for line in body.split(";") if line.strip()]
        if kind == "message":
            fields = []
            for line in lines:
                match = _FIELD.match(line + ";")
                if not match:
                    raise ValueError(f"message {name}: cannot read {line!r}")
                label, type_, field, number = match.groups()
                fields.append({"name": field, "number": int(number), "type": type_,
                               "label": (label or "").strip() or "singular"})
            messages[name] = fields
        else:
            methods = []
            for line in re.split(r"(?<=\})", body):
                line = " ".join(line.split())
                if not line:
                    continue
                match = _RPC.match(line)
                if not match:
                    raise ValueError(f"service {name}: cannot read {line!r}")
                methods.append(dict(zip(("name", "input", "output"), match.groups())))
            services[name] = methods
    for name, fields in messages.items():
        for field in fields:
            if field["type"] not in _SCALARS and field["type"] not in messages:
                raise ValueError(f"message {name}: unknown type {field['type']}")
    return {"package": package, "services": services, "messages": messages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("proto", type=Path, help=f"{PATH} from {SOURCE} at tag {VERSION}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    data = {"source": SOURCE, "version": VERSION, "path": PATH, "licence": LICENCE,
            "generated_by": "agent/scripts/gen_podresources_proto.py", **parse(args.proto.read_text())}
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}: {len(data['messages'])} messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
