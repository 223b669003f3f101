"""GpuAutoScalingGroup: a self-managed Auto Scaling group of GPU instances running the GPU metrics agent."""

import base64
import json
import re
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpu_metrics_agent.catalogue import NAMESPACE
from gpu_metrics_agent.config import DEFAULT_PROMETHEUS_PORT
from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section
from gpuscale.config.cluster import CIDR_PATTERN, read_region
from gpuscale.config.groups import (DEFAULT_AMI_PARAMETER, ami_parameter_architecture, check_warm_pool_allowed,
                                    read_asg_settings, read_gpu_instance_types, read_group_sizes,
                                    read_instance_type_names, read_warm_pool)
from gpuscale.instance_types import PulumiInstanceTypes

from ._docs import documented
from ._iam import assume_role_policy, attach_managed_policies
from .agent_user_data import LIFECYCLE_HOOK, AgentSettings, as_agent_settings, render_user_data
from .signal_queue import consumer_statement
from .workload_startup import StartupArgs, render_launch_user_data, startup_problem

GROUP_METRICS = ["GroupMinSize", "GroupMaxSize", "GroupDesiredCapacity", "GroupInServiceInstances",
                 "GroupPendingInstances", "GroupTerminatingInstances", "GroupTotalInstances",
                 "WarmPoolWarmedCapacity", "WarmPoolPendingCapacity"]
"""Group metrics published to CloudWatch (free at one-minute granularity), for dashboards and alarms."""
GROUP_TAG = "gpuscale:group"
"""Tag on the group (and its instances): `<stack>/<component name>`. The instance role may complete lifecycle
actions only on the group carrying its own value (the group's ARN does not exist yet when the role is created)."""

IMDS_TAG_KEY = re.compile(r"(?!\.{1,2}$|_index$)[0-9a-zA-Z\-_+=,.@:]{1,255}")
"""Tag keys EC2 accepts on an instance whose tags are in its metadata: no "/" or spaces, not ".", ".." or "_index"."""


WARM_POOL_ALIASES = {"maxPreparedCapacity": "max_group_prepared_capacity"}
"""The stack config's warm pool key and AWS's own name (MaxGroupPreparedCapacity), which the Args keep."""


class WarmPoolArgs(TypedDict):
    min_size: NotRequired[int]
    """Instances kept in the pool even when the group is at its maximum. Default 0."""
    max_group_prepared_capacity: NotRequired[int]
    """Cap on instances in the group plus the pool. Default unset: the pool holds up to max_size minus desired."""
    pool_state: NotRequired[str]
    """"Stopped" (pay for EBS only), "Hibernated" or "Running". Default "Stopped"."""
    reuse_on_scale_in: NotRequired[bool]
    """Return instances to the pool on scale-in instead of terminating them. Default True."""


