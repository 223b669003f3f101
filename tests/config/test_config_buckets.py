"""gpuscale:modelBuckets: every s3:// model is in a bucket the stack creates or declares existing; bad entries are
refused with the key, the value and the rule."""

from __future__ import annotations

import pytest
from test_config_services import with_service, svc
from test_config_validation import CATALOG

from gpuscale.config import ConfigError, load_stack_config
from gpuscale.config.buckets import ModelBucketConfig


def load(buckets, uri="s3://models-bucket/chat"):
    cfg = with_service()
    if buckets is None:
        cfg.pop("gpuscale:modelBuckets")
    else:
        cfg["gpuscale:modelBuckets"] = buckets
    svc(cfg)["model"]["storageUri"] = uri
    return load_stack_config(cfg, "test", CATALOG)


def test_a_listed_bucket_is_created_unless_existing():
    assert load([{"name": "models-bucket"}]).model_buckets == (
        ModelBucketConfig("models-bucket", False, "gpuscale:modelBuckets[0]"),)
    both = load([{"name": "shared-models", "existing": True}, {"name": "models-bucket"}]).model_buckets
    assert [(b.name, b.existing) for b in both] == [("shared-models", True), ("models-bucket", False)]


def test_a_volume_model_needs_no_bucket():
    assert load(None, "pvc://models/chat").model_buckets == ()


@pytest.mark.parametrize("buckets, uri, key, allowed", [
    (None, "s3://models-bucket/chat", "gpuscale:services[0].model.storageUri",
     "a model in a bucket of gpuscale:modelBuckets (created by the stack, or listed with existing: true): (none "
     "listed); add {name: models-bucket}"),
    ([{"name": "model-bucket"}], "s3://models-bucket/chat", "gpuscale:services[0].model.storageUri", "model-bucket"),
    ([{"name": "Models"}], "s3://models-bucket/chat", "gpuscale:modelBuckets[0].name", "an S3 bucket name"),
    ([{"name": "192.168.1.10"}], "s3://models-bucket/chat", "gpuscale:modelBuckets[0].name", "an IP address"),
    ([{"name": "models..bucket"}], "s3://models-bucket/chat", "gpuscale:modelBuckets[0].name", "no two dots"),
    ([{"name": "models-s3alias"}], "s3://models-bucket/chat", "gpuscale:modelBuckets[0].name", "-s3alias"),
    ([{"name": "models-bucket"}, {"name": "models-bucket"}], "s3://models-bucket/chat",
     "gpuscale:modelBuckets[1].name", "named once"),
    ([{"name": "models-bucket", "existing": "yes"}], "s3://models-bucket/chat",
     "gpuscale:modelBuckets[0].existing", "true or false"),
    ([{"name": "models-bucket", "versioned": True}], "s3://models-bucket/chat",
     "gpuscale:modelBuckets[0].versioned", "known keys here are"),
    ({"name": "models-bucket"}, "s3://models-bucket/chat", "gpuscale:modelBuckets", "a list"),
])
def test_bad_bucket_config_is_refused_naming_key_and_allowed(buckets, uri, key, allowed):
    with pytest.raises(ConfigError) as err:
        load(buckets, uri)
    assert err.value.key == key, str(err.value)
    where = f" ({err.value.where})" if err.value.where else ""
    assert str(err.value).startswith(f"{key}{where}: {err.value.value!r} is not allowed"), str(err.value)
    assert allowed in str(err.value), str(err.value)


def test_the_shipped_stacks_create_their_model_buckets():
    from pathlib import Path

    from gpuscale.config import load_stack_file

    root = Path(__file__).resolve().parents[2]
    for stack in ("dev", "prod"):
        config = load_stack_file(root, stack)
        assert [(b.name, b.existing) for b in config.model_buckets] == [(f"gpuscale-{stack}-models", False)]
