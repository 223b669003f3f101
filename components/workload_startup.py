"""The user's own startup on a self-managed GPU instance, beside the agent's: a container run with its GPUs, or
extra user data (a shell script or a cloud-config document).

One home for the rules (`startup_problem`, which the stack config and GpuAutoScalingGroup both apply) and the
rendering (`render_launch_user_data`): the agent's boot script stays the first part, unchanged, of a MIME multi-part
archive that cloud-init splits by content type (text/x-shellscript, text/cloud-config: cloud-init's "User data
formats"), so the user's part can neither delay nor break the agent's install. Pure data: the config reads it
without importing Pulumi.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
import hashlib
from email.charset import Charset
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any, TypedDict

import yaml
from typing_extensions import NotRequired

from .arg_rules import Refusal
from .kube_values import is_pinned_image

WORKLOAD_UNIT = "gpuscale-workload.service"
WORKLOAD_SCRIPT = "/usr/local/sbin/gpuscale-workload"
CONTAINER_NAME = "gpuscale-workload"
WORKLOAD_LOG = "/var/log/gpuscale-workload-install.log"
RESTART_POLICIES = ("always", "on-failure", "no")
"""systemd's Restart= values the unit takes: always (a server), on-failure (a job that may finish), no."""
MAX_USER_DATA_BYTES = 16_384
"""EC2 takes at most 16 KB of user data before base64 encoding."""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_PATH = r"/[A-Za-z0-9._/-]*"
VOLUME = re.compile(rf"({HOST_PATH}):({HOST_PATH})(:ro)?")
SHELL_SCRIPT, CLOUD_CONFIG = "#!", "#cloud-config"


class ContainerArgs(TypedDict):
    image: str
    """Image with a tag or digest (no implicit :latest), e.g. "vllm/vllm-openai:v0.11.0"."""
    args: NotRequired[Sequence[str]]
    """Arguments after the image (the entrypoint's). Default none."""
    ports: NotRequired[Sequence[int]]
    """Container ports published on the same host port (the group's security group decides who reaches them).
    Default none."""
    env: NotRequired[Mapping[str, str]]
    """Environment variables. Plain values only: they are visible in the launch template; secrets belong in
    Secrets Manager, read by the container with the instance role. Default none."""
    volumes: NotRequired[Sequence[str]]
    """Host paths mounted into the container, "/host:/container" or "/host:/container:ro"; the host directory is
    created. On the instance's root volume a model downloaded once survives restarts and warm-pool stops.
    Default none."""
    gpus: NotRequired[str | int]
    """Docker's --gpus: "all" or a count. Default "all"."""
    ipc_host: NotRequired[bool]
    """Share the host's IPC namespace (--ipc=host): PyTorch's workers exchange tensors through shared memory,
    which a container's 64 MB /dev/shm starves. Default False."""
    restart: NotRequired[str]
    """When systemd restarts the container: "always", "on-failure" or "no". Default "always"."""


class StartupArgs(TypedDict):
    container: NotRequired[ContainerArgs]
    """A container to run on every boot once Docker is up, after the agent's install."""
    user_data: NotRequired[str]
    """Extra user data: a shell script ("#!" first) or a cloud-config document ("#cloud-config" first), run by
    cloud-init after the agent's part (a script once, at first boot)."""




def _control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def startup_problem(startup: Mapping[str, Any], reserved_ports: Sequence[int] = ()) -> Refusal | None:
    """None when the startup can be rendered and run, else the first value refused. `reserved_ports` are ports the
    instance already serves (the agent's Prometheus port)."""
    unknown = sorted(set(startup) - set(StartupArgs.__annotations__))
    if unknown:
        return Refusal(unknown[0], startup[unknown[0]], "container or user_data")
    if not startup:
        return Refusal("container", None, "a container, user_data, or both")
    if "user_data" in startup:
        problem = _user_data_problem(startup["user_data"])
        if problem is not None:
            return problem
    if "container" in startup:
        return _container_problem(startup["container"], reserved_ports)
    return None


def _user_data_problem(text: Any) -> Refusal | None:
    if not isinstance(text, str) or not text.startswith((SHELL_SCRIPT, CLOUD_CONFIG)):
        return Refusal("user_data", text, 'a shell script starting with "#!" or a cloud-config document '
                                                 'starting with "#cloud-config"')
    if text.startswith(CLOUD_CONFIG):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as err:
            return Refusal("user_data", text, f"valid YAML in a cloud-config document ({err})")
        if not isinstance(doc, dict):
            return Refusal("user_data", text, "a cloud-config document that is a YAML mapping")
    return None