class GpuAutoScalingGroupArgs(TypedDict):
    vpc_id: pulumi.Input[str]
    """VPC of the instances' security group."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets the instances launch in."""
    instance_types: Sequence[str]
    """GPU instance types, most preferred first. More than one, or any Spot share, needs a mixed instances policy."""
    min_size: int
    """Floor of the group."""
    max_size: int
    """Ceiling of the group."""
    agent_bucket_arn: pulumi.Input[str]
    """ARN of the bucket holding the agent archive (AgentBundle.bucket_arn)."""
    agent_bucket_name: pulumi.Input[str]
    """Name of that bucket (AgentBundle.bucket_name)."""
    agent_object_key: pulumi.Input[str]
    """Key of the agent archive (AgentBundle.object_key); the only object the instances may read."""
    region: str
    """Region the stack deploys to: where the user data downloads the archive from."""
    ami_parameter: NotRequired[str]
    """Public SSM parameter holding the GPU AMI id. Default: the Deep Learning Base AMI (NVIDIA driver, AL2023)."""
    on_demand_base_capacity: NotRequired[int]
    """Instances always bought on demand before any Spot. Default 0."""
    on_demand_percentage_above_base: NotRequired[int]
    """Share of on-demand above the base, 0 to 100; the rest is Spot. Default 100 (no Spot)."""
    spot_allocation_strategy: NotRequired[str]
    """How Spot capacity is spread over pools. Default "price-capacity-optimized" (fewest interruptions for the
    price)."""
    root_volume_gib: NotRequired[int]
    """Encrypted gp3 root volume size (models and images live here). Default 200."""
    root_device_name: NotRequired[str]
    """Root device of the AMI. Default "/dev/xvda" (Amazon Linux)."""
    health_check_grace_seconds: NotRequired[int]
    """Time after launch before failed health checks count: GPU instances load drivers and models. Default 600."""
    instance_warmup_seconds: NotRequired[int]
    """Time before a new instance's metrics count toward scaling and instance refresh. Default 300."""
    warm_pool: NotRequired[WarmPoolArgs]
    """Pre-initialized instances to start instead of launching. Not allowed with Spot or several types (AWS refuses
    warm pools on groups with a mixed instances policy). Default none."""
    agent: NotRequired[AgentSettings]
    """Options of the agent on each instance. Default AgentSettings()."""
    ssm_access: NotRequired[bool]
    """Attach AmazonSSMManagedInstanceCore: a shell through Session Manager with no SSH and no open ports.
    Default True."""
    request_queue_arns: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """SQS queues the instances' workload takes requests from (SignalQueue.queue_arn, or a looked-up queue's ARN):
    the instance role may receive, delete and extend messages on exactly these. Default none."""
    metrics_ingress_cidrs: NotRequired[Sequence[str]]
    """Networks allowed to scrape the agent's Prometheus port. Default none (no inbound traffic at all)."""
    startup: NotRequired[StartupArgs]
    """The user's own startup beside the agent's: a container run with its GPUs (a systemd unit, on every boot),
    extra user data, or both; the agent's install runs first and is unaffected. Default none: the agent only."""
    workload_ingress_cidrs: NotRequired[Sequence[str]]
    """Networks allowed to reach the startup container's published ports. Default none (the ports answer only on
    the instance)."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource and, through the launch template, on instances and volumes. Default none."""


def _agent_settings(s: Section, name: str) -> AgentSettings:
    try:
        return as_agent_settings(s.raw(name))
    except TypeError:  # an unknown field, or not a mapping
        s.report(name, s.raw(name), "an AgentSettings (gpuscale.components.agent_user_data) or a mapping of its "
                 "fields: " + ", ".join(AgentSettings.__dataclass_fields__))
        return AgentSettings()


def check_args(s: Section) -> None:
    """The rules of GpuAutoScalingGroupArgs: the stack config's Auto Scaling group rules, and what AWS would refuse
    of the rest, before any resource is declared."""
    for key in ("vpc_id", "subnet_ids", "agent_bucket_arn", "agent_bucket_name", "agent_object_key"):
        s.input(key)
    lo, hi = read_group_sizes(s)
    ami_parameter, _, pct, *_ = read_asg_settings(s, hi)
    # EC2's own description of each type (a blocking lookup, as the stack config makes): GPUs, NVIDIA, the AMI's
    # architecture.
    read_gpu_instance_types(s, PulumiInstanceTypes(), ami_parameter_architecture(ami_parameter))
    types = read_instance_type_names(s)
    read_region(s)
    read_warm_pool(s, hi)
    check_warm_pool_allowed(s, types, pct)
    s.str("root_device_name", "/dev/xvda", pattern=r"/dev/[a-z0-9]+", describe="a device name such as /dev/xvda")
    # AgentSettings from Python, or the plain object another language's program passes through the provider.
    agent = s.input("agent", AgentSettings(), read=lambda name, default: _agent_settings(s, name))
    s.bool("ssm_access", True)
    for cidrs in ("metrics_ingress_cidrs", "workload_ingress_cidrs"):
        s.input(cidrs, (), read=lambda name, default: s.str_list(
            name, default, pattern=CIDR_PATTERN, describe="IPv4 networks in CIDR notation, e.g. 10.0.0.0/16"))
    s.input("request_queue_arns", [])
    startup = s.input("startup", None)
    if startup is not None:
        agent = agent if isinstance(agent, AgentSettings) else AgentSettings()
        port = agent.prometheus_port or DEFAULT_PROMETHEUS_PORT
        problem = startup_problem(startup, reserved_ports=(port,))  # the stack config's startup rule
        s.refuse(problem, "startup.")
        if problem is None:
            # EC2's size limit, before anything is declared: the bucket and key are outputs, so the longest bucket
            # name S3 allows and a generous key stand in for them (the rendering checks the real ones again).
            try:
                render_launch_user_data(render_user_data("b" * 63, "k" * 200, s.raw("region"), agent), startup)
            except ValueError as e:
                s.report("startup", "(the rendered user data)", str(e).split("allowed: ", 1)[-1])
    s.input("tags", {}, read=lambda name, default: s.str_map(
        name, default, key_pattern=IMDS_TAG_KEY.pattern,
        describe="tag keys of 1 to 255 letters, digits and + - = . , _ @ : (the instances show their tags in instance "
                 "metadata, where EC2 refuses other keys and the group would launch nothing) to string values"))


