"""The gpuscale tools: stack config, offline plan, diff, checks and simulator."""
