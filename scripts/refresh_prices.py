#!/usr/bin/env python3
"""Refresh gpuscale/data/prices.json from the AWS Price List.

Which prices: every instance type with NVIDIA GPUs that EC2 describes (the ones a GPU group may name) and every
instance type the stacks in stacks/ name (system nodes), in the regions given (default: the regions of the stacks),
plus the fixed parts of a stack (EKS control plane, NAT gateway, public IPv4, gp3 storage).

Sources:
  --source api        the Pricing API through boto3 (AWS credentials allowed pricing:GetProducts); the default.
  --source karpenter  aws/karpenter-provider-aws's pkg/providers/pricing/zz_generated.pricing_aws.go, which
                      Karpenter's maintainers generate from the same Pricing API (us-east-1 On-Demand only); for
                      machines without credentials. Pass the file (--karpenter-file) and the commit it is from.
  --source skypilot   skypilot-org/skypilot-catalog's catalogs/v8/aws/vms.csv, which SkyPilot's fetcher
                      (sky/catalog/data_fetchers/fetch_aws.py) generates from the AWS Price List's public bulk offer
                      file of each region (AmazonEC2/current/<region>/index.csv: OnDemand, Linux, no pre-installed
                      software, used capacity); instance types only, every region it covers. Pass the file
                      (--skypilot-file, e.g. from raw.githubusercontent.com/skypilot-org/skypilot-catalog/<commit>/
                      catalogs/v8/aws/vms.csv) and the commit (--skypilot-commit). The file carries no date, so each
                      price is dated the day it was read (--read-on, default today).

Regions and prices already in the file that this run does not fetch are kept, with their own sources.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpuscale.instance_types import RecordedInstanceTypes  # noqa: E402
from gpuscale.prices import PRICE_FILE, Price, PriceBook  # noqa: E402


def offered_instance_types() -> list[str]:
    catalog = RecordedInstanceTypes()
    gpu = [n for n in catalog.names()
           if (info := catalog.describe(n)) is not None and info.gpu_count and
           info.gpu_manufacturer.upper() == "NVIDIA"]
    named = set()
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        named |= set(re.findall(r"\b[a-z][a-z0-9-]*\.[0-9]*(?:nano|micro|small|medium|large|xlarge|metal)\b",
                                path.read_text()))
    return sorted(set(gpu) | named)


def stack_regions() -> list[str]:
    regions = set()
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        region = ((yaml.safe_load(path.read_text()) or {}).get("config") or {}).get("aws:region")
        if isinstance(region, str):
            regions.add(region)
    return sorted(regions)


def from_karpenter(path: Path, commit: str, types: list[str]) -> PriceBook:
    """us-east-1 On-Demand prices from Karpenter's generated Go map."""
    text = path.read_text()
    generated = re.search(r"generated at (\S+) for ([a-z0-9-]+)", text)
    if generated is None:
        raise SystemExit(f"{path}: no 'generated at ... for REGION' line; not Karpenter's generated pricing file")
    block = re.search(r'"us-east-1": \{(.*?)\n\t\}', text, re.S)
    if block is None:
        raise SystemExit(f"{path}: no us-east-1 block")
    prices = {name: float(usd) for name, usd in re.findall(r'"([a-z0-9.-]+)": ([0-9.]+)', block.group(1))}
    wanted = set(types)
    key = f"karpenter-{commit[:12]}"
    sources = {key: {"description": "AWS Price List (Pricing API, On-Demand Linux) as generated into "
                                    "aws/karpenter-provider-aws pkg/providers/pricing/zz_generated.pricing_aws.go "
                                    f"at commit {commit}", "date": generated.group(1)[:10]}}
    instances = {t: Price(usd, key) for t, usd in prices.items() if t in wanted}
    return PriceBook({"us-east-1": {"instances": instances}}, sources, str(path))


SKYPILOT_COLUMNS = ("InstanceType", "Price", "Region")


