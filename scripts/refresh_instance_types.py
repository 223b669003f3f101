#!/usr/bin/env python3
"""Regenerate gpuscale/data/instance_types.json: EC2's DescribeInstanceTypes records, cut to the fields gpuscale
reads (gpuscale.instance_types.RECORD_FIELDS), with their source, version and dates.

The offline tools (`gpuscale plan`'s mocks, the config reader, the simulator, the pre-apply checks) answer
instance-type questions from that file, so a consumer install carries no AWS mock framework.

Sources:
  --source moto   (default) the records moto ships in moto/ec2/resources/instance_types.json.gz. moto's maintainers
                  record them from EC2's DescribeInstanceTypes in every region (moto's scripts/get_instance_info.py)
                  and publish them with each release; they are EC2's own answers, merged over regions. Read from
                  the installed moto (a dev dependency of this repository), or from a moto wheel (--moto-wheel,
                  e.g. `pip download moto==5.2.6 --no-deps`), whose build date is then recorded as the records' date.
  --source api    EC2 itself: DescribeInstanceTypes through boto3, in --region (credentials allowed
                  ec2:DescribeInstanceTypes). A region lists only the types offered there, so pass the regions the
                  stacks use and more (--region may repeat); records of several regions are merged like moto's.

Usage:
  python scripts/refresh_instance_types.py                          # installed moto
  python scripts/refresh_instance_types.py --moto-wheel moto-5.2.6-py3-none-any.whl
  python scripts/refresh_instance_types.py --source api --region us-east-1 --region us-west-2
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import importlib.metadata
import importlib.util
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpuscale.instance_types import INSTANCE_TYPE_FILE, RECORD_FIELDS, trim_record  # noqa: E402

MOTO_RECORDS = "moto/ec2/resources/instance_types.json.gz"
"""Where moto keeps its recorded DescribeInstanceTypes answers, inside its package (and its wheel)."""


def installed_moto_records() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """moto's records from the installed moto, located without importing moto (only its data file is needed)."""
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("moto is not installed: pip install -e '.[dev]' (or pass --moto-wheel)")
    path = Path(spec.submodule_search_locations[0]).parent / MOTO_RECORDS
    version = importlib.metadata.version("moto")
    return json.loads(gzip.decompress(path.read_bytes())), moto_source(version)


def wheel_moto_records(wheel: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """moto's records from a moto wheel; the wheel's entry date is when that release was built."""
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo(MOTO_RECORDS)
        records = json.loads(gzip.decompress(archive.read(info)))
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        version = next(line.split(":", 1)[1].strip() for line in archive.read(metadata).decode().splitlines()
                       if line.startswith("Version:"))
    source = moto_source(version)
    source["recorded"] = datetime.date(*info.date_time[:3]).isoformat()
    source["recordedMeans"] = f"build date of {wheel.name}, the release carrying these records"
    return records, source


def moto_source(version: str) -> dict[str, str]:
    return {
        "name": "moto",
        "version": version,
        "file": MOTO_RECORDS,
        "description": "EC2 DescribeInstanceTypes answers of every region, recorded by moto's maintainers "
                       "(getmoto/moto scripts/get_instance_info.py) and shipped in the moto release named here",
        "licence": "moto is Apache-2.0; the records are AWS's API answers",
    }


def api_records(regions: list[str], client_factory: Any = None) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """EC2's DescribeInstanceTypes, paginated, in each region; a type seen in several regions is kept once."""
    import boto3

    records: dict[str, dict[str, Any]] = {}
    for region in regions:
        client = (client_factory or (lambda r: boto3.client("ec2", region_name=r)))(region)
        for page in client.get_paginator("describe_instance_types").paginate():
            for record in page["InstanceTypes"]:
                records.setdefault(record["InstanceType"], record)
    return records, {
        "name": "ec2-api",
        "version": f"DescribeInstanceTypes in {', '.join(regions)}",
        "description": "EC2 DescribeInstanceTypes answers, asked by scripts/refresh_instance_types.py --source api",
        "recorded": datetime.date.today().isoformat(),
        "recordedMeans": "the day the API was asked",
        "licence": "AWS's API answers",
    }


def render(records: dict[str, dict[str, Any]], source: dict[str, str], today: str) -> str:
    """The data file's text: a header, then one instance type per line (a refresh's diff names what changed)."""
    header = {"source": {**source, "generated": today, "generator": "scripts/refresh_instance_types.py"},
              "fields": "the DescribeInstanceTypes fields of gpuscale.instance_types.RECORD_FIELDS, as EC2 names "
                        "them; fields EC2 leaves out of a record are left out here too"}
    lines = [json.dumps(header, indent=1, sort_keys=True)[:-2] + ",", ' "instanceTypes": {']
    names = sorted(records)
    for i, name in enumerate(names):
        comma = "," if i < len(names) - 1 else ""
        lines.append(f"  {json.dumps(name)}: {json.dumps(trim_record(records[name]), sort_keys=True)}{comma}")
    lines += [" }", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("moto", "api"), default="moto")
    parser.add_argument("--moto-wheel", type=Path, help="read moto's records from this wheel, not the installed moto")
    parser.add_argument("--region", action="append", help="with --source api: a region to ask (repeatable)")
    parser.add_argument("--output", type=Path, default=INSTANCE_TYPE_FILE)
    args = parser.parse_args(argv)
    if args.source == "api":
        records, source = api_records(args.region or ["us-east-1"])
    elif args.moto_wheel:
        records, source = wheel_moto_records(args.moto_wheel)
    else:
        records, source = installed_moto_records()
    text = render(records, source, datetime.date.today().isoformat())
    json.loads(text)  # the hand-joined lines must still be one JSON document
    args.output.write_text(text)
    gpus = sum(1 for r in records.values() if r.get("GpuInfo"))
    print(f"{args.output}: {len(records)} instance types ({gpus} with GPUs) from {source['name']} "
          f"{source['version']}; fields: {', '.join(RECORD_FIELDS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
