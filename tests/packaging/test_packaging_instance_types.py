"""The packaged EC2 instance type records: where they come from, that they are fresh (they match the source installed
as a dev dependency, moto), that they cover every instance type the stacks and the price list offer, and that the
generating script's EC2 API path reads DescribeInstanceTypes the way EC2 answers it (moto standing in)."""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import re
import sys
from datetime import date
from pathlib import Path

import boto3
import pytest
import yaml

from gpuscale.instance_types import INSTANCE_TYPE_FILE, RecordedInstanceTypes, recorded_source, trim_record

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import refresh_instance_types  # noqa: E402

CATALOG = RecordedInstanceTypes()


def moto_records() -> dict[str, dict]:
    spec = importlib.util.find_spec("moto")
    path = Path(spec.submodule_search_locations[0]).parent / refresh_instance_types.MOTO_RECORDS
    return json.loads(gzip.decompress(path.read_bytes()))


def test_the_data_file_names_its_source_version_and_dates():
    source = recorded_source()
    assert source["name"] == "moto" and re.fullmatch(r"\d+\.\d+\.\d+", source["version"])
    assert source["file"] == "moto/ec2/resources/instance_types.json.gz"
    assert source["generator"] == "scripts/refresh_instance_types.py"
    for key in ("generated", "recorded"):
        assert date.fromisoformat(source[key]) <= date.today(), key
    assert "DescribeInstanceTypes" in source["description"] and "Apache-2.0" in source["licence"]


def test_records_match_the_installed_source():
    """Fresh: every record is the installed moto's record cut to RECORD_FIELDS (a moto upgrade that brings new or
    changed instance types fails here until scripts/refresh_instance_types.py is rerun)."""
    recorded = recorded_source()
    expected = {name: trim_record(r) for name, r in moto_records().items()}
    ours = {name: CATALOG.record(name) for name in CATALOG.names()}
    hint = (f"the data file is from moto {recorded['version']}, moto {importlib.metadata.version('moto')} is "
            "installed: rerun scripts/refresh_instance_types.py")
    assert sorted(ours) == sorted(expected), hint
    changed = [name for name in expected if ours[name] != expected[name]]
    assert not changed, f"{hint} ({len(changed)} records differ, e.g. {changed[:3]})"


def named_instance_types() -> dict[str, set[str]]:
    """Instance types named in each stack file, by the keys that name them."""
    found: dict[str, set[str]] = {}

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "instanceType" and isinstance(value, str):
                    found.setdefault(value, set()).add(path)
                elif key == "instanceTypes" and isinstance(value, list):
                    for t in value:
                        found.setdefault(t, set()).add(path)
                else:
                    walk(value, path)
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    for stack in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        walk(yaml.safe_load(stack.read_text()), stack.name)
    return found


def test_every_instance_type_the_stacks_name_is_described():
    named = named_instance_types()
    assert {"t3.large", "g6.xlarge", "p5.48xlarge"} <= set(named), "the walk finds the stacks' instance types"
    missing = {t: sorted(where) for t, where in named.items() if CATALOG.describe(t) is None}
    assert not missing, f"not in {INSTANCE_TYPE_FILE.name}: {missing}"


def test_every_gpu_type_gpuscale_prices_has_its_nvidia_gpus_described():
    """The price list holds the GPU types gpuscale offers (scripts/refresh_prices.py picks them from these
    records); each must still be described, with NVIDIA GPUs, as the config reader requires."""
    prices = json.loads((ROOT / "gpuscale" / "data" / "prices.json").read_text())
    offered = {t for region in prices["regions"].values() for t in region.get("instances", {})}
    gpu_families = ("g4dn", "g5", "g6", "g6e", "p4d", "p5")
    assert {t.split(".")[0] for t in offered} >= set(gpu_families)
    for name in sorted(offered):
        info = CATALOG.describe(name)
        assert info is not None, f"{name} is priced but not described"
        if name.split(".")[0] in gpu_families:
            assert info.gpu_count >= 1 and info.gpu_manufacturer == "NVIDIA", name


def test_gpu_facts_of_types_the_stacks_use_are_ec2s():
    """A spot check against EC2's published specifications (https://aws.amazon.com/ec2/instance-types/)."""
    facts = {name: (i.gpu_count, i.gpu_name, i.vcpus) for name in ("g6.xlarge", "g5.12xlarge", "p5.48xlarge",
                                                                    "g6e.xlarge") if (i := CATALOG.describe(name))}
    assert facts == {"g6.xlarge": (1, "L4", 4), "g5.12xlarge": (4, "A10G", 48), "p5.48xlarge": (8, "H100", 192),
                     "g6e.xlarge": (1, "L40S", 4)}


def test_no_test_or_mock_framework_among_the_runtime_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]}
    assert not names & {"moto", "cfn-lint", "pytest", "responses", "kubernetes-validate"}, names
    assert any(d.startswith("moto") for d in project["optional-dependencies"]["dev"])


def test_the_api_source_pages_through_describe_instance_types(tmp_path, monkeypatch):
    from moto import mock_aws

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")  # moto answers EC2's API in process; nothing leaves the machine

    def client(region):
        return boto3.client("ec2", region_name=region)

    with mock_aws():
        records, source = refresh_instance_types.api_records(["us-east-1"], client_factory=client)
    assert len(records) > 100, "more than one page (DescribeInstanceTypes pages by 100 at most)"
    assert source["name"] == "ec2-api" and "us-east-1" in source["version"]
    out = tmp_path / "instance_types.json"
    out.write_text(refresh_instance_types.render(records, source, "2026-12-05"))
    written = json.loads(out.read_text())
    assert written["source"]["generated"] == "2026-12-05"
    # What boto3 parsed from EC2's XML is what the moto-sourced file holds for the same type.
    assert written["instanceTypes"]["g6.xlarge"] == CATALOG.record("g6.xlarge")


def test_network_bandwidth_is_read_from_ec2s_stated_performance():
    from gpuscale.instance_types import RecordedInstanceTypes, network_gbps

    assert network_gbps("Up to 10 Gigabit") == 10.0 and network_gbps("Up to 12.5 Gigabit") == 12.5
    assert network_gbps("4x 100 Gigabit") == 400.0 and network_gbps("3200 Gigabit") == 3200.0
    assert network_gbps("High") is None and network_gbps(None) is None
    types = RecordedInstanceTypes()
    assert types.describe("g6.xlarge").network_gbps == 10.0 and types.describe("g6e.12xlarge").network_gbps == 100.0
