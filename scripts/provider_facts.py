#!/usr/bin/env python3
"""Record which input changes make the AWS provider replace a resource, from terraform-provider-aws's own schemas.

pulumi-aws is bridged from terraform-provider-aws: a property the Terraform schema marks `ForceNew: true` (or, in
plugin-framework resources, a `RequiresReplace()` plan modifier) is one whose change `pulumi preview` shows as a
replacement. This script reads those marks from a git clone of terraform-provider-aws at a given ref, for the
resource types gpuscale declares (`PULUMI_TO_TERRAFORM` below, the names pulumi-aws's provider/resources.go maps
them to), and writes them as facts, with the source, ref, commit and licence, to
gpuscale/data/provider_replacements.json. Nothing upstream is copied: only the property paths.

The same for pulumi-kubernetes (a native provider): every object's metadata name and namespace, the per-kind
fields of its diff.go forceNew table, and a Helm release's name and namespace, into the file's `kubernetes` section.

Usage (either clone, or both; a section not regenerated is kept):

    python scripts/provider_facts.py --terraform-provider-aws /path/to/clone [--ref v6.x.y] [--source URL] \
        --pulumi-kubernetes /path/to/clone [--kubernetes-ref v4.x.y]

Paths are written as pulumi-aws names them: camelCase, nested blocks joined with "." (`launchTemplate.id`).
Properties that CustomizeDiff replaces only on some changes (`customdiff.ForceNewIfChange`, `d.ForceNew`) are
listed apart, as `replacedIfChanged`. tests/plan/test_plan_replacements.py fails when a resource type the stacks
declare has no facts.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from upstream_facts import ROOT, git, licence as apache_licence  # noqa: E402  (this folder is on sys.path when run as a script)

OUT = ROOT / "gpuscale" / "data" / "provider_replacements.json"

PULUMI_TO_TERRAFORM = {
    "aws:autoscaling/group:Group": "aws_autoscaling_group",
    "aws:autoscaling/lifecycleHook:LifecycleHook": "aws_autoscaling_lifecycle_hook",
    "aws:autoscaling/policy:Policy": "aws_autoscaling_policy",
    # pulumi-aws names aws_autoscaling_group_tag "Tag" in its autoscaling module.
    "aws:autoscaling/tag:Tag": "aws_autoscaling_group_tag",
    "aws:cloudwatch/dashboard:Dashboard": "aws_cloudwatch_dashboard",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
    # EC2's VPC resources have no "ec2" in their Terraform names.
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/internetGateway:InternetGateway": "aws_internet_gateway",
    "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ecr/repository:Repository": "aws_ecr_repository",
    "aws:efs/accessPoint:AccessPoint": "aws_efs_access_point",
    "aws:efs/fileSystem:FileSystem": "aws_efs_file_system",
    "aws:efs/mountTarget:MountTarget": "aws_efs_mount_target",
    "aws:eks/accessEntry:AccessEntry": "aws_eks_access_entry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "aws_eks_access_policy_association",
    "aws:eks/addon:Addon": "aws_eks_addon",
    "aws:eks/cluster:Cluster": "aws_eks_cluster",
    "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
    "aws:iam/instanceProfile:InstanceProfile": "aws_iam_instance_profile",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "aws_iam_openid_connect_provider",
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    # pulumi-aws 7 dropped the V2 suffixes: s3.Bucket is aws_s3_bucket, BucketObjectv2 is aws_s3_object.
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketObjectv2:BucketObjectv2": "aws_s3_object",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        "aws_s3_bucket_server_side_encryption_configuration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:sns/topic:Topic": "aws_sns_topic",
    "aws:sqs/queue:Queue": "aws_sqs_queue",
    "aws:sqs/queuePolicy:QueuePolicy": "aws_sqs_queue_policy",
    # pulumi-aws names aws_sqs_queue_redrive_allow_policy "RedriveAllowPolicy" in its sqs module.
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": "aws_sqs_queue_redrive_allow_policy",
}
"""Every AWS resource type gpuscale's components declare, by its Pulumi token, with its Terraform resource name."""


