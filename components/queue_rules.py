"""Rules for the SQS queues a stack creates as wake or demand signals, shared by the stack config
(gpuscale/config/queues.py) and the SignalQueue component. Pure data, so the config reads them without Pulumi."""

from __future__ import annotations

from .arg_rules import Refusal

MAX_QUEUE_NAME = 80
"""SQS queue names: 1 to 80 characters (letters, digits, hyphens, underscores; FIFO names end in .fifo)."""
FIFO_SUFFIX = ".fifo"
DEAD_LETTER_SUFFIX = "-dlq"
VISIBILITY_TIMEOUT_RANGE = (0, 43_200)
"""SetQueueAttributes VisibilityTimeout: 0 seconds to 12 hours."""
RETENTION_RANGE = (60, 1_209_600)
"""MessageRetentionPeriod: one minute to 14 days."""
MAX_RECEIVE_RANGE = (1, 1000)
"""RedrivePolicy maxReceiveCount."""
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_RETENTION = 345_600
"""SQS's own defaults: 30 s invisible after a receive, messages kept 4 days."""
DEFAULT_MAX_RECEIVES = 5
"""A request received five times without being deleted crashed or timed out its worker five times: it is set
aside in the dead-letter queue instead of occupying GPUs (and holding the group awake) forever."""
DEAD_LETTER_RETENTION = RETENTION_RANGE[1]
"""The dead-letter queue keeps messages the longest SQS allows: a standard queue's message keeps its original enqueue
time when moved, so a shorter retention there would drop failures before anyone looks at them."""


def dead_letter_queue_name(queue_name: str) -> str:
    """The dead-letter queue's name: `<name>-dlq`, FIFO queues' `<base>-dlq.fifo` (a FIFO queue's DLQ is FIFO)."""
    if queue_name.endswith(FIFO_SUFFIX):
        return queue_name[:-len(FIFO_SUFFIX)] + DEAD_LETTER_SUFFIX + FIFO_SUFFIX
    return queue_name + DEAD_LETTER_SUFFIX




def created_queue_problem(queue_name: str, visibility_timeout_seconds: int, message_retention_seconds: int,
                          max_receive_count: int) -> Refusal | None:
    """None when SQS would create this queue and its dead-letter queue, else the first value it would refuse."""
    if len(dead_letter_queue_name(queue_name)) > MAX_QUEUE_NAME:
        return Refusal("queue_name", queue_name,
                            f"a name of at most {MAX_QUEUE_NAME - len(DEAD_LETTER_SUFFIX)} characters before any "
                            f".fifo: its dead-letter queue {dead_letter_queue_name(queue_name)!r} must fit SQS's "
                            f"{MAX_QUEUE_NAME}")
    for field, value, (lo, hi) in (("visibility_timeout_seconds", visibility_timeout_seconds,
                                    VISIBILITY_TIMEOUT_RANGE),
                                   ("message_retention_seconds", message_retention_seconds, RETENTION_RANGE),
                                   ("max_receive_count", max_receive_count, MAX_RECEIVE_RANGE)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            return Refusal(field, value, f"an integer in [{lo}, {hi}]")
    return None
