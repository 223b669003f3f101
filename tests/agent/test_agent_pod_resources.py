"""Per-pod GPU labels from the kubelet's pod-resources API, against a fake kubelet speaking gRPC on a unix socket.

The fake encodes its answers by hand in protobuf's wire format, with the field numbers of the kubelet's api.proto
(pkg/apis/podresources/v1 at kubernetes-1.36.3), so the agent's message definitions (built from the generated data
file) are checked against the protocol rather than against themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent import futures

import grpc
import pytest

from agent_support import wait_until
from gpu_metrics_agent.fake_nvml import FakeNvml
from gpu_metrics_agent.pod_resources import api
from test_agent_cli import _env
from test_agent_prometheus import _get, _samples


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _devices(resource: str, *ids: str) -> bytes:  # ContainerDevices: resource_name = 1, device_ids = 2, topology = 3
    numa = _field(1, _varint(1 << 3 | 0) + _varint(0))  # TopologyInfo.nodes = 1 -> NUMANode.ID = 1 (int64)
    return _field(1, resource) + b"".join(_field(2, i) for i in ids) + _field(3, numa)


def _pod(name: str, namespace: str, *containers: tuple[str, list[bytes]]) -> bytes:
    # PodResources: name = 1, namespace = 2, containers = 3; ContainerResources: name = 1, devices = 2
    body = _field(1, name) + _field(2, namespace)
    for container, devices in containers:
        body += _field(3, _field(1, container) + b"".join(_field(2, d) for d in devices))
    return body


class FakeKubelet:
    """PodResourcesLister.List on a unix socket; ``pods`` is the encoded PodResources of each pod."""

    def __init__(self, path: str) -> None:
        self.pods: list[bytes] = []
        self.calls = 0
        self.path = path

        def list_pods(request: bytes, context) -> bytes:
            self.calls += 1
            return b"".join(_field(1, pod) for pod in self.pods)  # ListPodResourcesResponse.pod_resources = 1

        handler = grpc.method_handlers_generic_handler("v1.PodResourcesLister", {
            "List": grpc.unary_unary_rpc_method_handler(list_pods)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
        self.server.add_insecure_port(f"unix:{path}")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait()


@pytest.fixture
def kubelet(tmp_path):
    fake = FakeKubelet(str(tmp_path / "kubelet.sock"))
    yield fake
    fake.stop()


def _pod_labels(agent, metric: str) -> dict[str, set[tuple[str, str, str]]]:
    found: dict[str, set] = {}
    for (name, labels), _value in _samples(_get(agent, "/metrics")[1]).items():
        if name == metric:
            labels = dict(labels)
            found.setdefault(labels["gpu"], set()).add((labels.get("pod"), labels.get("namespace"),
                                                        labels.get("container")))
    return found


def test_per_gpu_series_carry_the_pods_holding_each_gpu(kubelet, make_agent):
    nvml = FakeNvml(4)
    kubelet.pods = [
        _pod("llm-0", "serving", ("server", [_devices("nvidia.com/gpu", nvml.gpus[0].uuid)]),
             ("sidecar", [_devices("vpc.amazonaws.com/pod-eni", "eni-1")])),
        # Time-slicing: two replicas of GPU 1 held by two pods.
        _pod("batch-a", "jobs", ("worker", [_devices("nvidia.com/gpu", f"{nvml.gpus[1].uuid}::0")])),
        _pod("batch-b", "jobs", ("worker", [_devices("nvidia.com/gpu", f"{nvml.gpus[1].uuid}::1")])),
        # The device plugin's index strategy names GPUs by index.
        _pod("embed-0", "serving", ("server", [_devices("nvidia.com/gpu", "2")])),
    ]
    agent = make_agent(nvml, cloudwatch=False, pod_resources_socket=kubelet.path, pod_resources_interval=0.1)
    agent.start()
    wait_until(lambda: agent.health.pr_reads >= 1 and agent.health.collections >= 1, message="a read")
    assert _pod_labels(agent, "gpuscale_gpu_utilization_ratio") == {
        "0": {("llm-0", "serving", "server")},
        "1": {("batch-a", "jobs", "worker"), ("batch-b", "jobs", "worker")},
        "2": {("embed-0", "serving", "server")},
        "3": {("", "", "")}}
    node = [labels for (name, labels) in _samples(_get(agent, "/metrics")[1]) if name == "gpuscale_node_gpus"]
    assert node == [()], "node series carry no pod labels"
    # A pod that ends frees its GPU at the next read.
    kubelet.pods = kubelet.pods[1:]
    calls = kubelet.calls
    wait_until(lambda: kubelet.calls > calls + 1, message="two more reads")
    assert _pod_labels(agent, "gpuscale_gpu_utilization_ratio")["0"] == {("", "", "")}


def test_labels_go_once_the_kubelet_stops_answering_and_the_errors_are_counted(kubelet, make_agent):
    nvml = FakeNvml(1)
    kubelet.pods = [_pod("llm-0", "serving", ("server", [_devices("nvidia.com/gpu", nvml.gpus[0].uuid)]))]
    agent = make_agent(nvml, cloudwatch=False, pod_resources_socket=kubelet.path, pod_resources_interval=0.1)
    agent.start()
    wait_until(lambda: agent.health.pr_reads >= 1, message="a read")
    assert _pod_labels(agent, "gpuscale_gpu_power_watts") == {"0": {("llm-0", "serving", "server")}}
    kubelet.stop()
    wait_until(lambda: agent.health.pr_errors >= 4, message="failed reads")
    assert _pod_labels(agent, "gpuscale_gpu_power_watts") == {"0": {(None, None, None)}}, \
        "no pod labels rather than stale ones"
    samples = _samples(_get(agent, "/metrics")[1])
    assert samples[("gpuscale_agent_pod_resources_errors_total", ())] >= 4
    assert samples[("gpuscale_agent_thread_up", (("thread", "pod_resources"),))] == 1.0


def test_outside_kubernetes_there_are_no_pod_labels_and_no_grpc():
    code = ("import contextlib, io, json, sys\n"
            "from gpu_metrics_agent import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    cli.main(['--once', '--fake-gpus', '1'])\n"
            "print(json.dumps(sorted(m for m in ('grpc', 'google.protobuf') if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert json.loads(result.stdout) == [], "grpcio is the kubernetes extra's: never loaded without the socket"


def test_the_api_description_says_where_it_comes_from():
    description = api()
    assert (description["source"], description["version"], description["licence"]) == (
        "https://github.com/kubernetes/kubelet", "kubernetes-1.36.3", "Apache-2.0")
    assert description["path"] == "pkg/apis/podresources/v1/api.proto"
    assert {m["name"] for m in description["services"]["PodResourcesLister"]} >= {"List"}


def test_the_generator_reads_the_proto_and_refuses_what_it_does_not_understand(tmp_path):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "agent" / "scripts" / "gen_podresources_proto.py"
    spec = importlib.util.spec_from_file_location("gen_podresources_proto", script)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    # Declarations in the forms the pinned api.proto uses (not a copy of it).
    parsed = generator.parse('syntax = "proto3";\npackage v1;\n'
                             "service Lister {\n    rpc List(Req) returns (Resp) {}\n}\n"
                             "message Req {}\n"
                             "message Resp {\n    repeated Item items = 1; // a comment\n}\n"
                             "message Item {\n    string name = 1;\n    optional string share_id = 5;\n}\n")
    assert parsed["services"] == {"Lister": [{"name": "List", "input": "Req", "output": "Resp"}]}
    assert parsed["messages"]["Resp"] == [{"name": "items", "number": 1, "type": "Item", "label": "repeated"}]
    assert parsed["messages"]["Item"][1] == {"name": "share_id", "number": 5, "type": "string", "label": "optional"}
    with pytest.raises(ValueError, match="cannot read"):
        generator.parse('syntax = "proto3";\npackage v1;\nmessage M {\n    map<string, string> labels = 1;\n}\n')