def licence(repo: Path, ref: str) -> str:
    text = git(repo, "show", f"{ref}:LICENSE")
    if "Mozilla Public License" in text and "2.0" in text:
        return "MPL-2.0"
    raise SystemExit(f"{repo}: LICENSE at {ref} is not MPL-2.0; read it and record its licence by hand")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _strip_go(text: str) -> str:
    """The source with comments and string/rune contents blanked (same length), so braces can be counted."""
    out, i, n = list(text), 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out[i:j] = " " * (j - i)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2) + 2
            out[i:j] = " " * (j - i)
            i = j
        elif c in "\"'`":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if c != "`" and text[j] == "\\" else 1
            out[i + 1:j] = " " * (j - i - 1)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _close(code: str, open_at: int) -> int:
    """Index of the brace closing the one at `open_at` (in blanked code)."""
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced braces")


def _top_level(code: str, start: int, end: int) -> str:
    """`code[start:end]` without what nested braces enclose."""
    out, depth = [], 0
    for c in code[start:end]:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


SCHEMA_MAP = "map[string]*schema.Schema{"
ENTRY = re.compile(r'\s*(?:"([a-z0-9_]+)"|names\.(Attr\w+))\s*:\s*(?:[\w.]+)?\{')
ENTRY_CALL = re.compile(r'\s*(?:"([a-z0-9_]+)"|names\.(Attr\w+))\s*:\s*([\w.]+)\(\)\s*,')


def _depth_one(code: str, open_at: int, close: int, pattern: str) -> re.Match | None:
    """The first match of `pattern` directly inside the braces at `open_at` (not inside nested ones)."""
    depth = 0
    for i in range(open_at, close):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
        elif depth == 1:
            m = re.compile(pattern).match(code, i)
            if m is not None:
                return m
    return None


def _resource_schema(code: str, func: int, body_end: int) -> int:
    """Where the resource's top-level schema map opens (the `map[...]{` literal), or -1: `Schema: map...{`,
    `SchemaFunc: func() ... { return map...{ }` (local helpers before the return are skipped), or a name
    (`Schema: topicSchema`, `SchemaFunc: nodeSchema`) defined in the same file."""
    literal = code.find("&schema.Resource{", func, body_end)
    if literal < 0:
        return -1
    open_at = literal + len("&schema.Resource")
    close = _close(code, open_at)
    m = _depth_one(code, open_at, close, r"\bSchema(?:Func)?:\s*")
    if m is None:
        return -1
    rest = code[m.end():]
    if rest.startswith(SCHEMA_MAP):
        return m.end()
    if rest.startswith("func()"):
        fn_open = code.index("{", m.end())
        ret = _depth_one(code, fn_open, _close(code, fn_open), r"return\s+map\[string\]\*schema\.Schema\{")
        return ret.end() - len(SCHEMA_MAP) if ret is not None else -1
    name = re.match(r"(\w+)", rest)
    if name is None:
        return -1
    var = re.search(rf"\b{name.group(1)}\s*=\s*map\[string\]\*schema\.Schema\{{", code) or \
        re.search(rf"func {name.group(1)}\(\) map\[string\]\*schema\.Schema \{{\s*return "
                  r"map\[string\]\*schema\.Schema\{", code)
    return var.end() - len(SCHEMA_MAP) if var is not None else -1


