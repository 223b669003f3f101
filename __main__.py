"""The gpuscale Pulumi program: this project's stack config (namespace `gpuscale`, stacks/Pulumi.<stack>.yaml),
read once and validated before any resource, fed to the GpuPlatform component, and the outputs other tools read."""

import pulumi

from gpuscale.components.platform import GpuPlatform
from gpuscale.config import PROJECT
from gpuscale.config.program import is_secret_key, load_program_config

config = load_program_config(PROJECT)
platform = GpuPlatform("gpuscale", {"config": config, "secret_alert_email": is_secret_key(f"{PROJECT}:alerts")})

pulumi.export("clusterName", platform.cluster_name)
pulumi.export("vpcId", platform.vpc_id)
pulumi.export("privateSubnetIds", platform.private_subnet_ids)
pulumi.export("nodeRoleArn", platform.node_role_arn)
pulumi.export("oidcIssuerUrl", platform.oidc_issuer_url)
pulumi.export("oidcProviderArn", platform.oidc_provider_arn)
pulumi.export("nodeGroups", platform.node_groups)
pulumi.export("autoScalingGroups", platform.auto_scaling_groups)
for key, output in {"queues": platform.queues, "dashboardName": platform.dashboard_name,
                    "alertTopicArn": platform.alert_topic_arn}.items():
    if output is not None:  # declared only where the config asks for them
        pulumi.export(key, output)
