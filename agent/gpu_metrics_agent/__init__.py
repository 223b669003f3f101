"""The GPU metrics agent: NVML to CloudWatch and Prometheus."""