class Source:
    def __init__(self, repo: Path, ref: str):
        self.repo, self.ref = repo, ref
        # The names.Attr* constants: attr_consts_gen.go in recent versions, attr_consts.go before.
        consts = "".join(git(repo, "show", f"{ref}:names/{f}") for f in ("attr_consts_gen.go", "attr_consts.go")
                         if self._exists(f"names/{f}"))
        self.attrs = dict(re.findall(r"\b(Attr\w+)\s*=\s*\"([a-z0-9_]+)\"", consts))
        self.unresolved: list[str] = []

    def _exists(self, path: str) -> bool:
        return subprocess.run(["git", "-C", str(self.repo), "cat-file", "-e", f"{self.ref}:{path}"],
                              capture_output=True).returncode == 0

    def file_of(self, terraform: str) -> str:
        hits = subprocess.run(["git", "-C", str(self.repo), "grep", "-l", f'@SDKResource("{terraform}"', self.ref,
                               "--", "internal/service"], capture_output=True, text=True).stdout.split()
        hits += subprocess.run(["git", "-C", str(self.repo), "grep", "-l", f'@FrameworkResource("{terraform}"',
                                self.ref, "--", "internal/service"], capture_output=True, text=True).stdout.split()
        if len(hits) != 1:
            raise SystemExit(f"{terraform}: registered in {len(hits)} files at {self.ref} (want 1): {hits}")
        return hits[0].split(":", 1)[1]

    def name(self, literal: str | None, const: str | None) -> str:
        if literal:
            return literal
        if const not in self.attrs:
            raise SystemExit(f"names.{const} is not among names/attr_consts*.go at {self.ref}")
        return self.attrs[const]

    def replacements(self, terraform: str) -> dict[str, object]:
        path = self.file_of(terraform)
        text = git(self.repo, "show", f"{self.ref}:{path}")
        code = _strip_go(text)
        mark = text.index(f'("{terraform}"')
        func = code.index("{", code.index("func ", mark))
        body_end = _close(code, func)
        framework = "@FrameworkResource" in text[max(0, mark - 40):mark]
        fields: list[str] = []
        if framework:
            self._framework(text, code, "", fields)
        else:
            start = _resource_schema(code, func, body_end)
            if start < 0:
                raise SystemExit(f"{terraform}: no schema map in its resource function ({path})")
            self._schema_map(text, code, start + len(SCHEMA_MAP) - 1, "", fields, path)
        conditional = sorted({".".join(camel(p) for p in m.split(".") if not p.isdigit())
                              for m in re.findall(r'(?:ForceNewIfChange|\.ForceNew)\("([a-z0-9_.]+)"', text)})
        return {"terraform": terraform, "file": path, "replacedOnChange": sorted(set(fields)),
                "replacedIfChanged": conditional}

    def _schema_map(self, text: str, code: str, open_at: int, prefix: str, out: list[str], path: str) -> None:
        end, i = _close(code, open_at), open_at + 1
        while i < end:
            # Keys are read from the source (the blanked code lost string contents), braces from the code.
            m = ENTRY.match(text, i)
            if m is not None and code[m.end() - 1] != "{":
                m = None
            if m is None:
                call = ENTRY_CALL.match(text, i) if code[i] == text[i] else None
                if call is not None:  # a schema built by a helper function: resolved in the same package
                    key = self.name(*self._key(text, call))
                    self._helper(call.group(3), f"{prefix}{camel(key)}", out, path)
                    i = call.end()
                    continue
                i += 1
                continue
            key = self.name(*self._key(text, m))
            open_brace = m.end() - 1
            close = _close(code, open_brace)
            self._entry(text, code, open_brace, close, f"{prefix}{camel(key)}", out, path)
            i = close + 1

    @staticmethod
    def _key(text: str, m: re.Match) -> tuple[str | None, str | None]:
        return m.group(1), m.group(2)

    def _entry(self, text: str, code: str, open_brace: int, close: int, path_: str, out: list[str],
               file: str) -> None:
        own = _top_level(code, open_brace + 1, close)
        # ForceNew's value is a bare identifier, kept in the blanked code.
        if re.search(r"\bForceNew:\s*true\b", own):
            out.append(path_)
        nested = code.find(SCHEMA_MAP, open_brace, close)
        if nested >= 0:
            self._schema_map(text, code, nested + len(SCHEMA_MAP) - 1, f"{path_}.", out, file)

    def _helper(self, func: str, path_: str, out: list[str], file: str) -> None:
        name = func.rsplit(".", 1)[-1]
        text = git(self.repo, "show", f"{self.ref}:{file}")
        code = _strip_go(text)
        local = re.search(rf"\b{name}\s*:=\s*func\(\) \*schema\.Schema \{{", code) if "." not in func else None
        if local is not None:  # a closure inside the schema function
            entry = code.find("&schema.Schema{", local.end())
            open_brace = entry + len("&schema.Schema")
            self._entry(text, code, open_brace, _close(code, open_brace), path_, out, file)
            return
        folder = file.rsplit("/", 1)[0] if "." not in func else "internal"  # pkg.Func(): another package
        hits = subprocess.run(["git", "-C", str(self.repo), "grep", "-l", f"func {name}() \\*schema.Schema",
                               self.ref, "--", folder], capture_output=True, text=True).stdout.split()
        if len(hits) != 1:
            self.unresolved.append(f"{path_} ({func}())")
            return
        helper_path = hits[0].split(":", 1)[1]
        text = git(self.repo, "show", f"{self.ref}:{helper_path}")
        code = _strip_go(text)
        start = code.index("{", code.index(f"func {name}()"))
        entry = code.find("&schema.Schema{", start)
        open_brace = entry + len("&schema.Schema")
        self._entry(text, code, open_brace, _close(code, open_brace), path_, out, helper_path)

    def _framework(self, text: str, code: str, prefix: str, out: list[str]) -> None:
        schema_fn = re.search(r"func \(\w+ \*\w+\) Schema\(", text)
        if schema_fn is None:
            raise SystemExit("a framework resource without a Schema method")
        body = code.index("{", schema_fn.end())
        close = _close(code, body)
        for m in re.finditer(r'(?:"([a-z0-9_]+)"|names\.(Attr\w+))\s*:\s*schema\.\w+Attribute\{', code[body:close]):
            attr_open = body + m.end() - 1
            attr_close = _close(code, attr_open)
            key = self.name(*self._fw_key(text, body + m.start(), m.group(2)))
            if "RequiresReplace" in code[attr_open:attr_close]:
                out.append(f"{prefix}{camel(key)}")

    def _fw_key(self, text: str, at: int, const: str | None) -> tuple[str | None, str | None]:
        literal = re.match(r'"([a-z0-9_]+)"', text[at:])
        return (literal.group(1) if literal else None, const)


