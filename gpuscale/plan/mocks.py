"""Pulumi mocks that answer like AWS: deterministic ids, ARNs and names, and EC2's own instance type data.

Used by the component unit tests and by the offline plan (`gpuscale plan`). Everything is derived from the resource's
type and name (a hash), never from a random source, so two runs of the same program give identical plans. Keys are
camelCase, as the provider returns them. The account is ACCOUNT_ID; the region is `aws:region` from the program's
config (or the `region` passed in).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import pulumi

from ..instance_types import RecordedInstanceTypes

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"

# type token -> (id prefix, ARN resource part). The ARN part is formatted with {name} and {id}; None: no ARN.
# Tokens not listed get a generic id and an ARN under the token's service.
_IDS: dict[str, tuple[str, str | None]] = {
    "aws:ec2/vpc:Vpc": ("vpc-", "ec2:{region}:{account}:vpc/{id}"),
    "aws:ec2/subnet:Subnet": ("subnet-", "ec2:{region}:{account}:subnet/{id}"),
    "aws:ec2/internetGateway:InternetGateway": ("igw-", "ec2:{region}:{account}:internet-gateway/{id}"),
    "aws:ec2/eip:Eip": ("eipalloc-", "ec2:{region}:{account}:elastic-ip/{id}"),
    "aws:ec2/natGateway:NatGateway": ("nat-", "ec2:{region}:{account}:natgateway/{id}"),
    "aws:ec2/routeTable:RouteTable": ("rtb-", "ec2:{region}:{account}:route-table/{id}"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("rtbassoc-", None),
    "aws:ec2/securityGroup:SecurityGroup": ("sg-", "ec2:{region}:{account}:security-group/{id}"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("lt-", "ec2:{region}:{account}:launch-template/{id}"),
    "aws:iam/role:Role": ("", "iam::{account}:role/{name}"),
    "aws:iam/rolePolicy:RolePolicy": ("", None),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("", None),
    "aws:iam/instanceProfile:InstanceProfile": ("", "iam::{account}:instance-profile/{name}"),
    "aws:eks/cluster:Cluster": ("", "eks:{region}:{account}:cluster/{name}"),
    "aws:autoscaling/tag:Tag": ("", None),
    "aws:s3/bucket:Bucket": ("", "s3:::{name}"),
    "aws:ecr/repository:Repository": ("", "ecr:{region}:{account}:repository/{name}"),
    "aws:sqs/queue:Queue": ("", "sqs:{region}:{account}:{name}"),
    "aws:efs/fileSystem:FileSystem": ("fs-", "elasticfilesystem:{region}:{account}:file-system/{id}"),
    "aws:efs/accessPoint:AccessPoint": ("fsap-", "elasticfilesystem:{region}:{account}:access-point/{id}"),
    "aws:efs/mountTarget:MountTarget": ("fsmt-", None),
}

# Properties that Pulumi auto-names when the program leaves them out, per type token.
_NAME_PROPERTY: dict[str, str] = {
    "aws:iam/role:Role": "name",
    "aws:iam/rolePolicy:RolePolicy": "name",
    "aws:iam/instanceProfile:InstanceProfile": "name",
    "aws:ec2/securityGroup:SecurityGroup": "name",
    "aws:ec2/launchTemplate:LaunchTemplate": "name",
    "aws:autoscaling/group:Group": "name",
    "aws:eks/cluster:Cluster": "name",
    "aws:eks/nodeGroup:NodeGroup": "nodeGroupName",
    "aws:s3/bucket:Bucket": "bucket",
    "aws:ecr/repository:Repository": "name",
    "aws:sqs/queue:Queue": "name",
}


class InvokeFailure(Exception):
    """An invoke the cloud would refuse (e.g. an unknown instance type): reported as the provider reports it."""

    def __init__(self, property: str, reason: str):
        super().__init__(reason)
        self.property, self.reason = property, reason


def stable_hex(*parts: str, length: int = 17) -> str:
    """A hex digest of the parts: the same input always gives the same id."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def planned_id(typ: str, name: str) -> str:
    """The id the mocks give a resource of a type whose ids AWS prefixes (sg-, lt-, fs-): what other resources' inputs
    hold where they reference it, so the checks can follow a reference in a plan."""
    prefix, _ = _IDS[typ]
    assert prefix, f"{typ} ids are its name, not a prefixed hash"
    return prefix + stable_hex(typ, name)


