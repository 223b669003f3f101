"""``python -m gpu_metrics_agent``: the same as the ``gpu-metrics-agent`` command."""

from .cli import main

raise SystemExit(main())
