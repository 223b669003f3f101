"""The cost of a stack in `gpuscale plan` and its change in `gpuscale diff`, and the price list behind it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from plan_support import ROOT, diff_with_changed

from gpuscale.cost import StackCost
from gpuscale.prices import FIXED_PARTS, PRICE_FILE, PriceBook, on_demand_usd

HOURS = 730


def test_prod_cost_adds_up_from_the_price_list(plans):
    cost = StackCost.from_json(plans["prod"]["doc"]["cost"])
    book = PriceBook.from_file()
    line = {c.name: c for c in cost.lines}
    g6e, gp3 = book.instance("us-east-1", "g6e.xlarge").usd, book.fixed("us-east-1", "gp3GiBMonth").usd
    # infer-l40s: 2 to 12 g6e.xlarge with 300 GiB root volumes; its warm pool keeps 2 stopped (volumes only).
    assert round(line["infer-l40s"].low, 2) == round(2 * (g6e * HOURS + 300 * gp3), 2)
    assert round(line["infer-l40s"].high, 2) == round(12 * (g6e * HOURS + 300 * gp3), 2)
    assert round(line["infer-l40s warm pool"].low, 2) == round(2 * 300 * gp3, 2)
    # h100-x8: 0 to 2 p5.48xlarge.
    p5 = book.instance("us-east-1", "p5.48xlarge").usd
    assert line["h100-x8"].low == 0 and round(line["h100-x8"].high, 2) == round(2 * (p5 * HOURS + 1000 * gp3), 2)
    # Three zones, a NAT gateway and its address each, one control plane.
    assert round(line["3 NAT gateways"].low, 2) == round(3 * book.fixed("us-east-1", "natGatewayHour").usd * HOURS, 2)
    assert round(line["1 EKS control plane"].high, 2) == round(book.fixed("us-east-1", "eksControlPlaneHour").usd
                                                               * HOURS, 2)
    assert round(cost.low, 2) == round(sum(c.low for c in cost.lines), 2) and cost.low < cost.typical < cost.high
    assert line["infer-l40s"].low < line["infer-l40s"].typical < line["infer-l40s"].high
    assert line["l4-ondemand"].typical is None, "a group without a workload has no simulated month"
    assert cost.sources and all(re.search(r"\(\d{4}-\d\d-\d\d\)$", s) for s in cost.sources)
    text = plans["prod"]["stdout"]
    assert "Monthly cost in us-east-1" in text and f"{cost.low:,.0f}" in text and f"{cost.high:,.0f}" in text


def test_a_region_without_prices_names_every_missing_price(plans):
    from gpuscale.config import load_stack_file

    doc = plans["dev"]["doc"]["cost"]
    config = load_stack_file(ROOT, "dev")
    book = PriceBook.from_file()
    needed = {t for g in (*config.node_groups, *config.auto_scaling_groups) for t in g.instance_types}
    needed |= {config.cluster.system_nodes.instance_type, "eksControlPlaneHour", "natGatewayHour", "gp3GiBMonth",
               "publicIpv4Hour"}
    lacking = {k for k in needed if k not in book.regions.get(config.region, {}).get("instances", {})
               and k not in book.regions.get(config.region, {}).get("fixed", {})}
    if not lacking:  # the price list gained every price dev needs: then it has a figure
        assert "error" not in doc and doc["high"] > 0
        return
    assert set(doc["missing"]) == lacking, "every missing price is named, not only the first"
    text = plans["dev"]["stdout"]
    assert f"Monthly cost: unavailable: {book.missing_message('us-west-2', lacking)}" in text
    assert all(name in text for name in lacking) and "scripts/refresh_prices.py --region us-west-2" in text


def test_a_missing_instance_price_in_a_known_region_is_named_with_the_others(plans):
    from gpuscale.config import load_stack_file
    from gpuscale.cost import estimate
    from gpuscale.plan.model import Plan
    from gpuscale.prices import Price

    book = PriceBook.from_file()
    region = book.regions["us-east-1"]
    thinner = PriceBook({"us-east-1": {"instances": {k: v for k, v in region["instances"].items()
                                                     if k not in ("g6e.xlarge", "p5.48xlarge")},
                                       "fixed": {k: v for k, v in region["fixed"].items() if k != "natGatewayHour"}}},
                        book.sources, "thin.json")
    config = load_stack_file(ROOT, "prod")
    cost = estimate(config, Plan.from_json(plans["prod"]["doc"]), thinner)
    assert cost.lines == () and cost.missing == ("g6e.xlarge", "natGatewayHour", "p5.48xlarge")
    assert cost.error.startswith("thin.json lacks prices in us-east-1; missing instance types")
    assert "fixed parts: natGatewayHour" in cost.error
    assert StackCost.from_json(cost.to_json()).missing == cost.missing
    full = estimate(config, Plan.from_json(plans["prod"]["doc"]), book)
    assert full.error is None and full.missing == () and isinstance(book.instance("us-east-1", "g6e.xlarge"), Price)


def test_diff_prints_the_cost_change(plans, tmp_path):
    def grow(config):
        config["gpuscale:autoScalingGroups"][0]["maxSize"] = 14

    proc = diff_with_changed(tmp_path, plans["prod"]["path"], "prod", grow)
    new = tmp_path / "new.json"
    assert proc.returncode == 1
    old_cost = StackCost.from_json(plans["prod"]["doc"]["cost"])
    new_cost = StackCost.from_json(json.loads(new.read_text())["cost"])
    assert f"at max {new_cost.high - old_cost.high:+,.0f}" in proc.stdout
    assert "  infer-l40s: " in proc.stdout and "at min +0" in proc.stdout


def test_every_price_names_a_dated_source():
    doc = json.loads(PRICE_FILE.read_text())
    for region, parts in doc["regions"].items():
        # All four fixed parts or none: a region may hold instance prices alone (SkyPilot's catalog has no others).
        assert set(parts.get("fixed", {})) in (set(FIXED_PARTS), set()), region
        for kind in parts.values():
            for name, price in kind.items():
                assert price["usd"] > 0, name
                assert re.fullmatch(r"\d{4}-\d\d-\d\d", doc["sources"][price["source"]]["date"]), name


def test_refresh_from_karpenters_generated_map(tmp_path):
    generated = tmp_path / "zz_generated.pricing_aws.go"
    generated.write_text('// generated at 2026-07-20T13:44:30Z for us-east-1\nvar X = map[string]map[x]float64{\n'
                         '\t// us-east-1\n\t"us-east-1": {\n\t\t"g6.xlarge": 0.804800, "zz.nope": 1.0,\n\t},\n}\n')
    out = tmp_path / "prices.json"
    out.write_text(PRICE_FILE.read_text())
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "refresh_prices.py"), "--source", "karpenter",
                           "--karpenter-file", str(generated), "--karpenter-commit", "a" * 40, "--output", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    book = PriceBook.from_file(out)
    price = book.instance("us-east-1", "g6.xlarge")
    assert price.usd == 0.8048 and book.sources[price.source]["date"] == "2026-07-20"
    assert "zz.nope" not in book.regions["us-east-1"]["instances"], "only instance types gpuscale offers"
    assert book.fixed("us-east-1", "natGatewayHour").usd > 0, "prices this run did not fetch are kept"
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "refresh_prices.py"), "--source", "karpenter",
                          "--karpenter-file", str(generated), "--output", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "--karpenter-commit" in bad.stderr


SKYPILOT_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region," \
                  "AvailabilityZone,Arch\n"


def refresh_from_skypilot(tmp_path, rows: str, *extra: str) -> subprocess.CompletedProcess:
    catalog = tmp_path / "vms.csv"
    catalog.write_text(SKYPILOT_HEADER + rows)
    out = tmp_path / "prices.json"
    if not out.exists():
        out.write_text(PRICE_FILE.read_text())
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "refresh_prices.py"), "--source", "skypilot",
                           "--skypilot-file", str(catalog), "--output", str(out), *extra],
                          capture_output=True, text=True)


def test_refresh_from_skypilots_catalog(tmp_path):
    rows = ("g6.xlarge,L4,1.0,4.0,16.0,,0.8048,0.4250,us-west-2,usw2-az1,x86_64\n"
            "g6.xlarge,L4,1.0,4.0,16.0,,0.8048,,us-west-2,usw2-az2,x86_64\n"  # no Spot price: the On-Demand one counts
            "g6.xlarge,L4,1.0,4.0,16.0,,0.9,0.5,eu-west-1,euw1-az1,x86_64\n"  # a region not asked for
            "zz.nope,,,2.0,8.0,,1.0,0.1,us-west-2,usw2-az1,x86_64\n")  # not a type gpuscale offers
    commit = ["--skypilot-commit", "b" * 40, "--region", "us-west-2", "--read-on", "2026-12-05"]
    proc = refresh_from_skypilot(tmp_path, rows, *commit)
    assert proc.returncode == 0, proc.stderr
    book = PriceBook.from_file(tmp_path / "prices.json")
    price = book.instance("us-west-2", "g6.xlarge")
    assert price.usd == 0.8048 and book.sources[price.source]["date"] == "2026-12-05"
    assert "b" * 40 in book.sources[price.source]["description"] and "AWS Price List" in book.sources[price.source][
        "description"]
    fetched = {n for n, p in book.regions["us-west-2"]["instances"].items() if p.source == price.source}
    assert fetched == {"g6.xlarge"} and "eu-west-1" not in book.regions, "the offered types of the asked regions"
    assert book.instance("us-east-1", "g6.xlarge").source.startswith("karpenter-"), "other regions are kept"

    disagreeing = rows + "g6.xlarge,L4,1.0,4.0,16.0,,0.81,0.4,us-west-2,usw2-az3,x86_64\n"
    proc = refresh_from_skypilot(tmp_path, disagreeing, *commit)
    assert proc.returncode == 1 and "g6.xlarge in us-west-2 has different prices" in proc.stderr
    proc = refresh_from_skypilot(tmp_path, rows, "--region", "us-west-2")
    assert proc.returncode == 2 and "--skypilot-commit" in proc.stderr
    proc = refresh_from_skypilot(tmp_path, rows, *commit[:-1], "5 Dec")
    assert proc.returncode == 2 and "--read-on '5 Dec'" in proc.stderr
    (tmp_path / "vms.csv").write_text("name,usd\ng6.xlarge,1\n")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "refresh_prices.py"), "--source", "skypilot",
                           "--skypilot-file", str(tmp_path / "vms.csv"), *commit, "--output",
                           str(tmp_path / "prices.json")], capture_output=True, text=True)
    assert proc.returncode == 1 and "no column InstanceType, Price, Region" in proc.stderr


def test_pricing_api_products_parse_to_their_on_demand_price():
    product = {"product": {"attributes": {"instanceType": "g6.xlarge"}}, "terms": {"OnDemand": {"X.JRTCKXETXF": {
        "priceDimensions": {"X.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": "0.8048000000"}}}}}}}
    assert on_demand_usd(product) == 0.8048
    assert on_demand_usd({"terms": {"OnDemand": {}}}) is None


def test_pricing_api_book_asks_for_each_type_and_fixed_part():
    """Through a real boto3 Pricing client with botocore's Stubber: each request is checked against the service's
    own model (operation, parameter names and enums) and against the filters we mean to send."""
    import boto3
    from botocore.stub import Stubber

    from gpuscale.prices import FIXED_QUERIES, USAGE_PREFIX

    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    stub = Stubber(client)

    def product(usd):
        return json.dumps({"terms": {"OnDemand": {"t": {"priceDimensions": {"d": {"pricePerUnit": {"USD": usd}}}}}}})

    def expect(service, fields, usd):
        filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-west-2"}]
        filters += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]
        stub.add_response("get_products", {"PriceList": [product(usd)] if usd else [], "FormatVersion": "aws_v1"},
                          {"ServiceCode": service, "Filters": filters})

    expect("AmazonEC2", {"instanceType": "g6.xlarge", "operatingSystem": "Linux", "tenancy": "Shared",
                         "preInstalledSw": "NA", "capacitystatus": "Used",
                         "licenseModel": "No License required"}, "0.8048000000")
    for part, (service, fields) in FIXED_QUERIES.items():
        fields = {k: v.replace("{prefix}", USAGE_PREFIX["us-west-2"]) for k, v in fields.items()}
        expect(service, fields, None if part == "publicIpv4Hour" else "0.1")
    with stub:
        book = PriceBook.from_api(["us-west-2"], ["g6.xlarge"], client=client, today="2026-12-05")
        stub.assert_no_pending_responses()
    assert book.instance("us-west-2", "g6.xlarge").usd == 0.8048
    assert book.sources["pricing-api"]["date"] == "2026-12-05"
    assert set(book.regions["us-west-2"]["fixed"]) == set(FIXED_PARTS) - {"publicIpv4Hour"}, \
        "a part the API has no product for is left out, never guessed"
    assert "publicIpv4Hour" in book.missing_message("us-west-2", ["publicIpv4Hour"])


def test_prices_from_the_api_need_credentials(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_CONFIG_FILE=str(tmp_path / "none"))
    proc = subprocess.run([sys.executable, "-m", "gpuscale", "plan", "--stack", "prod", "--prices", "api"], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "--prices api" in proc.stderr and "use --prices file" in proc.stderr
