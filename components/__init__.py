"""Pulumi components for GPU capacity that scales itself."""
