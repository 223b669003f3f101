"""AgentImage: the agent's container image, built from agent/Dockerfile at `pulumi up` and pushed to an ECR
repository of the stack, for the agent's DaemonSet on the EKS GPU nodes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build
from typing_extensions import NotRequired

PLATFORMS = {"x86_64": docker_build.Platform.LINUX_AMD64, "arm64": docker_build.Platform.LINUX_ARM64}
"""Image platform per EC2 architecture (EKS AMI types name x86_64 and ARM_64)."""
REPOSITORY_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
"""ECR's repository name rule (CreateRepository, repositoryName), 2-256 characters."""
SKIPPED_DIRS = ("__pycache__", "build", "dist")
SKIPPED_SUFFIXES = (".pyc", ".egg-info")
"""Outputs of a local install or wheel build that may sit in the context but never change the image."""


class AgentImageArgs(TypedDict):
    repository_name: str
    """ECR repository created for the image, e.g. "gpuscale-dev/gpu-metrics-agent"."""
    context_dir: str
    """The Docker build context, relative to the program's directory: "agent" (its Dockerfile is the one used)."""
    architectures: Sequence[str]
    """EC2 architectures of the nodes that run it ("x86_64", "arm64"); one image platform each."""
    tags: NotRequired[dict[str, str]]
    """Tags on the ECR repository. Default none."""


def context_digest(context_dir: str) -> str:
    """A digest of the build context's files (paths and contents): the image tag, so a changed agent is a new tag
    in an immutable repository and a new rollout, and an unchanged one is neither."""
    root = Path(context_dir)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if any(part in SKIPPED_DIRS or part.endswith(SKIPPED_SUFFIXES) for part in relative.split("/")):
            continue
        h.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _check(args: AgentImageArgs) -> tuple[str, list[docker_build.Platform]]:
    name = args["repository_name"]
    if not (2 <= len(name) <= 256 and REPOSITORY_NAME.fullmatch(name)):
        raise ValueError(f"repository_name: {name!r} is not allowed; allowed: an ECR repository name, 2-256 "
                         "lowercase letters, digits and . _ - / (e.g. \"gpuscale-dev/gpu-metrics-agent\")")
    context = args["context_dir"]
    if not (Path(context) / "Dockerfile").is_file():
        raise ValueError(f"context_dir: {context!r} is not allowed; allowed: a directory with a Dockerfile, relative "
                         f"to the program's directory ({Path.cwd()}), e.g. \"agent\"")
    architectures = list(args["architectures"])
    unknown = [a for a in architectures if a not in PLATFORMS]
    if not architectures or unknown:
        raise ValueError(f"architectures: {architectures!r} is not allowed; allowed: one or more of "
                         + ", ".join(PLATFORMS))
    return context, sorted({PLATFORMS[a] for a in architectures}, key=lambda p: p.value)


class AgentImage(pulumi.ComponentResource):
    """An ECR repository and the agent's image in it. `image_ref` is `<repository>:<tag>@sha256:<digest>`: nodes
    pull exactly the image that was built."""

    image_ref: pulumi.Output[str]
    repository_url: pulumi.Output[str]

    def __init__(self, name: str, args: AgentImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpuscale:index:AgentImage", name, None, opts)
        context, platforms = _check(args)
        child = pulumi.ResourceOptions(parent=self)
        repository = aws.ecr.Repository(
            f"{name}-repo", name=args["repository_name"],
            # Tags are content digests: a tag never moves, so a node can never pull another image under it.
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            tags=args.get("tags"), opts=child)
        # Short-lived (12 h) registry credentials of the account, read at each `pulumi up`, never stored in config.
        token = aws.ecr.get_authorization_token_output(registry_id=repository.registry_id,
                                                       opts=pulumi.InvokeOutputOptions(parent=self))
        tag = repository.repository_url.apply(lambda url: f"{url}:{context_digest(context)}")
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=context),
            dockerfile=docker_build.DockerfileArgs(location=f"{context}/Dockerfile"),
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
