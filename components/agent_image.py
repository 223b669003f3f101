"""AgentImage: the agent's container image, built from agent/Dockerfile at `pulumi up` and pushed to an ECR
repository of the stack, for the agent's DaemonSet on the EKS GPU nodes."""

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section

from ._docs import documented
from .agent_bundle import content_hash, find_agent_dir

PLATFORMS = {"x86_64": docker_build.Platform.LINUX_AMD64, "arm64": docker_build.Platform.LINUX_ARM64}
"""Image platform per EC2 architecture (EKS AMI types name x86_64 and ARM_64)."""
REPOSITORY_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
"""ECR's repository name rule (CreateRepository, repositoryName), 2-256 characters."""
REPOSITORY_RULE = ("an ECR repository name, 2-256 lowercase letters, digits and . _ - / "
                   "(e.g. \"gpuscale-dev/gpu-metrics-agent\")")


class AgentImageArgs(TypedDict):
    repository_name: str
    """ECR repository created for the image, e.g. "gpuscale-dev/gpu-metrics-agent"."""
    architectures: Sequence[str]
    """EC2 architectures of the nodes that run it ("x86_64", "arm64"); one image platform each."""
    context_dir: NotRequired[str]
    """The Docker build context holding the Dockerfile used. Default: the agent's directory as AgentBundle finds it
    (the copy inside an installed gpuscale, or this repository's `agent/` in a checkout)."""
    tags: NotRequired[dict[str, str]]
    """Tags on the ECR repository. Default none."""


def check_args(s: Section) -> None:
    """The rules of AgentImageArgs that need no file system (the build context is checked by `_check`)."""
    name = s.str("repository_name", pattern=REPOSITORY_NAME.pattern, describe=REPOSITORY_RULE)
    if not 2 <= len(name) <= 256:
        s.report("repository_name", name, REPOSITORY_RULE)
    s.str_list("architectures", min_items=1, unique=False, pattern="|".join(PLATFORMS),
               describe="EC2 architectures: one or more of " + ", ".join(PLATFORMS))
    s.str("context_dir", None, describe="the path of a directory with a Dockerfile")
    s.input("tags", {})


def _check(args: AgentImageArgs) -> tuple[Path, list[docker_build.Platform]]:
    try:
        context = Path(args["context_dir"]) if args.get("context_dir") else find_agent_dir()
    except ValueError:
        raise ValueError("context_dir: the agent's directory was not found next to the installed gpu_metrics_agent "
                         "package; allowed: the path of this repository's agent/ directory") from None
    if not (context / "Dockerfile").is_file():
        raise ValueError(f"context_dir: {str(context)!r} is not allowed; allowed: a directory with a Dockerfile, "
                         "e.g. this repository's agent/")
    return context, sorted({PLATFORMS[a] for a in args["architectures"]}, key=lambda p: p.value)


@documented
class AgentImage(pulumi.ComponentResource):
    """An ECR repository and the agent's image in it. `image_ref` is `<repository>:<tag>@sha256:<digest>`: nodes
    pull exactly the image that was built."""

    image_ref: pulumi.Output[str]
    """The pushed image, `<repository>:<tag>@sha256:<digest>` (AgentDaemonSetArgs.image)."""
    repository_url: pulumi.Output[str]
    """URL of the ECR repository the image is pushed to."""

    def __init__(self, name: str, args: AgentImageArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("AgentImage", name, args, AgentImageArgs, check_args)
        context, platforms = _check(args)
        super().__init__("gpuscale:index:AgentImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repository = aws.ecr.Repository(
            f"{name}-repo", name=args["repository_name"],
            # Mutable: the tag names the agent's sources, but a rebuild of the same sources (a fresh CI checkout,
            # a newer base image) pushes a new digest under it, which an immutable repository refuses. Nodes never
            # depend on the tag: the DaemonSets pin the image by digest (repo:tag@sha256:...).
            image_tag_mutability="MUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            tags=args.get("tags"), opts=child)
        # Short-lived (12 h) registry credentials of the account, read at each `pulumi up`, never stored in config.
        token = aws.ecr.get_authorization_token_output(registry_id=repository.registry_id,
                                                       opts=pulumi.InvokeOutputOptions(parent=self))
        # The tag is the agent's content digest (as AgentBundle's key) and the platforms: a changed agent or a new
        # architecture is a new tag in the immutable repository and a new rollout; an unchanged one is neither.
        version = "-".join([content_hash(context)[:16], *(p.value.split("/")[1] for p in platforms)])
        tag = repository.repository_url.apply(lambda url: f"{url}:{version}")
        # Relative to the program's directory (where Pulumi runs it), so plans match across checkouts.
        location = Path(os.path.relpath(context)).as_posix()
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=location),
            dockerfile=docker_build.DockerfileArgs(location=f"{location}/Dockerfile"),
            platforms=platforms,
            push=True,
            tags=[tag],
            registries=[docker_build.RegistryArgs(
                address=repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
                # Secret whatever the provider marks: the token must never sit in the state in clear text.
                username=token.user_name, password=pulumi.Output.secret(token.password))],
            opts=child)
        self.repository_url = repository.repository_url
        # `ref` is the pushed tag with the build's digest; the DaemonSet pins that digest.
        self.image_ref = image.ref
        self.register_outputs({"image_ref": self.image_ref, "repository_url": self.repository_url})