def cluster_security_group_id(cluster_name: str) -> str:
    """The security group EKS creates for a cluster (vpcConfig.clusterSecurityGroupId), as the mocks answer it for a
    created cluster and for a looked-up one alike: the managed nodes' group unless a launch template sets others."""
    return "sg-" + stable_hex("eks-cluster-sg", cluster_name)


def stable_uuid(*parts: str) -> str:
    h = stable_hex(*parts, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if "-gov-" in region:
        return "aws-us-gov"
    return "aws"


class GpuScaleMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and invokes the way AWS would, deterministically."""

    def __init__(self, region: str | None = None, instance_types: RecordedInstanceTypes | None = None):
        self._region = region
        self._instance_types = instance_types or RecordedInstanceTypes()
        self._invokes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "aws:ec2/getInstanceType:getInstanceType": self._instance_type,
            "aws:ssm/getParameter:getParameter": self._ssm_parameter,
            "aws:index/getAvailabilityZones:getAvailabilityZones": self._availability_zones,
            "aws:index/getCallerIdentity:getCallerIdentity": self._caller_identity,
            "aws:index/getPartition:getPartition": self._partition,
            "aws:index/getRegion:getRegion": self._region_info,
            "aws:eks/getCluster:getCluster": self._eks_cluster,
            "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider": self._oidc_provider_lookup,
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": self._ecr_token,
            "aws:sqs/getQueue:getQueue": self._queue_lookup,
        }
        # Per-type shapers add what AWS computes; each returns the id when it is not the default one.
        self._shapers: dict[str, Callable[[str, dict[str, Any]], str | None]] = {
            "aws:ec2/vpc:Vpc": self._vpc,
            "aws:ec2/eip:Eip": self._eip,
            "aws:ec2/securityGroup:SecurityGroup": self._owned,
            "aws:ec2/launchTemplate:LaunchTemplate": self._launch_template,
            "aws:iam/role:Role": self._role,
            "aws:iam/rolePolicy:RolePolicy": self._role_policy,
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment": self._role_policy_attachment,
            "aws:iam/openIdConnectProvider:OpenIdConnectProvider": self._oidc_provider,
            "aws:eks/cluster:Cluster": self._cluster,
            "aws:eks/nodeGroup:NodeGroup": self._node_group,
            "aws:autoscaling/group:Group": self._asg,
            "aws:autoscaling/tag:Tag": self._asg_tag,
            "aws:s3/bucket:Bucket": self._bucket,
            "aws:s3/bucketObjectv2:BucketObjectv2": self._bucket_object,
            "aws:ecr/repository:Repository": self._ecr_repository,
            "aws:sqs/queue:Queue": self._queue,
        }

    @property
    def region(self) -> str:
        # Read on use: the plan sets the stack's config after building the mocks.
        return self._region or pulumi.runtime.get_config("aws:region") or DEFAULT_REGION

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    def arn(self, resource: str) -> str:
        return f"arn:{self.partition}:{resource}"

    # --- resources --------------------------------------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if not args.custom:  # components have no cloud state
            return None, state
        typ, name = args.typ, args.name
        if typ == "docker-build:index:Image":
            return self._image(name, state), state
        if not typ.startswith("aws:"):
            # Kubernetes objects, Helm releases and providers: no ARN or region; the id Kubernetes would give.
            meta = state.get("metadata") or {}
            return (f"{meta.get('namespace', 'default')}/{meta['name']}" if meta.get("name")
                    else f"{name}-{stable_hex(typ, name, length=8)}"), state
        name_prop = _NAME_PROPERTY.get(typ)
        if name_prop and not state.get(name_prop):
            # Pulumi's auto-naming: the resource name plus a 7-character suffix.
            state[name_prop] = f"{name}-{stable_hex(typ, name, length=7)}"
            if typ == "aws:s3/bucket:Bucket":
                state[name_prop] = state[name_prop].lower()
        resource_id = self._default_id(typ, name, state)
        shaper = self._shapers.get(typ)
        if shaper is not None:
            resource_id = shaper(name, state) or resource_id
        _, arn_part = _IDS.get(typ, ("", None))
        if "arn" not in state:
            fields = {"region": self.region, "account": ACCOUNT_ID, "id": resource_id,
                      "name": state.get(name_prop or "name", name)}
            if arn_part is not None:
                state["arn"] = self.arn(arn_part.format(**fields))
            elif typ not in _IDS:
                service = typ.split(":")[1].split("/")[0]
                state["arn"] = self.arn(f"{service}:{self.region}:{ACCOUNT_ID}:{name}/{resource_id}")
        state.setdefault("region", self.region)
        return resource_id, state

    def _default_id(self, typ: str, name: str, state: dict[str, Any]) -> str:
        prefix, _ = _IDS.get(typ, ("", None))
        if typ in _NAME_PROPERTY and not prefix:
            return state[_NAME_PROPERTY[typ]]
        return prefix + stable_hex(typ, name)

    def _vpc(self, name: str, state: dict[str, Any]) -> None:
        state["defaultSecurityGroupId"] = "sg-" + stable_hex("vpc-default-sg", name)
        state["mainRouteTableId"] = "rtb-" + stable_hex("vpc-main-rtb", name)
        state["ownerId"] = ACCOUNT_ID

    def _eip(self, name: str, state: dict[str, Any]) -> None:
        h = int(stable_hex("eip", name, length=4), 16)
        state["publicIp"] = f"203.0.{113 + h % 2}.{h % 250 + 1}"  # documentation ranges (RFC 5737)
        state["allocationId"] = "eipalloc-" + stable_hex("aws:ec2/eip:Eip", name)

    def _owned(self, name: str, state: dict[str, Any]) -> None:
        state["ownerId"] = ACCOUNT_ID

    def _launch_template(self, name: str, state: dict[str, Any]) -> None:
        state["latestVersion"] = 1
        state["defaultVersion"] = 1

    def _role(self, name: str, state: dict[str, Any]) -> None:
        state["uniqueId"] = "AROA" + stable_hex("role", name).upper()

    def _role_policy(self, name: str, state: dict[str, Any]) -> str:
        return f"{state.get('role')}:{state['name']}"

    def _role_policy_attachment(self, name: str, state: dict[str, Any]) -> str:
        return f"{state.get('role')}-{stable_hex('attach', name, length=8)}"

    def _oidc_provider(self, name: str, state: dict[str, Any]) -> str:
        host = str(state.get("url", "")).removeprefix("https://")
        state["arn"] = self.arn(f"iam::{ACCOUNT_ID}:oidc-provider/{host}")
        return state["arn"]

    def _cluster(self, name: str, state: dict[str, Any]) -> None:
        state.update(self._cluster_computed(state["name"]))
        vpc_config = dict(state.get("vpcConfig") or {})
        vpc_config.setdefault("clusterSecurityGroupId", cluster_security_group_id(state["name"]))
        vpc_config.setdefault("vpcId", "vpc-" + stable_hex("eks-vpc", state["name"]))
        state["vpcConfig"] = vpc_config

    def _cluster_computed(self, cluster: str) -> dict[str, Any]:
        oidc_id = stable_hex("oidc", cluster, length=32).upper()
        ca = base64.b64encode(f"mock certificate authority of {cluster}".encode()).decode()
        return {
            "endpoint": f"https://{oidc_id}.gr7.{self.region}.eks.amazonaws.com",
            "certificateAuthority": {"data": ca},
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{oidc_id}"}]}],
            "platformVersion": "eks.1",
            "status": "ACTIVE",
        }

    def _node_group(self, name: str, state: dict[str, Any]) -> str:
        cluster, group = state.get("clusterName"), state["nodeGroupName"]
        uid = stable_uuid("nodegroup", name)
        state["arn"] = self.arn(f"eks:{self.region}:{ACCOUNT_ID}:nodegroup/{cluster}/{group}/{uid}")
        # EKS names the group's Auto Scaling group eks-<nodegroup>-<uuid>; cluster-autoscaler tags go on it.
        state["resources"] = [{"autoscalingGroups": [{"name": f"eks-{group}-{uid}"}],
                               "remoteAccessSecurityGroupId": ""}]
        state["status"] = "ACTIVE"
        return f"{cluster}:{group}"

    def _asg(self, name: str, state: dict[str, Any]) -> None:
        asg = state["name"]
        uid = stable_uuid("asg", name)
        state["arn"] = self.arn(f"autoscaling:{self.region}:{ACCOUNT_ID}:autoScalingGroup:{uid}"
                                f":autoScalingGroupName/{asg}")
        # AWS starts a group without an explicit desired capacity at its minimum.
        state.setdefault("desiredCapacity", state.get("minSize", 0))

    def _asg_tag(self, name: str, state: dict[str, Any]) -> str:
        return f"{state.get('autoscalingGroupName')},{(state.get('tag') or {}).get('key')}"

    def _bucket(self, name: str, state: dict[str, Any]) -> None:
        bucket = state["bucket"]
        state["bucketDomainName"] = f"{bucket}.s3.amazonaws.com"
        state["bucketRegionalDomainName"] = f"{bucket}.s3.{self.region}.amazonaws.com"

    def _bucket_object(self, name: str, state: dict[str, Any]) -> str:
        state["arn"] = self.arn(f"s3:::{state.get('bucket')}/{state.get('key')}")
        state["etag"] = stable_hex("etag", name, str(state.get("key")), length=32)
        state["versionId"] = ""
        return str(state.get("key"))

    def _ecr_repository(self, name: str, state: dict[str, Any]) -> str:
        state["registryId"] = ACCOUNT_ID
        state["repositoryUrl"] = f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/{state['name']}"
        return state["name"]

    def _queue_url(self, queue: str) -> str:
        return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{queue}"

    def _queue(self, name: str, state: dict[str, Any]) -> str:
        # SQS identifies a queue by its URL (the provider's id); the ARN ends in the name.
        state["url"] = self._queue_url(state["name"])
        return state["url"]

    def _queue_lookup(self, args: dict[str, Any]) -> dict[str, Any]:
        queue = args["name"]
        return {"id": self._queue_url(queue), "name": queue, "url": self._queue_url(queue),
                "arn": self.arn(f"sqs:{self.region}:{ACCOUNT_ID}:{queue}"), "tags": {}, "region": self.region}

    def _image(self, name: str, state: dict[str, Any]) -> str:
        # What docker-build reports after a push: the build's digest, and the first tag pinned to it.
        digest = "sha256:" + stable_hex("image", name, *map(str, state.get("tags") or []), length=64)
        state["digest"] = digest
        tags = state.get("tags") or []
        state["ref"] = f"{tags[0]}@{digest}" if state.get("push") and tags else ""
        return digest

    # --- invokes ----------------------------------------------------------------------------------------------

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        answer = self._invokes.get(args.token)
        if answer is None:
            # A crash, not an invoke failure: an unknown token is a typo in the program (or a missing answer here).
            raise NotImplementedError(f"GpuScaleMocks has no answer for invoke {args.token!r}; known invokes: "
                                      + ", ".join(sorted(self._invokes)))
        try:
            return answer(dict(args.args)), []
        except InvokeFailure as failure:
            # Reported like a provider's error: the caller's invoke raises it, and may catch it.
            return {}, [(failure.property, failure.reason)]

    def _instance_type(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("instanceType", "")
        record = self._instance_types.record(name)
        if record is None:
            # The provider's error for a type EC2 does not know (the same words PulumiInstanceTypes looks for).
            raise InvokeFailure("instanceType", f"reading EC2 Instance Type ({name}): InvalidInstanceType: The "
                                                f"following supplied instance types do not exist: [{name}]")
        gpus = (record.get("GpuInfo") or {}).get("Gpus") or []
        vcpu = record["VCpuInfo"]
        return {
            "id": name,
            "instanceType": name,
            "region": args.get("region") or self.region,
            "gpuses": [{"count": g.get("Count", 0), "manufacturer": g.get("Manufacturer", ""),
                        "memorySize": (g.get("MemoryInfo") or {}).get("SizeInMiB", 0), "name": g.get("Name", "")}
                       for g in gpus],
            "totalGpuMemory": (record.get("GpuInfo") or {}).get("TotalGpuMemoryInMiB", 0),
            "defaultVcpus": vcpu["DefaultVCpus"],
            "defaultCores": vcpu.get("DefaultCores", 0),
            "defaultThreadsPerCore": vcpu.get("DefaultThreadsPerCore", 0),
            "memorySize": record["MemoryInfo"]["SizeInMiB"],
            "supportedArchitectures": list(record["ProcessorInfo"]["SupportedArchitectures"]),
            "currentGeneration": record.get("CurrentGeneration", False),
            "bareMetal": record.get("BareMetal", False),
            "hibernationSupported": record.get("HibernationSupported", False),
            "hypervisor": record.get("Hypervisor", ""),
            "networkPerformance": (record.get("NetworkInfo") or {}).get("NetworkPerformance", ""),
        }

    def _ssm_parameter(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args["name"]
        value = "ami-" + stable_hex("ssm", name) if name.endswith("/ami-id") or "/ami/" in name else \
            f"mock value of {name}"
        return {"id": name, "name": name, "arn": self.arn(f"ssm:{self.region}::parameter{name}"), "type": "String",
                "value": value, "insecureValue": value, "version": 1, "withDecryption": True,
                "region": self.region}

    def _availability_zones(self, args: dict[str, Any]) -> dict[str, Any]:
        # us-east-1 has six zones, us-west-1 offers two to new accounts; four elsewhere is close enough.
        letters = {"us-east-1": "abcdef", "us-west-1": "ac"}.get(self.region, "abcd")
        names = [self.region + letter for letter in letters]
        prefix = {"us-east-1": "use1", "us-west-2": "usw2"}.get(self.region, self.region.replace("-", "")[:5])
        return {"id": self.region, "names": names, "zoneIds": [f"{prefix}-az{i + 1}" for i in range(len(names))],
                "groupNames": [self.region] * len(names), "state": args.get("state"), "region": self.region}

    def _caller_identity(self, args: dict[str, Any]) -> dict[str, Any]:
        arn = self.arn(f"iam::{ACCOUNT_ID}:user/gpuscale-plan")
        return {"id": ACCOUNT_ID, "accountId": ACCOUNT_ID, "arn": arn, "userId": "AIDA" + stable_hex("user").upper()}

    def _partition(self, args: dict[str, Any]) -> dict[str, Any]:
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        reverse = "cn.com.amazonaws" if self.partition == "aws-cn" else "com.amazonaws"
        return {"id": self.partition, "partition": self.partition, "dnsSuffix": suffix,
                "reverseDnsPrefix": reverse}

    def _region_info(self, args: dict[str, Any]) -> dict[str, Any]:
        region = args.get("region") or args.get("name") or self.region
        return {"id": region, "name": region, "region": region, "endpoint": f"ec2.{region}.amazonaws.com",
                "description": region}

    def _oidc_provider_lookup(self, args: dict[str, Any]) -> dict[str, Any]:
        url = str(args.get("url", ""))
        host = url.removeprefix("https://")
        return {"id": host, "url": host, "arn": self.arn(f"iam::{ACCOUNT_ID}:oidc-provider/{host}"),
                "clientIdLists": ["sts.amazonaws.com"], "thumbprintLists": [], "tags": {}}

    def _ecr_token(self, args: dict[str, Any]) -> dict[str, Any]:
        registry = args.get("registryId") or ACCOUNT_ID
        password = "mock-ecr-token-" + stable_hex("ecr-token", registry, self.region, length=32)
        return {"id": self.region, "registryId": registry, "userName": "AWS", "password": password,
                "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
                "proxyEndpoint": f"https://{registry}.dkr.ecr.{self.region}.amazonaws.com",
                "expiresAt": "2025-01-01T12:00:00Z", "region": self.region}

    def _eks_cluster(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args["name"]
        subnets = ["subnet-" + stable_hex("existing-subnet", name, str(i)) for i in range(3)]
        return {
            "id": name, "name": name, "arn": self.arn(f"eks:{self.region}:{ACCOUNT_ID}:cluster/{name}"),
            "createdAt": "2025-01-01T00:00:00Z", "version": "1.33", "status": "ACTIVE",
            "roleArn": self.arn(f"iam::{ACCOUNT_ID}:role/{name}-cluster"),
            "certificateAuthorities": [self._cluster_computed(name)["certificateAuthority"]],
            **{k: v for k, v in self._cluster_computed(name).items() if k != "certificateAuthority"},
            "vpcConfig": {"clusterSecurityGroupId": cluster_security_group_id(name),
                          "endpointPrivateAccess": True, "endpointPublicAccess": True, "publicAccessCidrs":
                          ["0.0.0.0/0"], "securityGroupIds": [], "subnetIds": subnets,
                          "vpcId": "vpc-" + stable_hex("eks-vpc", name)},
            "tags": {}, "region": self.region,
        }
