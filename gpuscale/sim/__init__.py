"""A simulator of the configured scaling under a traffic trace: cost and latency before `pulumi up`."""
