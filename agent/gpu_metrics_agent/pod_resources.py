"""Which pod holds each GPU: the kubelet's pod-resources API (gRPC on a unix socket), read on a thread of its own.

The API's messages are built at run time from ``data/kubelet_podresources_v1.json``, which a script in the repository
derives from the kubelet's ``api.proto`` at a pinned release (``agent/scripts/gen_podresources_proto.py``): no
generated code to keep in step, no protoc. Only ``List`` is called.

Device ids are what the NVIDIA device plugin advertises: GPU UUIDs by default, or indexes with
``deviceIDStrategy=index``; with time-slicing each replica is ``<id>::<n>``, so one GPU can be held by several pods.
A scrape reads the last mapping (a reference swapped atomically) and never waits for the kubelet. When reads fail
for longer than three intervals the mapping is dropped: no pod labels rather than labels that may be wrong.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from importlib import resources
from typing import Callable, Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .health import ErrorLog, Health

log = logging.getLogger(__name__)

DATA_FILE = "kubelet_podresources_v1.json"
GPU_RESOURCE_PREFIX = "nvidia.com/"
"""nvidia.com/gpu, and nvidia.com/mig-<profile> under the device plugin's mixed MIG strategy."""
CALL_TIMEOUT_S = 5.0
STALE_AFTER_INTERVALS = 3

_TYPES = {name: getattr(descriptor_pb2.FieldDescriptorProto, "TYPE_" + name.upper())
          for name in ("string", "int64", "uint64", "int32", "uint32", "bool", "bytes", "double", "float")}


def api() -> dict:
    """The generated description of the pod-resources API (source, version, licence, service, messages)."""
    return json.loads(resources.files(__package__).joinpath("data", DATA_FILE).read_text())


def message_classes(description: dict | None = None) -> dict[str, type]:
    """Protobuf message classes for every message of the API, by name, in a pool of their own."""
    description = description or api()
    package = description["package"]
    proto = descriptor_pb2.FileDescriptorProto(name=f"gpuscale/podresources_{package}.proto", package=package,
                                               syntax="proto3")
    Field = descriptor_pb2.FieldDescriptorProto
    for name, fields in description["messages"].items():
        message = proto.message_type.add(name=name)
        for spec in fields:
            field = message.field.add(name=spec["name"], number=spec["number"],
                                      label=Field.LABEL_REPEATED if spec["label"] == "repeated"
                                      else Field.LABEL_OPTIONAL)
            if spec["type"] in _TYPES:
                field.type = _TYPES[spec["type"]]
            else:
                field.type, field.type_name = Field.TYPE_MESSAGE, f".{package}.{spec['type']}"
            if spec["label"] == "optional":  # proto3 `optional`: presence through a synthetic one-of
                field.proto3_optional = True
                field.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{spec['name']}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    file = pool.FindFileByName(proto.name)
    return {name: message_factory.GetMessageClass(file.message_types_by_name[name])
            for name in description["messages"]}


def list_method(description: dict | None = None) -> tuple[str, str, str]:
    """(full method path, request message, response message) of PodResourcesLister.List."""
    description = description or api()
    for service, methods in description["services"].items():
        for method in methods:
            if method["name"] == "List":
                return f"/{description['package']}.{service}/List", method["input"], method["output"]
    raise LookupError("the pod-resources API description has no List method")


Holder = tuple[str, str, str]
"""(pod, namespace, container)."""


def gpu_holders(response) -> dict[str, tuple[Holder, ...]]:
    """Device id (GPU UUID or index, any ``::n`` replica suffix removed) -> the containers holding it."""
    holders: dict[str, list[Holder]] = {}
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                if not devices.resource_name.startswith(GPU_RESOURCE_PREFIX):
                    continue
                for device_id in devices.device_ids:
                    held = holders.setdefault(device_id.split("::", 1)[0], [])
                    holder = (pod.name, pod.namespace, container.name)
                    if holder not in held:
                        held.append(holder)
    return {device: tuple(sorted(held)) for device, held in holders.items()}


class PodResourcesWatcher:
    """Reads the kubelet's pod-resources API every ``interval`` seconds on its own thread."""

    def __init__(self, socket_path: str, interval: float, health: Health,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._target = f"unix://{socket_path}" if not socket_path.startswith("unix:") else socket_path
        self._interval, self._health, self._clock = interval, health, clock
        description = api()
        self._method, request, response = list_method(description)
        classes = message_classes(description)
        self._request, self._response = classes[request](), classes[response]
        self._mapping: dict[str, tuple[Holder, ...]] | None = None
        self._read_at = float("-inf")
        self._errors = ErrorLog(log)
        self._stop = threading.Event()
        self._thread = health.thread("pod_resources", self._run)

    def latest(self) -> Callable[[int, str], Sequence[Holder]] | None:
        """Who holds a GPU, by (index, UUID); None until a first read, or once reads have failed for a while."""
        mapping = self._mapping
        if mapping is None or self._clock() - self._read_at > STALE_AFTER_INTERVALS * self._interval:
            return None
        return lambda index, uuid: mapping.get(uuid) or mapping.get(str(index)) or ()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def read(self, channel: grpc.Channel) -> None:
        """One List call; the mapping is replaced on success, kept (until stale) on failure."""
        call = channel.unary_unary(self._method, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=self._response.FromString)
        health = self._health
        try:
            response = call(self._request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            health.pr_errors += 1
            self._errors.failing("list", f"pod-resources List on {self._target} failed; pod labels are dropped "
                                         f"after {STALE_AFTER_INTERVALS} intervals without a read",
                                 f"{exc.code().name}: {exc.details()}")
            return
        self._mapping, self._read_at = gpu_holders(response), self._clock()
        health.pr_reads += 1
        health.pr_last_success_wall = time.time()
        self._errors.recovered("list", "pod-resources List succeeds again")

    def _run(self) -> None:
        with grpc.insecure_channel(self._target) as channel:
            while True:
                self.read(channel)
                if self._stop.wait(self._interval):
                    return
