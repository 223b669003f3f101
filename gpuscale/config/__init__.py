"""Stack config: read once, validated into typed objects (see `load_stack_config`)."""

from .reader import ConfigError, ConfigErrors, Section
from .agent import AgentConfig
from .cluster import ClusterConfig
from .groups import AutoScalingGroupConfig, NodeGroupConfig, WarmPoolConfig
from .stack import PROJECT, StackConfig, load_stack_config
from .files import load_stack_file, read_stack_values, secret_paths, stack_file_path

__all__ = ["PROJECT", "AgentConfig", "AutoScalingGroupConfig", "ClusterConfig", "ConfigError", "ConfigErrors",
           "NodeGroupConfig", "Section", "StackConfig", "WarmPoolConfig", "load_stack_config", "load_stack_file",
           "read_stack_values", "secret_paths", "stack_file_path"]