KUBERNETES_KINDS = ("apps/v1:DaemonSet", "apps/v1:Deployment", "core/v1:Namespace", "core/v1:Service",
                    "core/v1:ServiceAccount", "policy/v1:PodDisruptionBudget",
                    "rbac.authorization.k8s.io/v1:ClusterRoleBinding", "rbac.authorization.k8s.io/v1:RoleBinding",
                    "batch/v1:Job",
                    # The serving layer's custom resources: pulumi-kubernetes's table has no entry for them, so a
                    # new name or namespace is what replaces them.
                    "keda.sh/v1alpha1:ScaledObject", "keda.sh/v1alpha1:TriggerAuthentication",
                    "operator.knative.dev/v1beta1:KnativeServing", "serving.kserve.io/v1beta1:InferenceService",
                    # KServe's local model cache, and the annotation patch on its download Jobs' service account.
                    "serving.kserve.io/v1alpha1:LocalModelCache", "serving.kserve.io/v1alpha1:LocalModelNodeGroup",
                    "core/v1:ServiceAccountPatch",
                    # GPU headroom's placeholders (GpuHeadroom).
                    "scheduling.k8s.io/v1:PriorityClass",
                    # The EFS model cache's static volumes and claims (EfsModelCache).
                    "core/v1:PersistentVolume", "core/v1:PersistentVolumeClaim")
"""The kinds gpuscale declares and their near neighbours, as group/version:Kind. Not ConfigMaps and Secrets: whether
their data replaces them depends on the provider's enableConfigMapMutable / enableSecretMutable settings."""