def uses_mixed_instances(args: GpuAutoScalingGroupArgs) -> bool:
    return len(args["instance_types"]) > 1 or args.get("on_demand_percentage_above_base", 100) < 100


@documented
class GpuAutoScalingGroup(pulumi.ComponentResource):
    """GPU instances that install and run the metrics agent, for fleets scaled by CloudWatch policies."""

    asg_name: pulumi.Output[str]
    """Name of the Auto Scaling group (GpuScalingPoliciesArgs.asg_name)."""
    asg_arn: pulumi.Output[str]
    """ARN of the Auto Scaling group (GpuScalingPoliciesArgs.asg_arn)."""
    launch_template_id: pulumi.Output[str]
    """ID of the launch template (user data, IMDSv2, encrypted root volume)."""
    instance_role_name: pulumi.Output[str]
    """Name of the instances' IAM role (GpuScalingPoliciesArgs.instance_role_name)."""
    instance_role_arn: pulumi.Output[str]
    """ARN of the instances' IAM role."""
    security_group_id: pulumi.Output[str]
    """Security group of the instances (no inbound traffic unless metrics_ingress_cidrs)."""

    def __init__(self, name: str, args: GpuAutoScalingGroupArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("GpuAutoScalingGroup", name, args, GpuAutoScalingGroupArgs, check_args, WARM_POOL_ALIASES)
        super().__init__("gpuscale:index:GpuAutoScalingGroup", name, None, opts)
        tags = dict(args.get("tags") or {})
        child = pulumi.ResourceOptions(parent=self)
        types = list(args["instance_types"])
        mixed = uses_mixed_instances(args)
        group_tag = f"{pulumi.get_stack()}/{name}"

        role = aws.iam.Role(f"{name}-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                            description=f"GPU instances of {name} (gpuscale)", tags=tags, opts=child)
        object_arn = pulumi.Output.concat(args["agent_bucket_arn"], "/", args["agent_object_key"])
        permissions: list[pulumi.Resource] = [aws.iam.RolePolicy(
            f"{name}-agent", role=role.id, policy=object_arn.apply(lambda arn: agent_policy(arn, group_tag)),
            opts=child)]
        if args.get("request_queue_arns"):
            # A policy of its own: the workload's grant changes with the queues, the agent's stays as it is.
            permissions.append(aws.iam.RolePolicy(
                f"{name}-requests", role=role.id, opts=child,
                policy=pulumi.Output.from_input(args["request_queue_arns"]).apply(
                    lambda arns: json.dumps({"Version": "2012-10-17", "Statement": [consumer_statement(list(arns))]}))))
        if args.get("ssm_access", True):
            permissions += attach_managed_policies(name, role, ["AmazonSSMManagedInstanceCore"], parent=self)
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=tags, opts=child)

        port = as_agent_settings(args.get("agent")).prometheus_port or DEFAULT_PROMETHEUS_PORT
        cidrs = list(args.get("metrics_ingress_cidrs") or ())
        clients = list(args.get("workload_ingress_cidrs") or ())
        published = list((args.get("startup") or {}).get("container", {}).get("ports") or ()) if clients else []
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args["vpc_id"], description=f"GPU instances of {name}",
            ingress=([aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=port, to_port=port, cidr_blocks=cidrs,
                                                       description="Prometheus scrape of gpu-metrics-agent")]
                     if cidrs else [])
            + [aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=p, to_port=p, cidr_blocks=clients,
                                                description=f"workload container port {p}") for p in published],
            # Out to S3, CloudWatch and the package index (through NAT); nothing needs to reach in.
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                                                    description="all outbound")],
            tags={**tags, "Name": f"{name}-sg"}, opts=child)

        ami = aws.ssm.get_parameter_output(name=args.get("ami_parameter", DEFAULT_AMI_PARAMETER),
                                           opts=pulumi.InvokeOutputOptions(parent=self))
        user_data = pulumi.Output.all(args["agent_bucket_name"], args["agent_object_key"]).apply(
            lambda v: base64.b64encode(render_launch_user_data(render_user_data(
                v[0], v[1], args["region"], as_agent_settings(args.get("agent")),
                # The ready script gives up before the launch hook (timeout = the health check grace) expires.
                hook_timeout_seconds=args.get("health_check_grace_seconds", 600)),
                args.get("startup")).encode()).decode())
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"GPU instances of {name}",
            image_id=ami.value,
            # With a mixed instances policy the overrides name the types; otherwise the template does.
            instance_type=None if mixed else types[0],
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            vpc_security_group_ids=[security_group.id],
            # IMDSv2 only. Hop limit 2 so containers on the instance reach it too. Instance tags in metadata: the
            # agent reads its group's name from the aws:autoscaling:groupName tag there, with no API call.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2,
                instance_metadata_tags="enabled"),
            # A hibernated warm pool needs instances launched able to hibernate (their encrypted root holds RAM).
            hibernation_options=aws.ec2.LaunchTemplateHibernationOptionsArgs(configured=True)
            if args.get("warm_pool", {}).get("pool_state") == "Hibernated" else None,
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=args.get("root_device_name", "/dev/xvda"),
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=args.get("root_volume_gib", 200), volume_type="gp3", encrypted="true",
                    delete_on_termination="true"))],
            user_data=user_data,
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags={**tags, "Name": name}) for kind in ("instance", "volume")],
            tags=tags,
            update_default_version=True,
            opts=child)
        version = template.latest_version.apply(str)

        group = aws.autoscaling.Group(
            f"{name}-asg",
            min_size=args["min_size"],
            max_size=args["max_size"],
            # desired_capacity is deliberately not set: AWS starts the group at min_size, and from then on the
            # scaling policies own it (see ignore_changes below).
            vpc_zone_identifiers=args["subnet_ids"],
            launch_template=None if mixed else aws.autoscaling.GroupLaunchTemplateArgs(id=template.id,
                                                                                       version=version),
            mixed_instances_policy=_mixed_instances_policy(args, template.id, version) if mixed else None,
            # Spot: replace an instance at risk of interruption before the two-minute notice, not after.
            capacity_rebalance=mixed and args.get("on_demand_percentage_above_base", 100) < 100,
            # New instances wait in Pending:Wait (or Warmed:Pending:Wait) until the boot script reports the agent
            # running; after the heartbeat timeout they continue anyway (an instance without metrics is better
            # than GPU instances relaunched in a loop by a persistent install failure).
            initial_lifecycle_hooks=[aws.autoscaling.GroupInitialLifecycleHookArgs(
                name=LIFECYCLE_HOOK, lifecycle_transition="autoscaling:EC2_INSTANCE_LAUNCHING",
                default_result="CONTINUE", heartbeat_timeout=args.get("health_check_grace_seconds", 600))],
            health_check_type="EC2",
            health_check_grace_period=args.get("health_check_grace_seconds", 600),
            default_instance_warmup=args.get("instance_warmup_seconds", 300),
            # A new launch template version (AMI, user data, agent archive) rolls the fleet gradually.
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    # Launch before terminating (up to 200 %): with min 90 % alone a group of one or two
                    # instances would replace them terminate-first and drop to zero while the new one boots.
                    min_healthy_percentage=90, max_healthy_percentage=200, skip_matching=True,
                    # No auto rollback: the provider points the group at the new template version before it starts
                    # the refresh, so a "rollback" relaunches that same version, unhealthy GPU instances in a loop
                    # (hashicorp/terraform-provider-aws#34189). A failed refresh stops instead; the instances it has
                    # not replaced keep running, but the group launches the new version from then on (and `pulumi
                    # up` does not wait for the refresh): fix the template and update again.
                    auto_rollback=False)),
            warm_pool=_warm_pool(args["warm_pool"]) if "warm_pool" in args else None,
            enabled_metrics=GROUP_METRICS,
            metrics_granularity="1Minute",
            tags=[aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True)
                  for k, v in {**tags, GROUP_TAG: group_tag}.items()],
            # The scaling policies own the desired capacity once the group exists: a second `pulumi up` must not
            # reset it to what the program declared (that would terminate or launch GPU instances behind their back).
            # depends_on: the first instances' boot script needs the role's permissions (archive download, lifecycle
            # hook), which nothing else in the group's inputs waits for.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"], depends_on=permissions))

        self.asg_name = group.name
        self.asg_arn = group.arn
        self.launch_template_id = template.id
        self.instance_role_name = role.name
        self.instance_role_arn = role.arn
        self.security_group_id = security_group.id
        self.register_outputs({"asg_name": self.asg_name, "asg_arn": self.asg_arn,
                               "launch_template_id": self.launch_template_id,
                               "instance_role_name": self.instance_role_name,
                               "instance_role_arn": self.instance_role_arn,
                               "security_group_id": self.security_group_id})