def _container_problem(c: Any, reserved_ports: Sequence[int]) -> Refusal | None:
    if not isinstance(c, Mapping):
        return Refusal("container", c, "a mapping with image and optional args, ports, env, volumes, gpus, "
                                              "ipc_host, restart")
    unknown = sorted(set(c) - set(ContainerArgs.__annotations__))
    if unknown:
        return Refusal(f"container.{unknown[0]}", c[unknown[0]],
                              "keys " + ", ".join(ContainerArgs.__annotations__))
    image = c.get("image")
    if not isinstance(image, str) or not is_pinned_image(image):
        return Refusal("container.image", image, "an image reference with a tag or digest, e.g. "
                                                        "vllm/vllm-openai:v0.11.0 (no implicit :latest: every "
                                                        "instance of the group runs the same image)")
    for i, arg in enumerate(_sequence(c.get("args"))):
        if not isinstance(arg, str) or _control(arg):
            return Refusal(f"container.args[{i}]", arg, "a string without control characters")
    ports = list(_sequence(c.get("ports")))
    for i, port in enumerate(ports):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            return Refusal(f"container.ports[{i}]", port, "a TCP port from 1 to 65535")
        if port in reserved_ports or port in ports[:i]:
            return Refusal(f"container.ports[{i}]", port, "a port not already published on the instance "
                                                                 f"(taken: {sorted({*reserved_ports, *ports[:i]})})")
    env = c.get("env") or {}
    if not isinstance(env, Mapping):
        return Refusal("container.env", env, "a mapping of variable names to string values")
    for name, value in env.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            return Refusal(f"container.env.{name}", value, "a variable name: letters, digits and _, not "
                                                                  "starting with a digit")
        if not isinstance(value, str) or _control(value):
            return Refusal(f"container.env.{name}", value, "a string value without control characters")
    for i, volume in enumerate(_sequence(c.get("volumes"))):
        if not isinstance(volume, str) or not VOLUME.fullmatch(volume):
            return Refusal(f"container.volumes[{i}]", volume,
                                  '"/host/path:/container/path", optionally ":ro" (absolute paths of letters, '
                                  "digits, . _ - /)")
    gpus = c.get("gpus", "all")
    if gpus != "all" and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1):
        return Refusal("container.gpus", gpus, '"all" or a number of GPUs >= 1')
    if not isinstance(c.get("ipc_host", False), bool):
        return Refusal("container.ipc_host", c["ipc_host"], "true or false")
    if c.get("restart", "always") not in RESTART_POLICIES:
        return Refusal("container.restart", c["restart"], "one of " + ", ".join(RESTART_POLICIES))
    return None


def _sequence(value: Any) -> Sequence[Any]:
    if value is None:
        return ()
    return [value] if isinstance(value, (str, bytes, Mapping)) else value


def docker_run_command(c: ContainerArgs) -> list[str]:
    """The `docker run` the unit executes: in the foreground (systemd supervises and restarts it), removed when it
    stops, so a restart never finds its name taken."""
    cmd = ["docker", "run", "--rm", "--name", CONTAINER_NAME, "--gpus", str(c.get("gpus", "all"))]
    if c.get("ipc_host"):
        cmd.append("--ipc=host")
    for port in c.get("ports") or ():
        cmd += ["-p", f"{port}:{port}"]
    for volume in c.get("volumes") or ():
        cmd += ["-v", volume]
    for name, value in (c.get("env") or {}).items():
        cmd += ["-e", f"{name}={value}"]
    return cmd + [c["image"], *(c.get("args") or ())]


