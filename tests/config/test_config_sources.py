"""Where config comes from: regions the AWS SDK knows, known namespaces only, readable YAML errors, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_config_validation import CATALOG, base

from gpuscale.config import ConfigError, load_stack_config, read_stack_values, secret_paths
from gpuscale.config.project import YamlSyntaxError
from gpuscale.config.reader import OFFLINE_SECRET
from gpuscale.config.cluster import aws_regions


def load(cfg: dict):
    return load_stack_config(cfg, "test", CATALOG)


@pytest.mark.parametrize("region", ["us-west-2", "eu-central-2", "ap-southeast-7", "us-gov-west-1", "cn-north-1"])
def test_regions_of_every_partition_are_accepted(region):
    cfg = base()
    cfg["aws:region"] = region
    assert load(cfg).region == region


@pytest.mark.parametrize("region, hint", [("us-west-5", "did you mean us-west-2?"), ("eu-middle-1", None),
                                          ("us-west2", "did you mean us-west-2?")])
def test_regions_the_sdk_does_not_know_are_refused(region, hint):
    cfg = base()
    cfg["aws:region"] = region
    with pytest.raises(ConfigError) as caught:
        load(cfg)
    assert caught.value.key == "aws:region" and caught.value.value == region
    assert "the regions botocore knows: " in caught.value.allowed and "us-east-1" in caught.value.allowed
    if hint:
        assert hint in caught.value.allowed


def test_the_region_list_is_botocores_own_data():
    import botocore.loaders

    partitions = botocore.loaders.create_loader().load_data("endpoints")["partitions"]
    assert set(aws_regions()) == {r for p in partitions for r in p["regions"]}
    assert len(aws_regions()) > 30


@pytest.mark.parametrize("key, hint", [("gpuScale:agent", "did you mean gpuscale:agent?"),
                                       ("gpuscal:agent", "did you mean gpuscale:agent?"),
                                       ("awz:region", "did you mean aws:region?"),
                                       ("acme:agent", None)])
def test_keys_in_unknown_namespaces_are_refused(key, hint):
    cfg = base()
    cfg[key] = {"prometheusPort": 9500}
    with pytest.raises(ConfigError) as caught:
        load(cfg)
    assert caught.value.key == key
    assert "a key in a known namespace (gpuscale, aws, kubernetes, docker-build, pulumi)" in caught.value.allowed
    if hint:
        assert hint in caught.value.allowed


def test_keys_of_the_providers_and_pulumi_namespaces_pass():
    cfg = base()
    cfg.update({"aws:profile": "dev", "kubernetes:enableServerSideApply": "true", "pulumi:tags": {"team": "ml"}})
    assert load(cfg).region == "us-west-2"


def test_a_yaml_syntax_error_names_the_file_and_line_in_words(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("config:\n  aws:region: us-west-2\n  gpuscale:cluster:\n    name: c1\n   mode: create\n")
    with pytest.raises(YamlSyntaxError) as caught:
        read_stack_values(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 5, column 4: the file is not valid YAML: "), message
    assert "mode: create" in message and "Traceback" not in message
    assert isinstance(caught.value, ConfigError)


def test_nested_secrets_read_as_secret_offline(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump({"config": {"aws:region": "us-west-2", "gpuscale:alerts": {
        "snsTopicName": "gpu-alerts", "email": {"secure": "v1:AAAABBBB"}}}}))
    values = read_stack_values(path)
    assert values["gpuscale:alerts"]["email"] == OFFLINE_SECRET
    assert secret_paths(values) == ["gpuscale:alerts.email"]
    cfg = {**base(), "gpuscale:alerts": values["gpuscale:alerts"]}
    assert load(cfg).alerts.email == OFFLINE_SECRET, "an encrypted value is not judged offline"