def agent_policy(object_arn: str, group: str) -> str:
    """Least privilege for the instances: publish metrics to our namespace only, read the agent archive only, and
    report their own group's lifecycle hooks."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PublishGpuMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
             # PutMetricData has no resource ARN to scope; the namespace condition is how it is narrowed.
             "Condition": {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}},
            {"Sid": "ReadAgentArchive", "Effect": "Allow", "Action": "s3:GetObject", "Resource": object_arn},
            {"Sid": "ReportReady", "Effect": "Allow", "Action": "autoscaling:CompleteLifecycleAction", "Resource": "*",
             "Condition": {"StringEquals": {f"autoscaling:ResourceTag/{GROUP_TAG}": group}}},
        ],
    })


def _mixed_instances_policy(args: GpuAutoScalingGroupArgs, template_id: pulumi.Output[str],
                            version: pulumi.Output[str]) -> aws.autoscaling.GroupMixedInstancesPolicyArgs:
    return aws.autoscaling.GroupMixedInstancesPolicyArgs(
        instances_distribution=aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
            on_demand_base_capacity=args.get("on_demand_base_capacity", 0),
            on_demand_percentage_above_base_capacity=args.get("on_demand_percentage_above_base", 100),
            # On-demand follows the listed order (most preferred first).
            on_demand_allocation_strategy="prioritized",
            spot_allocation_strategy=args.get("spot_allocation_strategy", "price-capacity-optimized")),
        launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
            launch_template_specification=aws.autoscaling.
            GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                launch_template_id=template_id, version=version),
            overrides=[aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=t)
                       for t in args["instance_types"]]))


def _warm_pool(pool: WarmPoolArgs) -> aws.autoscaling.GroupWarmPoolArgs:
    return aws.autoscaling.GroupWarmPoolArgs(
        min_size=pool.get("min_size", 0),
        max_group_prepared_capacity=pool.get("max_group_prepared_capacity"),
        pool_state=pool.get("pool_state", "Stopped"),
        instance_reuse_policy=aws.autoscaling.GroupWarmPoolInstanceReusePolicyArgs(
            reuse_on_scale_in=pool.get("reuse_on_scale_in", True)))