def render_container_part(c: ContainerArgs) -> str:
    """The shell part that installs WORKLOAD_UNIT: enabled, so it starts on every boot, including an instance that
    leaves a stopped warm pool (cloud-init does not run user data scripts again then, but systemd starts enabled
    units). Docker comes with the Deep Learning AMIs; elsewhere it is installed and given the NVIDIA runtime."""
    # One line of shell-quoted words (control characters are refused), so no line can end the here-document.
    run_line = "exec " + shlex.join(docker_run_command(c))
    host_dirs = sorted({VOLUME.fullmatch(v).group(1) for v in c.get("volumes") or ()})  # type: ignore[union-attr]
    make_dirs = f"mkdir -p {shlex.join(host_dirs)}\n" if host_dirs else ""
    return f"""#!/bin/bash
# gpuscale: run the workload container {c['image']} as {WORKLOAD_UNIT} (after the agent's part).
set -euo pipefail
exec > >(tee -a {WORKLOAD_LOG}) 2>&1
if ! command -v docker >/dev/null; then
  if command -v dnf >/dev/null; then dnf install -y -q docker; else apt-get update -q && apt-get install -y -q docker.io; fi
  # --gpus needs the NVIDIA container toolkit (the GPU AMIs ship it): register its runtime with Docker.
  if command -v nvidia-ctk >/dev/null; then nvidia-ctk runtime configure --runtime=docker; fi
fi
{make_dirs}cat > {WORKLOAD_SCRIPT} <<'GPUSCALE_RUN'
#!/bin/bash
# gpuscale: the group's workload container, started by {WORKLOAD_UNIT}.
{run_line}
GPUSCALE_RUN
chmod 0755 {WORKLOAD_SCRIPT}
cat > /etc/systemd/system/{WORKLOAD_UNIT} <<'GPUSCALE_UNIT'
{workload_unit(c.get('restart', 'always'))}GPUSCALE_UNIT
systemctl daemon-reload
systemctl enable docker
systemctl restart docker
# --no-block: the image pull and model load take minutes; cloud-init's boot goes on meanwhile.
systemctl enable --now --no-block {WORKLOAD_UNIT}
"""


def workload_unit(restart: str) -> str:
    return f"""[Unit]
Description=The GPU group's workload container (gpuscale)
Wants=network-online.target docker.service
After=network-online.target docker.service

[Service]
Type=simple
ExecStartPre=-/bin/sh -c 'docker rm -f {CONTAINER_NAME}'
ExecStart={WORKLOAD_SCRIPT}
ExecStop=/bin/sh -c 'docker stop --time 30 {CONTAINER_NAME}'
Restart={restart}
RestartSec=10
# The first start pulls a multi-gigabyte image: no start timeout.
TimeoutStartSec=0

[Install]
WantedBy=multi-user.target
"""


def render_launch_user_data(agent_script: str, startup: StartupArgs | None) -> str:
    """The launch template's user data: the agent's script alone, or with the startup a MIME multi-part archive
    (agent first, then the container, then the extra user data). Refuses more than EC2's 16 KB."""
    if not startup:
        return agent_script
    # cloud-init runs the scripts of an archive in the order of their file names (its scripts-user runs the
    # directory sorted), hence the numbers: the agent's install first.
    parts = [("x-shellscript", "10-gpu-metrics-agent.sh", agent_script)]
    if "container" in startup:
        parts.append(("x-shellscript", "20-gpuscale-workload.sh", render_container_part(startup["container"])))
    if "user_data" in startup:
        text = startup["user_data"]
        kind = "cloud-config" if text.startswith(CLOUD_CONFIG) else "x-shellscript"
        parts.append((kind, "30-user-data.cfg" if kind == "cloud-config" else "30-user-data.sh", text))
    # A boundary derived from the content (not email's random one), so two plans of one stack are identical and a
    # new launch template version appears only when something changed; it never occurs in the parts.
    boundary = "==gpuscale-" + hashlib.sha256("".join(t for _, _, t in parts).encode()).hexdigest()[:24] + "=="
    assert not any(boundary in t for _, _, t in parts)
    # 8bit bodies, not base64: the scripts stay readable in the plan and a third smaller under EC2's limit.
    plain = Charset("utf-8")
    plain.body_encoding = None
    archive = MIMEMultipart(boundary=boundary)
    for subtype, filename, text in parts:
        part = MIMEText(text, subtype, plain)
        part.add_header("Content-Disposition", "attachment", filename=filename)
        archive.attach(part)
    rendered = archive.as_string()
    if len(rendered.encode()) > MAX_USER_DATA_BYTES:
        raise ValueError(f"startup: user data of {len(rendered.encode())} bytes is not allowed; allowed: at most "
                         f"{MAX_USER_DATA_BYTES} bytes with the agent's script (EC2's limit): shorten user_data or "
                         "fetch a longer script from S3 in it")
    return rendered
