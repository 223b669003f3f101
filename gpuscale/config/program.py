"""The stack config of a running Pulumi program (`pulumi up`, `pulumi preview`, or the offline plan's mocks).

`load_program_config()` is what a program calls to feed `GpuPlatform`: this repository's __main__.py with the
`gpuscale` namespace, a user's own program with its own (`load_program_config("platform")` reads
`platform:nodeGroups`, ...).
"""

from __future__ import annotations

import pulumi

from ..instance_types import InstanceTypeCatalog, PulumiInstanceTypes
from .namespace import PROJECT
from .stack import StackConfig, load_stack_config


def program_config_values() -> dict[str, object]:
    """The program's config as full keys to decoded values: every key of every namespace.

    Every key is passed on, known or not, so a misspelt key (`gpuscale:agnet`) or namespace (`gpuScale:agent`) is
    rejected by validation instead of being silently ignored. The runtime's config map is the only place that lists
    the keys that are set. Values encrypted in the stack file arrive decrypted (the engine decrypts them, nested
    ones too); `is_secret_key` says which keys they were.
    """
    from pulumi.runtime.config import CONFIG, get_config_env

    values: dict[str, object] = {"aws:region": pulumi.Config("aws").get("region")}
    for key in sorted({*CONFIG.get(), *get_config_env()}):
        namespace, _, name = key.partition(":")
        bag = pulumi.Config(namespace)
        try:
            values[key] = bag.get_object(name)
        except pulumi.ConfigTypeError:  # a plain string that is not JSON: passed on for validation to judge
            values[key] = bag.get(name)
    return {k: v for k, v in values.items() if v is not None}


def is_secret_key(key: str) -> bool:
    """Whether the stack file encrypts (part of) the config key `key` (full key, `gpuscale:alerts`)."""
    from pulumi.runtime.config import is_config_secret

    return is_config_secret(key)


def load_program_config(namespace: str = PROJECT, instance_types: InstanceTypeCatalog | None = None) -> StackConfig:
    """The running program's stack config, validated (every mistake reported at once, before any resource),
    from `namespace`'s keys and the providers'; GPU counts from EC2's instance type data unless `instance_types`."""
    return load_stack_config(program_config_values(), pulumi.get_stack(),
                             instance_types or PulumiInstanceTypes(), namespace=namespace)
