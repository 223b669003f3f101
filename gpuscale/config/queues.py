"""`gpuscale:queues`: the SQS queues the stack's wake and demand signals name, created by the stack unless they
already exist.

Every queue a signal names (`scaling.demand`, `scaling.scaleToZero.wake`, and any other signal `queue_uses` lists)
is created with a dead-letter queue and server-side encryption (components/signal_queue.py), with SQS's defaults or
the settings of its entry here; an entry with `existing: true` is looked up by name instead and left alone. An entry
no signal names is refused (a typo would otherwise create nothing and say nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..components.queue_rules import (DEFAULT_MAX_RECEIVES, DEFAULT_RETENTION, DEFAULT_VISIBILITY_TIMEOUT,
                                      created_queue_problem)
from .reader import ConfigError, Section
from .scaling import SQS_QUEUE_PATTERN

if TYPE_CHECKING:
    from .stack import StackConfig

KEY = "gpuscale:queues"


@dataclass(frozen=True)
class QueueUse:
    """One place in the config that names a queue as a signal."""

    queue_name: str
    key: str
    """The config key naming it, e.g. gpuscale:autoScalingGroups[0].scaling.demand.queueName."""
    consumer_group: str | None
    """The Auto Scaling group whose instances take the queue's messages (their role may receive and delete them);
    None when the consumers run elsewhere (pods with their own role)."""


@dataclass(frozen=True)
class QueueConfig:
    name: str
    existing: bool
    """True: the queue exists; the stack looks it up by name and changes nothing about it."""
    visibility_timeout_seconds: int
    message_retention_seconds: int
    max_receive_count: int
    """Receives before a message moves to the dead-letter queue."""
    uses: tuple[QueueUse, ...]
    entry_key: str | None = None
    """The queue's entry in gpuscale:queues (e.g. gpuscale:queues[0]); None when it has none (SQS's defaults)."""

    def setting_key(self, name: str) -> str:
        """Where a setting of this queue is (or would be) written."""
        return f"{self.entry_key}.{name}" if self.entry_key else f"{KEY} (an entry for {self.name}).{name}"

    @property
    def consumer_groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u.consumer_group for u in self.uses if u.consumer_group is not None))


def queue_uses(config: StackConfig) -> list[QueueUse]:
    """Every queue the stack's signals name, in config order: the one place a new kind of signal (a service's
    KEDA wake queue) adds its queues."""
    uses = []
    for i, g in enumerate(config.auto_scaling_groups):
        s, key = g.scaling, f"gpuscale:autoScalingGroups[{i}].scaling"
        if s is None:
            continue
        demand = s.demand.signal if s.demand else None
        # A scaleToZero without its own wake wakes on the demand signal itself: named once, in demand.
        wake = s.scale_to_zero.wake if s.scale_to_zero and s.scale_to_zero.wake is not demand else None
        for path, signal in ((f"{key}.demand", demand), (f"{key}.scaleToZero.wake", wake)):
            if signal is not None and signal.kind == "sqs":
                uses.append(QueueUse(signal.queue_name, f"{path}.queueName", g.name))
    return uses


def read_queues(value: Any, uses: list[QueueUse]) -> tuple[QueueConfig, ...]:
    """One QueueConfig per queue the signals name, with its entry's settings (SQS's defaults without one)."""
    entries: dict[str, Section] = {}
    top = Section({"queues": value if value is not None else []}, "gpuscale:")
    for s in top.sections("queues"):
        name = s.str("name", pattern=SQS_QUEUE_PATTERN,
                     describe="an SQS queue name: 1 to 80 letters, digits, hyphens or underscores (.fifo allowed)")
        if name in entries:
            raise s.fail("name", name, f"a queue named once in {KEY} ({entries[name].path} names it already)")
        if name not in {u.queue_name for u in uses}:
            raise s.fail("name", name, "a queue a wake or demand signal names: "
                                       + (", ".join(sorted({u.queue_name for u in uses})) or "(none does)"))
        entries[name] = s
    queues = []
    for name in dict.fromkeys(u.queue_name for u in uses):
        s = entries.get(name) or Section({"name": name}, f"{KEY}[{name}]")
        s.str("name")
        existing = s.bool("existing", False)
        if existing:
            for k in ("visibilityTimeoutSeconds", "messageRetentionSeconds", "maxReceiveCount"):
                if s.has(k):
                    raise s.fail(k, s.data[k], f"{k} only for a queue the stack creates (existing: false); an "
                                               "existing queue keeps its own settings")
        visibility = s.int("visibilityTimeoutSeconds", DEFAULT_VISIBILITY_TIMEOUT)
        retention = s.int("messageRetentionSeconds", DEFAULT_RETENTION)
        receives = s.int("maxReceiveCount", DEFAULT_MAX_RECEIVES)
        problem = None if existing else created_queue_problem(name, visibility, retention, receives)
        if problem is not None:
            # queue_name is the entry's name; the other Args are its keys in camelCase. Without an entry, the
            # signal that names the queue is where to look.
            where = problem.config_key(s.path).replace(".queueName", ".name") if name in entries \
                else next(u.key for u in uses if u.queue_name == name)
            raise ConfigError(where, problem.value, problem.allowed)
        s.finish()
        queues.append(QueueConfig(name, existing, visibility, retention, receives,
                                  tuple(u for u in uses if u.queue_name == name),
                                  entries[name].path if name in entries else None))
    return tuple(queues)
