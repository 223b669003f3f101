"""Prices from the AWS Price List: the dated file in the package, or the Pricing API through boto3.

`gpuscale/data/prices.json` holds, per region, the On-Demand Linux hourly price of each instance type gpuscale
offers and the fixed parts of a stack (EKS control plane, NAT gateway, public IPv4 address, gp3 storage), each
price naming its source, and each source its date. `scripts/refresh_prices.py` rewrites it; `PriceBook.from_api`
asks the Pricing API directly where AWS credentials are available (`gpuscale plan --prices api`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRICE_FILE = Path(__file__).parent / "data" / "prices.json"
FIXED_PARTS = ("eksControlPlaneHour", "natGatewayHour", "publicIpv4Hour", "gp3GiBMonth")
"""The fixed prices of a region: per hour, except gp3 storage per GiB-month."""


class PriceError(LookupError):
    """A price that is not known; the message says which and how to get it."""


@dataclass(frozen=True)
class Price:
    usd: float
    source: str
    """Key of `PriceBook.sources`: where the figure comes from and when."""


@dataclass(frozen=True)
class PriceBook:
    regions: Mapping[str, Mapping[str, Mapping[str, Price]]]
    """region -> {"instances": {type: Price}, "fixed": {part: Price}}"""
    sources: Mapping[str, Mapping[str, str]]
    """source key -> {"description", "date"}"""
    origin: str
    """The file it was read from, or "AWS Pricing API"."""

    @classmethod
    def from_file(cls, path: Path = PRICE_FILE) -> PriceBook:
        doc = json.loads(path.read_text())
        regions = {region: {kind: {k: Price(float(v["usd"]), v["source"]) for k, v in entries.items()}
                            for kind, entries in parts.items()}
                   for region, parts in doc["regions"].items()}
        return cls(regions, doc["sources"], str(path.name))

    @classmethod
    def from_api(cls, regions: Iterable[str], instance_types: Iterable[str], client: Any = None,
                 today: str | None = None) -> PriceBook:
        """Ask the AWS Pricing API (needs credentials allowed `pricing:GetProducts`)."""
        import datetime

        import boto3

        client = client or boto3.client("pricing", region_name="us-east-1")  # the API's own home region
        source = "pricing-api"
        day = today or datetime.date.today().isoformat()
        out: dict[str, dict[str, dict[str, Price]]] = {}
        types = sorted(set(instance_types))
        for region in sorted(set(regions)):
            instances = {}
            for t in types:
                usd = _api_price(client, "AmazonEC2", region, {
                    "instanceType": t, "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
                    "capacitystatus": "Used", "licenseModel": "No License required"})
                if usd is not None:
                    instances[t] = Price(usd, source)
            fixed = {part: Price(usd, source) for part, usd in
                     ((p, _api_price(client, service, region, filters)) for p, (service, filters) in
                      FIXED_QUERIES.items()) if usd is not None}
            out[region] = {"instances": instances, "fixed": fixed}
        sources = {source: {"description": "AWS Price List through the Pricing API (GetProducts), On-Demand",
                            "date": day}}
        return cls(out, sources, "AWS Pricing API")

    def to_json(self) -> dict[str, Any]:
        return {"currency": "USD", "sources": {k: dict(v) for k, v in sorted(self.sources.items())},
                "regions": {r: {kind: {k: {"usd": p.usd, "source": p.source} for k, p in sorted(entries.items())}
                                for kind, entries in sorted(parts.items())}
                            for r, parts in sorted(self.regions.items())}}

    def _region(self, region: str) -> Mapping[str, Mapping[str, Price]]:
        if region not in self.regions:
            raise PriceError(f"no prices for region {region} in {self.origin} (it has "
                             f"{', '.join(sorted(self.regions)) or 'none'}); add it with "
                             f"`python scripts/refresh_prices.py --region {region}` (AWS credentials)")
        return self.regions[region]

    def instance(self, region: str, instance_type: str) -> Price:
        prices = self._region(region).get("instances", {})
        if instance_type not in prices:
            raise PriceError(f"no price for {instance_type} in {region} in {self.origin}; add it with "
                             f"`python scripts/refresh_prices.py --region {region}` (AWS credentials)")
        return prices[instance_type]

    def fixed(self, region: str, part: str) -> Price:
        prices = self._region(region).get("fixed", {})
        if part not in prices:
            raise PriceError(f"no {part} price for {region} in {self.origin}")
        return prices[part]

    def missing_message(self, region: str, missing: Iterable[str]) -> str:
        """Which prices of `region` this book lacks, by name, and how to add them."""
        missing = sorted(set(missing))
        fixed = [m for m in missing if m in FIXED_PARTS]
        types = [m for m in missing if m not in FIXED_PARTS]
        where = (f"no prices for region {region} in {self.origin} (it has {', '.join(sorted(self.regions)) or 'none'})"
                 if region not in self.regions else f"{self.origin} lacks prices in {region}")
        named = "; ".join(part for part in (
            f"instance types (On-Demand Linux, per hour): {', '.join(types)}" if types else "",
            f"fixed parts: {', '.join(fixed)}" if fixed else "") if part)
        return (f"{where}; missing {named}; add them with `python scripts/refresh_prices.py --region {region}` "
                f"(AWS credentials allowed pricing:GetProducts)")

    def cited(self, keys: Iterable[str]) -> list[str]:
        """"description (date)" of each source among `keys`, for a footnote under a figure."""
        return [f"{self.sources[k]['description']} ({self.sources[k]['date']})" for k in sorted(set(keys))
                if k in self.sources]


FIXED_QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "eksControlPlaneHour": ("AmazonEKS", {"operation": "CreateOperation", "usagetype": "{prefix}AmazonEKS-Hours:perCluster"}),
    "natGatewayHour": ("AmazonEC2", {"productFamily": "NAT Gateway", "usagetype": "{prefix}NatGateway-Hours"}),
    "publicIpv4Hour": ("AmazonVPC", {"usagetype": "{prefix}PublicIPv4:InUseAddress"}),
    "gp3GiBMonth": ("AmazonEC2", {"productFamily": "Storage", "volumeApiName": "gp3"}),
}
"""Pricing API filters of each fixed part; `{prefix}` is the region's usage-type prefix (e.g. USE1-)."""

USAGE_PREFIX = {"us-east-1": "", "us-east-2": "USE2-", "us-west-1": "USW1-", "us-west-2": "USW2-",
                "eu-west-1": "EU-", "eu-central-1": "EUC1-", "ap-northeast-1": "APN1-"}
"""AWS's usage-type prefixes by region (us-east-1 has none); a region missing here has its fixed parts skipped."""


def _api_price(client: Any, service: str, region: str, filters: dict[str, str]) -> float | None:
    """The first On-Demand USD price the Pricing API returns for a product matching `filters` in `region`."""
    if "{prefix}" in "".join(filters.values()):
        if region not in USAGE_PREFIX:
            return None
        filters = {k: v.replace("{prefix}", USAGE_PREFIX[region]) for k, v in filters.items()}
    query = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
    query += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()]
    for page in client.get_paginator("get_products").paginate(ServiceCode=service, Filters=query):
        for item in page.get("PriceList", []):
            usd = on_demand_usd(json.loads(item) if isinstance(item, str) else item)
            if usd is not None:
                return usd
    return None


def on_demand_usd(product: Mapping[str, Any]) -> float | None:
    """The On-Demand USD price of one Price List product (a `GetProducts` PriceList entry); None without one."""
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dimension in (term.get("priceDimensions") or {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is not None and float(usd) > 0:
                return float(usd)
    return None
