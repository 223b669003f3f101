"""AgentBundle: a private, encrypted bucket holding the agent's source archive under a content-addressed key."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from gpuscale.components.agent_bundle import AgentBundle, content_hash, find_agent_dir

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "gpu-metrics-agent"\nversion = "0"\n')
    (tmp_path / "gpu_metrics_agent").mkdir()
    (tmp_path / "gpu_metrics_agent" / "__init__.py").write_text('"""agent"""\n')
    return tmp_path


def test_bucket_is_private_encrypted_and_tls_only(harness, agent_dir):
    bundle = harness.run(lambda: AgentBundle("agent", {"agent_dir": str(agent_dir)}))
    block = harness.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert {k: block.inputs[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                         "restrictPublicBuckets")} == dict.fromkeys(
        ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True), block.name
    sse = harness.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}, sse.name
    policy = json.loads(harness.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    [deny] = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    bucket_arn = harness.value(bundle.bucket_arn)
    assert deny["Resource"] == [bucket_arn, f"{bucket_arn}/*"]
    archive = harness.one(OBJECT)
    assert sse.urn in archive.dependencies, f"{archive.name} is written once default encryption is on"


def test_archive_is_the_agent_source_under_a_content_key(harness, agent_dir):
    (agent_dir / "build" / "lib").mkdir(parents=True)  # what a local `pip wheel ./agent` leaves behind
    (agent_dir / "build" / "lib" / "stale.py").write_text("old = True\n")
    (agent_dir / "gpu_metrics_agent.egg-info").mkdir()
    (agent_dir / "gpu_metrics_agent.egg-info" / "PKG-INFO").write_text("Name: gpu-metrics-agent\n")
    bundle = harness.run(lambda: AgentBundle("agent", {"agent_dir": str(agent_dir)}))
    archive = harness.one(OBJECT)
    assert isinstance(archive.inputs["source"], pulumi.AssetArchive), archive.name
    assets = archive.inputs["source"].assets
    assert sorted(assets) == ["gpu_metrics_agent/__init__.py", "pyproject.toml"], "source only, no build output"
    assert all(Path(a.path).is_relative_to(agent_dir) for a in assets.values()), archive.name
    key = f"gpu-metrics-agent/{content_hash(agent_dir)[:16]}.zip"
    assert archive.inputs["key"] == key and harness.value(bundle.object_key) == key
    assert harness.value(bundle.object_arn) == f"{harness.value(bundle.bucket_arn)}/{key}"


def test_content_hash_follows_the_source_and_ignores_caches(agent_dir):
    before = content_hash(agent_dir)
    (agent_dir / "gpu_metrics_agent" / "__pycache__").mkdir()
    (agent_dir / "gpu_metrics_agent" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert content_hash(agent_dir) == before, "a byte-code cache is not a new agent"
    (agent_dir / "build").mkdir()
    (agent_dir / "build" / "x.py").write_text("")
    (agent_dir / "gpu_metrics_agent.egg-info").mkdir()
    (agent_dir / "gpu_metrics_agent.egg-info" / "SOURCES.txt").write_text("")
    assert content_hash(agent_dir) == before, "build output is not a new agent either"
    (agent_dir / "gpu_metrics_agent" / "__init__.py").write_text('"""agent v2"""\n')
    assert content_hash(agent_dir) != before, "changed source, new key, new launch template version"


def test_default_agent_dir_is_the_repository_agent_package():
    """`__main__.py` relies on this default: the repository's agent/ with its standalone pyproject.toml."""
    assert find_agent_dir() == Path(__file__).resolve().parents[2] / "agent"


def test_a_directory_without_the_agent_project_is_rejected(harness, tmp_path):
    with pytest.raises(ValueError, match="^agent_dir: .*pyproject.toml"):
        harness.run(lambda: AgentBundle("agent", {"agent_dir": str(tmp_path)}))
