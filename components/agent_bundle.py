"""AgentBundle: the GPU metrics agent's source archive in a private, encrypted S3 bucket, for nodes to install."""

import hashlib
import importlib.util
from pathlib import Path

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from ._docs import documented
from ._s3 import private_encrypted_tls_only

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section

# Left out of the content hash: caches that change without the agent changing.
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist"}
"""Caches and build output: a local `pip wheel ./agent` leaves build/ and *.egg-info/ behind, which must change
neither the archive nor its key (a different key means a new launch template and a fleet refresh)."""


class AgentBundleArgs(TypedDict):
    agent_dir: NotRequired[str]
    """Directory of the agent's standalone package (the one holding agent/pyproject.toml). Default: the copy shipped
    inside gpuscale (`gpuscale/agent_source`, an install from a wheel), else the directory above the
    `gpu_metrics_agent` package (`gpu_metrics_agent.__file__`: a checkout or an editable install)."""
    tags: NotRequired[dict[str, str]]
    """Tags on the bucket and the archive object. Default none."""


PACKAGED_AGENT = "agent_source"
"""Where a built gpuscale carries agent/ (pyproject.toml's `gpuscale.agent_source` package data): inside the
`gpuscale` package, so an install from a wheel holds what AgentBundle archives and AgentImage builds."""


def find_agent_dir() -> Path:
    """The agent's standalone package: the copy inside an installed gpuscale, or, in a checkout (or an editable
    install, which leaves agent/ where it is), the repository's `agent/`, next to the `gpu_metrics_agent` package."""
    gpuscale = importlib.util.find_spec("gpuscale")
    packaged = Path(gpuscale.origin).parent / PACKAGED_AGENT if gpuscale and gpuscale.origin else None
    if packaged is not None and (packaged / "pyproject.toml").is_file():
        return packaged
    # Located without importing it: the agent's imports (NVML, boto3) have no business in a Pulumi program.
    spec = importlib.util.find_spec("gpu_metrics_agent")
    candidate = Path(spec.origin).resolve().parent.parent if spec and spec.origin else None
    if candidate is None or not (candidate / "pyproject.toml").is_file():
        raise ValueError("agent_dir: the GPU metrics agent's source directory (holding pyproject.toml) was found "
                         f"neither in the installed gpuscale ({packaged}) nor next to the gpu_metrics_agent package "
                         f"({candidate}); pass agent_dir=the path of the repository's agent/ directory in "
                         "AgentBundleArgs")
    return candidate


def source_files(directory: Path) -> list[Path]:
    """The agent's source files under `directory`, relative to it, in a stable order (caches and build output left
    out)."""
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory)
        if _IGNORED_PARTS.intersection(rel.parts) or path.suffix == ".pyc" or \
                any(part.endswith(".egg-info") for part in rel.parts):
            continue
        files.append(rel)
    return files


def content_hash(directory: Path) -> str:
    """A digest of every source file's path and bytes under `directory`, stable across machines and checkouts."""
    digest = hashlib.sha256()
    for rel in source_files(directory):
        digest.update(rel.as_posix().encode() + b"\0" + (directory / rel).read_bytes() + b"\0")
    return digest.hexdigest()


def check_args(s: Section) -> None:
    s.str("agent_dir", None, describe="the path of the agent's directory (holding its pyproject.toml)")
    s.input("tags", {})


@documented
class AgentBundle(pulumi.ComponentResource):
    """A bucket only this stack's instance roles read, holding `gpu-metrics-agent/<content hash>.zip`.

    The key changes with the agent's source, so a new agent changes the Auto Scaling groups' user data, which makes
    a new launch template version and rolls the fleet through instance refresh instead of mixing versions.
    """

    bucket_name: pulumi.Output[str]
    """Name of the bucket (GpuAutoScalingGroupArgs.agent_bucket_name)."""
    bucket_arn: pulumi.Output[str]
    """ARN of the bucket (GpuAutoScalingGroupArgs.agent_bucket_arn)."""
    object_key: pulumi.Output[str]
    """Key of the agent's archive, `gpu-metrics-agent/<content hash>.zip` (GpuAutoScalingGroupArgs.agent_object_key)."""
    object_arn: pulumi.Output[str]
    """ARN of the archive object: the only object the instance roles may read."""

    def __init__(self, name: str, args: AgentBundleArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("AgentBundle", name, args, AgentBundleArgs, check_args)
        agent_dir = Path(args["agent_dir"]) if args.get("agent_dir") else find_agent_dir()
        if not (agent_dir / "pyproject.toml").is_file():
            raise ValueError(f"agent_dir: {str(agent_dir)!r} is not allowed; allowed: a directory holding the "
                             "agent's pyproject.toml")
        super().__init__("gpuscale:index:AgentBundle", name, None, opts)
        tags = dict(args.get("tags") or {})
        child = pulumi.ResourceOptions(parent=self)

        bucket = aws.s3.Bucket(f"{name}-bucket", tags=tags, opts=child)
        encryption = private_encrypted_tls_only(name, bucket, self)

        key = f"gpu-metrics-agent/{content_hash(agent_dir)[:16]}.zip"
        archive = aws.s3.BucketObjectv2(
            f"{name}-archive", bucket=bucket.id, key=key, source=pulumi.AssetArchive(
                {rel.as_posix(): pulumi.FileAsset(str(agent_dir / rel)) for rel in source_files(agent_dir)}),
            content_type="application/zip", tags=tags,
            # Written after default encryption is configured, so the object is stored encrypted.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[encryption]))

        self.bucket_name = bucket.id
        self.bucket_arn = bucket.arn
        self.object_key = archive.key
        self.object_arn = pulumi.Output.concat(bucket.arn, "/", archive.key)
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn,
                               "object_key": self.object_key, "object_arn": self.object_arn})

