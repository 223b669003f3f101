"""The stack config read from a program's own config namespace (`platform:nodeGroups` instead of
`gpuscale:nodeGroups`), for programs that import the components and keep their own namespace.

The readers name every key with this project's namespace; a program with another one has its keys renamed in on the
way in, and every error's key and text renamed back on the way out, so a message names the key the user wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .reader import ConfigError, ConfigErrors

PROJECT = "gpuscale"
"""This project's config namespace: the keys the readers know (`gpuscale:nodeGroups`)."""

PROVIDER_NAMESPACES = ("aws", "kubernetes", "docker-build", "pulumi")
"""Namespaces of the providers and the engine that a program's config holds beside its own."""

NAMESPACE_PATTERN = r"[A-Za-z][A-Za-z0-9_.-]*"
"""A Pulumi project name, which names its config namespace: no colon, starts with a letter."""


def check_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str) or not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise ConfigErrors([ConfigError("namespace", namespace, "a config namespace: a Pulumi project name, letters, "
                                        "digits, '_', '.', '-', starting with a letter, e.g. gpuscale")])
    return namespace


def as_project_keys(values: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """`values` (full keys) with `namespace`'s keys renamed into this project's; keys of the providers' namespaces
    kept, every other namespace left out (the program's own business, not the platform's)."""
    if namespace == PROJECT:
        return dict(values)
    renamed: dict[str, Any] = {}
    for key, value in values.items():
        space, _, name = key.partition(":")
        if space == namespace:
            renamed[f"{PROJECT}:{name}"] = value
        elif space in PROVIDER_NAMESPACES:
            renamed[key] = value
    return renamed


def in_namespace(text: str, namespace: str) -> str:
    """`text` with the config keys in this project's namespace (`gpuscale:nodeGroups[0]`) named in `namespace`."""
    return re.sub(rf"(?<![\w.-]){PROJECT}:", f"{namespace}:", text)


def renamed_errors(errors: ConfigError, namespace: str) -> ConfigErrors:
    """`errors` with this project's namespace in their keys and texts replaced by `namespace`."""
    def rename(text: str) -> str:
        return in_namespace(text, namespace)

    subject = getattr(errors, "subject", "the config")
    return ConfigErrors([ConfigError(rename(e.key), e.value, rename(e.allowed), e.where)
                         for e in getattr(errors, "errors", (errors,))], rename(subject))