def from_skypilot(path: Path, commit: str, regions: list[str], types: list[str], read_on: str) -> PriceBook:
    """On-Demand Linux prices of `regions` from SkyPilot's AWS catalog: one row per instance type and zone, the
    same Price List figure on every zone of a region (a region whose zones disagree is refused, not averaged)."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        absent = [c for c in SKYPILOT_COLUMNS if c not in (reader.fieldnames or ())]
        if absent:
            raise SystemExit(f"{path}: no column {', '.join(absent)}; not SkyPilot's catalogs/v8/aws/vms.csv")
        seen: dict[tuple[str, str], set[float]] = {}
        wanted, where = set(types), set(regions)
        for row in reader:
            if row["Region"] in where and row["InstanceType"] in wanted and row["Price"]:
                seen.setdefault((row["Region"], row["InstanceType"]), set()).add(float(row["Price"]))
    key = f"skypilot-catalog-{commit[:12]}"
    sources = {key: {"description": "AWS Price List (bulk offer file AmazonEC2/current/<region>/index.csv, On-Demand "
                                    "Linux) as generated into skypilot-org/skypilot-catalog catalogs/v8/aws/vms.csv "
                                    f"at commit {commit}, read on the date given", "date": read_on}}
    book: dict[str, dict[str, dict[str, Price]]] = {}
    for (region, name), prices in sorted(seen.items()):
        if len(prices) > 1:
            raise SystemExit(f"{path}: {name} in {region} has different prices on different rows "
                             f"({', '.join(map(str, sorted(prices)))}); refusing to pick one")
        book.setdefault(region, {}).setdefault("instances", {})[name] = Price(prices.pop(), key)
    if not book:
        raise SystemExit(f"{path}: no price for the offered instance types in {', '.join(regions)}")
    return PriceBook(book, sources, str(path))


def merge(old: PriceBook, new: PriceBook) -> PriceBook:
    regions = {r: {k: dict(v) for k, v in parts.items()} for r, parts in old.regions.items()}
    for region, parts in new.regions.items():
        for kind, entries in parts.items():
            regions.setdefault(region, {}).setdefault(kind, {}).update(entries)
    used = {p.source for parts in regions.values() for entries in parts.values() for p in entries.values()}
    sources = {k: v for k, v in {**old.sources, **new.sources}.items() if k in used}
    return PriceBook(regions, sources, new.origin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("api", "karpenter", "skypilot"), default="api")
    parser.add_argument("--region", action="append", help="region to fetch (repeatable; default: the stacks')")
    parser.add_argument("--karpenter-file", type=Path, help="zz_generated.pricing_aws.go (--source karpenter)")
    parser.add_argument("--karpenter-commit", help="the commit of karpenter-provider-aws the file is from")
    parser.add_argument("--skypilot-file", type=Path, help="catalogs/v8/aws/vms.csv (--source skypilot)")
    parser.add_argument("--skypilot-commit", help="the commit of skypilot-catalog the file is from")
    parser.add_argument("--read-on", default=datetime.date.today().isoformat(),
                        help="the day the SkyPilot file was read, YYYY-MM-DD (default today)")
    parser.add_argument("--output", type=Path, default=PRICE_FILE)
    args = parser.parse_args()
    types = offered_instance_types()
    if args.source == "karpenter":
        if args.karpenter_file is None or not args.karpenter_commit or \
                not re.fullmatch(r"[0-9a-f]{40}", args.karpenter_commit):
            parser.error("--source karpenter needs --karpenter-file and --karpenter-commit (a full 40-hex commit)")
        fresh = from_karpenter(args.karpenter_file, args.karpenter_commit, types)
    elif args.source == "skypilot":
        if args.skypilot_file is None or not args.skypilot_commit or \
                not re.fullmatch(r"[0-9a-f]{40}", args.skypilot_commit):
            parser.error("--source skypilot needs --skypilot-file and --skypilot-commit (a full 40-hex commit)")
        if not re.fullmatch(r"\d{4}-\d\d-\d\d", args.read_on):
            parser.error(f"--read-on {args.read_on!r}: a date as YYYY-MM-DD")
        fresh = from_skypilot(args.skypilot_file, args.skypilot_commit, args.region or stack_regions(), types,
                              args.read_on)
    else:
        import botocore.exceptions

        try:
            fresh = PriceBook.from_api(args.region or stack_regions(), types)
        except botocore.exceptions.NoCredentialsError:
            parser.error("--source api needs AWS credentials allowed pricing:GetProducts (or use --source karpenter)")
    old = PriceBook.from_file(args.output) if args.output.is_file() else PriceBook({}, {}, "")
    book = merge(old, fresh)
    import json

    args.output.write_text(json.dumps(book.to_json(), indent=1) + "\n")
    counts = ", ".join(f"{r}: {len(p.get('instances', {}))} instance types, {len(p.get('fixed', {}))} fixed"
                       for r, p in sorted(book.regions.items()))
    print(f"wrote {args.output} ({counts})")


if __name__ == "__main__":
    main()
