"""gpuscale:cluster.apiEndpoint: private only, or public from given networks; refused with the key, value and rule."""

from __future__ import annotations

import copy

import pytest
from test_config_validation import CATALOG, ROOT, base

from gpuscale.plan.checks import run_checks
from gpuscale.components.endpoint_access import endpoint_access_problem, open_to_internet
from gpuscale.config import ConfigError, load_stack_config, load_stack_file


def load(endpoint=None, **cluster):
    cfg = copy.deepcopy(base())
    if endpoint is not None:
        cfg["gpuscale:cluster"]["apiEndpoint"] = endpoint
    cfg["gpuscale:cluster"].update(cluster)
    return load_stack_config(cfg, "test", CATALOG)


@pytest.mark.parametrize("endpoint, key, allowed", [
    ({"publicAccessCidrs": ["10.0.0.0/8"]}, "publicAccessCidrs[0]", "EKS refuses reserved ranges"),
    ({"publicAccessCidrs": ["203.0.113.0/24"]}, "publicAccessCidrs[0]", "globally routable"),
    ({"publicAccessCidrs": ["52.94.0.1/16"]}, "publicAccessCidrs[0]", "CIDR notation"),
    ({"publicAccessCidrs": ["2001:db8::/32"]}, "publicAccessCidrs[0]", "IPv6 blocks only on IPv6 clusters"),
    ({"publicAccessCidrs": []}, "publicAccessCidrs", "at least 1"),
    ({"publicAccess": False, "publicAccessCidrs": ["52.94.0.0/16"]}, "publicAccessCidrs", "public endpoint off"),
    ({"publicAccess": "no"}, "publicAccess", "true or false"),
    ({"privateAccess": False}, "privateAccess", "known keys here are publicAccess, publicAccessCidrs"),
])
def test_bad_endpoint_access_is_refused_naming_the_key(endpoint, key, allowed):
    with pytest.raises(ConfigError) as err:
        load(endpoint)
    assert err.value.key == f"gpuscale:cluster.apiEndpoint.{key}", str(err.value)
    assert allowed in str(err.value)


def test_existing_cluster_keeps_its_own_endpoint():
    with pytest.raises(ConfigError) as err:
        load({"publicAccess": False}, mode="existing", vpcCidr=None, systemNodes=None, kubernetesVersion="1.33")
    assert err.value.key == "gpuscale:cluster.apiEndpoint" and "only with mode: create" in str(err.value)


def test_endpoint_defaults_to_aws_and_reads_private_only_and_given_networks():
    assert (load().cluster.public_access, load().cluster.public_access_cidrs) == (True, ("0.0.0.0/0",))
    private = load({"publicAccess": False}).cluster
    assert (private.public_access, private.public_access_cidrs) == (False, ())
    narrow = load({"publicAccessCidrs": ["52.94.0.0/16", "3.5.140.2/32"]}).cluster
    assert narrow.public_access_cidrs == ("52.94.0.0/16", "3.5.140.2/32")


def test_component_and_config_share_the_rule():
    problem = endpoint_access_problem(True, ["192.168.0.0/16"])
    assert (problem.field, problem.value) == ("public_access_cidrs[0]", "192.168.0.0/16")
    assert problem.config_key("gpuscale:cluster.apiEndpoint") == "gpuscale:cluster.apiEndpoint.publicAccessCidrs[0]"
    assert endpoint_access_problem(False, None) is None and endpoint_access_problem(True, ["0.0.0.0/0"]) is None


def test_whole_internet_is_one_definition():
    assert open_to_internet(True, None) == ("0.0.0.0/0",), "unset CIDRs are AWS's default"
    assert open_to_internet(None, ["0.0.0.0/1", "128.0.0.0/1"]) == ("0.0.0.0/1", "128.0.0.0/1")
    assert open_to_internet("true", ["::/0"]) == ("::/0",)
    assert open_to_internet(True, ["52.94.0.0/16"]) == () and open_to_internet(False, ["0.0.0.0/0"]) == ()
    assert open_to_internet("false", None) == ()


def test_check_warns_when_the_api_is_open_to_the_internet():
    def findings(cfg):
        return [f for f in run_checks(cfg) if f.check == "api-endpoint"]

    (found,) = findings(load({"publicAccessCidrs": ["0.0.0.0/1", "128.0.0.0/1"]}))
    assert found.severity == "warning" and "0.0.0.0/1, 128.0.0.0/1" in found.message
    assert "gpuscale:cluster.apiEndpoint.publicAccessCidrs" in found.settings
    assert findings(load({"publicAccessCidrs": ["52.94.0.0/16"]})) == []
    assert findings(load({"publicAccess": False})) == []


def test_prod_is_private_only_and_dev_open_on_purpose():
    prod, dev = load_stack_file(ROOT, "prod"), load_stack_file(ROOT, "dev")
    assert not open_to_internet(prod.cluster.public_access, prod.cluster.public_access_cidrs)
    assert not [f for f in run_checks(prod) if f.check == "api-endpoint"]
    (found,) = [f for f in run_checks(dev) if f.check == "api-endpoint"]
    assert "accepts it" in found.message, "dev accepts the policy finding for the same exposure"