class GoProperties:
    """Evaluates pulumi-kubernetes's provider/pkg/provider/diff.go: its `forceNew` table of property lists per
    group, version and kind, built from `properties{...}` literals, `append(...)` and helper functions that prefix
    string literals. Only the forms that file uses; anything else stops the script."""

    def __init__(self, text: str):
        self.code = re.sub(r"//[^\n]*", "", text)
        self.funcs = {m.group(1): (m.group(2).split(), self._body(m.end() - 1)) for m in re.finditer(
            r"func (\w+)\((\w+)(?: \.\.\.)? ?(?:\.\.\.)?string\) properties \{", self.code)}
        self.vars = {m.group(1): m.end() for m in re.finditer(r"\nvar (\w+) = ", self.code)}

    def _body(self, open_at: int) -> str:
        return self.code[open_at + 1:_close(self.code, open_at)]

    def table(self) -> dict[str, list[str]]:
        groups = self._literal(self.vars["forceNew"])
        out = {}
        for group, versions in groups.items():
            for version, kinds in versions.items():
                for kind, props in kinds.items():
                    out[f"{group or 'core'}/{version}:{kind}"] = props
        return out

    def _literal(self, at: int):
        """The Go value at `at`: a map literal (_groups/_versions/_kinds{...}), a property list, or a variable."""
        rest = self.code[at:].lstrip()
        at = len(self.code) - len(rest)
        m = re.match(r"_(?:groups|versions|kinds)\{", rest)
        if m:
            body_open = at + m.end() - 1
            close = _close(self.code, body_open)
            result, i = {}, body_open + 1
            while True:
                key = re.compile(r'\s*"([^"]*)"\s*:\s*').match(self.code, i)
                if key is None or key.start() >= close:
                    break
                value, i = self._value(key.end())
                result[key.group(1)] = value
                i = re.compile(r"\s*,?").match(self.code, i).end()
            return result
        value, _ = self._value(at)
        return value

    def _value(self, at: int):
        """(value, index after it) for a property-list expression or a map literal or a variable name."""
        rest = self.code[at:]
        if re.match(r"_(?:groups|versions|kinds)\{", rest):
            open_at = at + rest.index("{")
            return self._literal(at), _close(self.code, open_at) + 1
        if rest.startswith("properties{"):
            open_at = at + len("properties")
            close = _close(self.code, open_at)
            return re.findall(r'"([^"]*)"', self.code[open_at:close]), close + 1
        if rest.startswith("append("):
            close = self._paren_close(at + len("append"))
            parts, i = [], at + len("append(")
            while i < close:
                i = re.compile(r"[\s,]*").match(self.code, i).end()
                if i >= close:
                    break
                value, i = self._value(i)
                parts += value
                i = re.compile(r"(?:\.\.\.)?").match(self.code, i).end()
            return parts, close + 1
        call = re.match(r"(\w+)\(", rest)
        if call and call.group(1) in self.funcs:
            close = self._paren_close(at + call.end() - 1)
            args = re.findall(r'"([^"]*)"', self.code[at + call.end():close])
            _, body = self.funcs[call.group(1)]
            suffixes = re.findall(r'\w+ \+ "([^"]*)"', body)
            return [a + sfx for a in args for sfx in suffixes], close + 1
        name = re.match(r"(\w+)", rest)
        if name and name.group(1) in self.vars:
            return self._literal(self.vars[name.group(1)]), at + name.end()
        raise SystemExit(f"diff.go: cannot read the expression at {rest[:60]!r}")

    def _paren_close(self, open_at: int) -> int:
        depth = 0
        for i in range(open_at, len(self.code)):
            depth += {"(": 1, ")": -1}.get(self.code[i], 0)
            if depth == 0:
                return i
        raise ValueError("unbalanced parentheses")


