"""GPU headroom (`gpuscale:headroom`): placeholder pods that keep whole GPU nodes of a node group warm.

The cluster-autoscaler FAQ's overprovisioning recipe ("How can I configure overprovisioning with Cluster
Autoscaler?", kubernetes/autoscaler cluster-autoscaler/FAQ.md at cluster-autoscaler-1.35.0, the release the pinned
chart 9.59.0 runs): a Deployment of pause pods at a negative priority holds the capacity; when real pods (priority
0 or more) find no room, the scheduler preempts a pause pod and binds the real pod to its node at once; the evicted
pause pod is pending again and makes the autoscaler add a node for it. Pods whose priority is below
`--expendable-pods-priority-cutoff` (default -10, recorded in components/upstream/cluster_autoscaler.json) "don't
cause scale up" (flags.go), so a placeholder below it would keep nothing warm after its first preemption: refused.

Headroom is per node group, not per service: the placeholder holds nodes of a GPU class, and whichever service on
the group bursts first takes them (a service-level headroom would reserve the same nodes twice on a shared group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..components.charts import upstream_facts
from ..components.kube_values import IMAGE_PATTERN, is_pinned_image
from .reader import Section, guarded

if TYPE_CHECKING:
    from .services import ServiceConfig
    from .groups import NodeGroupConfig

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
"""The pause image Kubernetes 1.31+ runs as the sandbox (kubeadm's constants.PauseVersion 3.10): holds a node's GPUs,
does nothing, exits at once when preempted."""
DEFAULT_PRIORITY = -10
"""The FAQ's overprovisioning priority: the lowest that still triggers a scale-up at the default cutoff."""
MAX_HEADROOM_NODES = 100
"""A bound of ours: more warm nodes than this is a static fleet, configure minSize instead."""


def expendable_cutoff() -> int:
    """cluster-autoscaler's --expendable-pods-priority-cutoff at the pinned chart's release (the chart sets none)."""
    return int(upstream_facts("cluster_autoscaler")["flagDefaults"]["expendable-pods-priority-cutoff"])


def priority_rule(cutoff: int | None = None) -> str:
    low = expendable_cutoff() if cutoff is None else cutoff
    return (f"an integer from {low} to -1: below 0 so every ordinary pod (priority 0) preempts the placeholder, and "
            f"at least cluster-autoscaler's --expendable-pods-priority-cutoff ({low}), below which a pending "
            "placeholder never triggers a scale-up and its node is not replaced")


def priority_allowed(priority: int, cutoff: int | None = None) -> bool:
    """The one rule for a placeholder's priority, shared by the config reader and the GpuHeadroom component."""
    low = expendable_cutoff() if cutoff is None else cutoff
    return isinstance(priority, int) and not isinstance(priority, bool) and low <= priority < 0


@dataclass(frozen=True)
class HeadroomConfig:
    node_group: str
    """The EKS node group whose nodes are kept warm."""
    nodes: int
    """Whole nodes held by placeholders (one placeholder pod per node, requesting all its GPUs)."""
    priority: int = DEFAULT_PRIORITY
    """The placeholder's PriorityClass value (priority_rule)."""
    image: str = PAUSE_IMAGE
    prepull_images: tuple[str, ...] = ()
    """Images the placeholders pull ahead of the services (one init container each); empty: none pre-pulled."""

    def prepulls(self, service: ServiceConfig) -> bool:
        """Whether a pod of `service` on one of these warm nodes finds its image there: its serving image (its own
        container's, or its KServe runtime's from the pinned chart's facts: ModelConfig.image) is pre-pulled. A
        service whose image is unknown (no runtime of the pinned chart is known to serve it) counts as pre-pulled
        where the entry names images in `images:`, which read_headroom requires before it pre-pulls for it."""
        image = service.model.image
        if image is not None:
            return image in self.prepull_images
        return bool(self.prepull_images)


PREPULL_COMMAND = ("true",)
"""What each pre-pull init container runs: coreutils' `true` exits 0 at once, so the init container only makes the
kubelet pull its image. The image must have `true` on its PATH (every Debian, Ubuntu or UBI based image, the CUDA
and serving images among them, does; a distroless image does not)."""
IMAGE_RULE = "a container image with a tag or digest"


def read_image_list(s: Section, name: str) -> tuple[str, ...]:
    """A list of pinned images (the `images:` of a headroom entry, GpuHeadroomArgs.prepull_images); empty if absent."""
    images = s.str_list(name, (), pattern=IMAGE_PATTERN, describe=IMAGE_RULE + "s")
    for i, image in enumerate(images):
        if not is_pinned_image(image):
            s.report(f"{name}[{i}]", image, IMAGE_RULE)
    return images


def read_headroom_settings(s: Section) -> tuple[int, int, str]:
    """The placeholders' count, priority and image: the rules of a `gpuscale:headroom` entry and of GpuHeadroomArgs."""
    nodes = s.int("nodes", min=1, max=MAX_HEADROOM_NODES)
    priority = s.int("priority", DEFAULT_PRIORITY, min=-2_000_000_000, max=1_000_000_000)
    if not priority_allowed(priority):
        s.report("priority", priority, priority_rule())
    image = s.str("image", PAUSE_IMAGE, pattern=IMAGE_PATTERN, describe=IMAGE_RULE)
    if not is_pinned_image(image):
        s.report("image", image, "an image reference with a tag or digest")
    return nodes, priority, image


def read_headroom(items: list[Section], node_groups: tuple[NodeGroupConfig, ...],
                  services: tuple[ServiceConfig, ...]) -> tuple[HeadroomConfig, ...]:
    """`gpuscale:headroom`: a list of {nodeGroup, nodes, priority?, image?, prepullImages?, images?}, at most one per
    node group."""
    groups = {g.name: g for g in node_groups}
    seen: set[str] = set()

    def read_entry(s: Section) -> HeadroomConfig:
        name = s.str("nodeGroup", choices=tuple(groups) or ("(no EKS node group)",))
        if name in seen:
            raise s.fail("nodeGroup", name, "one headroom entry per node group")
        seen.add(name)
        group = groups[name]
        nodes, priority, image = read_headroom_settings(s)
        if nodes > group.max_size:
            raise s.fail("nodes", nodes, f"at most the node group's maxSize ({group.max_size})")
        prepull = read_prepull(s, [svc for svc in services if svc.node_group == name])
        s.finish()
        return HeadroomConfig(name, nodes, priority, image, prepull)

    # Each entry is read on its own: while the stack config is collecting, a bad entry is reported and the next read.
    out = [h for h in (guarded(read_entry, s) for s in items) if h is not None]
    return tuple(out)


def read_prepull(s: Section, services: list[ServiceConfig]) -> tuple[str, ...]:
    """The images an entry's placeholders pre-pull: the serving images of the group's services (a custom container's
    image, or the image of the KServe runtime serving the model's format: the pinned chart's
    `kserve.servingruntime.<runtime>.image` and `tag`, recorded in components/upstream/kserve.json) and the entry's
    `images:` (extra images). A service whose image the facts cannot name (a runtime the chart does not install, a
    format no runtime of the chart serves at the default protocol) needs its image in `images:` before the group
    pre-pulls. `prepullImages` defaults to true when every service's image is known."""
    listed = read_image_list(s, "images")
    own, unknown = service_images(services)
    known = not (unknown and not listed) and bool(own or listed)
    prepull = s.bool("prepullImages", known)
    if not prepull:
        if listed:
            s.report("images", list(listed), "images only with prepullImages: true (the images to pre-pull)")
        return ()
    if unknown and not listed:
        raise s.fail("images", None, f"the serving images of {', '.join(unknown)} (no runtime of the pinned KServe "
                                     "chart is known to serve their model, so their images are not among the "
                                     "stack's facts): list them, or set prepullImages: false")
    if not own and not listed:
        raise s.fail("prepullImages", True, "false: no service on the node group has an image to pre-pull")
    return tuple(dict.fromkeys(own + listed))


def service_images(services: list[ServiceConfig]) -> tuple[tuple[str, ...], list[str]]:
    """The services' serving images (each once, in order) and the names of those whose image is unknown."""
    own = tuple(dict.fromkeys(svc.model.image for svc in services if svc.model.image is not None))
    return own, [svc.name for svc in services if svc.model.image is None]


def default_prepull(services: list[ServiceConfig]) -> tuple[str, ...]:
    """What an entry that names neither `prepullImages` nor `images:` pre-pulls for these services (those of its node
    group): their images when every one is known, else none (read_prepull's default)."""
    own, unknown = service_images(services)
    return () if unknown else own


def headroom_of(headroom: tuple[HeadroomConfig, ...], node_group: str) -> HeadroomConfig | None:
    return next((h for h in headroom if h.node_group == node_group), None)


def service_nodes(group: NodeGroupConfig, services: tuple[ServiceConfig, ...]) -> int:
    """Nodes of the group its services fill at their maxReplicas."""
    gpus = sum(s.max_replicas * s.gpus for s in services if s.node_group == group.name)
    return -(-gpus // group.gpu.gpu_count)