def kubernetes_facts(repo: Path, ref: str, source: str) -> dict[str, object]:
    """pulumi-kubernetes's replacement triggers: every object's metadata name and namespace (provider.go: "Changing
    the identity of the resource always causes a replacement"), the per-kind fields of diff.go's forceNew table, and
    a Helm release's name and namespace (helm_release.go)."""
    go = GoProperties(git(repo, "show", f"{ref}:provider/pkg/provider/diff.go"))
    table = go.table()
    metadata = [f".metadata{s}" for s in re.findall(r'\w+ \+ "([^"]*)"', go.funcs["metadataForceNewProperties"][1])]
    release = re.search(r'forceNewFields := \[\]string\{([^}]*)\}',
                        git(repo, "show", f"{ref}:provider/pkg/provider/helm_release.go"))
    if release is None or not metadata:
        raise SystemExit("pulumi-kubernetes: the identity fields are no longer where this script reads them")
    kinds = {}
    for kind in KUBERNETES_KINDS:
        props = metadata + table.get(kind, [])
        kinds[f"kubernetes:{kind}"] = sorted({p.lstrip(".").replace("[*]", "") for p in props})
    kinds["kubernetes:helm.sh/v3:Release"] = sorted(p.lstrip(".") for p in re.findall(r'"([^"]*)"',
                                                                                          release.group(1)))
    commit = git(repo, "rev-list", "-n", "1", ref).strip()
    return {"source": source, "ref": ref, "commit": commit,
            "commitDate": git(repo, "log", "-1", "--format=%cs", commit).strip(),
            "licence": apache_licence(repo, ref),
            "resources": {k: {"replacedOnChange": v} for k, v in sorted(kinds.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terraform-provider-aws", type=Path,
                        help="a git clone of hashicorp/terraform-provider-aws (or a fork of it)")
    parser.add_argument("--ref", default="HEAD", help="its tag or commit to read (default: HEAD)")
    parser.add_argument("--source", default="https://github.com/hashicorp/terraform-provider-aws",
                        help="the repository the clone is of, recorded as the facts' source")
    parser.add_argument("--pulumi-kubernetes", type=Path, help="a git clone of pulumi/pulumi-kubernetes")
    parser.add_argument("--kubernetes-ref", default="HEAD", help="its tag or commit to read (default: HEAD)")
    parser.add_argument("--output", type=Path, default=OUT)
    parser.add_argument("--only", action="append", choices=sorted(PULUMI_TO_TERRAFORM), metavar="TOKEN",
                        help="record only this Pulumi resource type (repeatable; default: every one gpuscale declares)")
    args = parser.parse_args()
    if args.terraform_provider_aws is None and args.pulumi_kubernetes is None:
        parser.error("give --terraform-provider-aws, --pulumi-kubernetes or both")
    # A section not regenerated in this run is kept as it was.
    facts = json.loads(args.output.read_text()) if args.output.is_file() else {}
    if args.terraform_provider_aws is not None:
        facts.update(aws_facts(args))
    if args.pulumi_kubernetes is not None:
        facts["kubernetes"] = kubernetes_facts(args.pulumi_kubernetes, args.kubernetes_ref,
                                               "https://github.com/pulumi/pulumi-kubernetes")
        print(f"pulumi-kubernetes: {len(facts['kubernetes']['resources'])} kinds at {args.kubernetes_ref}")
    args.output.write_text(json.dumps(facts, indent=1) + "\n")
    print(f"wrote {args.output}")


def aws_facts(args: argparse.Namespace) -> dict[str, object]:
    repo, ref = args.terraform_provider_aws, args.ref
    commit = git(repo, "rev-list", "-n", "1", ref).strip()
    changelog = git(repo, "show", f"{ref}:CHANGELOG.md").splitlines()[0].lstrip("# ").strip()
    source = Source(repo, ref)
    resources = {token: source.replacements(terraform) for token, terraform in sorted(PULUMI_TO_TERRAFORM.items())
                 if args.only is None or token in args.only}
    if source.unresolved:
        raise SystemExit("schemas built by helpers this script cannot read: " + ", ".join(source.unresolved))
    print(f"terraform-provider-aws: {len(resources)} resource types from {args.source} at {ref} ({commit[:12]}, "
          f"{changelog})")
    return {"generatedBy": "scripts/provider_facts.py", "source": args.source, "ref": ref, "commit": commit,
            "commitDate": git(repo, "log", "-1", "--format=%cs", commit).strip(), "version": changelog,
            "licence": licence(repo, ref),
            "meaning": "input paths whose change makes terraform-provider-aws (and so pulumi-aws, bridged from "
                       "it) replace the resource: ForceNew or RequiresReplace; replacedIfChanged: only for some "
                       "changes (CustomizeDiff). kubernetes: the fields pulumi-kubernetes replaces an object for",
            "resources": resources}


if __name__ == "__main__":
    sys.exit(main())
