"""`gpuscale simulate`: replay a request trace through the stack's scaling and compare it with named presets."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from ..config import PROJECT, ConfigError, StackConfig, load_stack_file
from ..config.files import NAMESPACE_OPTION, settings_namespace
from ..config.project import read_project
from ..config.reader import REQUIRED
from .presets import PRESETS
from .report import render_table
from .results import GroupSimulation, SimulationError, group_service, peak_rps, simulate_group
from .service import service_model
from .serving import SERVICE_PRESETS, simulate_service
from .serving import peak_rps as service_peak_rps
from .traces import BUILTIN_TRACES, TraceError, load

EXIT_INVALID = 2
DEFAULT_PRESETS = ("stack", "ideal")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 7 * 86400


def parse_duration(text: str) -> int:
    """`90`, `90s`, `15m`, `2h` or `1d` as whole seconds (1 s to 7 days)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration; use seconds or a number with s, m, h or d (e.g. 2h)",
                                 param_hint="--duration")
    seconds = round(float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"])
    if not 1 <= seconds <= MAX_DURATION:
        raise click.BadParameter(f"{text!r} is {seconds} s; allowed: 1 s to 7 days", param_hint="--duration")
    return seconds


@click.command()
@click.option("--stack", "-s", required=True,
              help="Stack whose config to simulate: Pulumi.<stack>.yaml in the project's stackConfigDir.")
@click.option("--trace", "-t", "trace_name", default="burst", show_default=True,
              help=f"Built-in trace ({', '.join(BUILTIN_TRACES)}) or a CSV file (`timestamp` or `second,requests`).")
@click.option("--group", "-g", "groups", multiple=True,
              help="Auto Scaling group or EKS node group to simulate (repeatable; default: every group with a "
                   "workload section).")
@click.option("--service", "services", multiple=True,
              help="Model service of gpuscale:services to simulate on the EKS path: its pod autoscaler, "
                   "cluster-autoscaler, node, device plugin, image pull and model load (repeatable).")
@click.option("--preset", "-p", "presets", multiple=True, type=click.Choice(list(dict.fromkeys(
              [*PRESETS, *SERVICE_PRESETS]))),
              help=f"Preset to run (repeatable; default: {', '.join(DEFAULT_PRESETS)}). A service runs "
                   f"{', '.join(SERVICE_PRESETS)}.")
@click.option("--compare", is_flag=True, help="Run every preset side by side, with ratios against ideal.")
@click.option("--suggest-headroom", is_flag=True,
              help="With --service: the smallest gpuscale:headroom on the service's node group whose p95 wait on "
                   "the trace is within --target-p95, and its cost per day.")
@click.option("--target-p95", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds: the p95 wait --suggest-headroom aims at.")
@click.option("--duration", help="Simulated time, e.g. 2h (default: the trace plus time for every preset to "
                                 "settle; built-in diurnal and spiky traces take this length).")
@click.option("--step", "step_seconds", type=click.FloatRange(min=1, max=86400),
              help="Seconds in one step of the P unit (default: the workload's mean service time).")
@click.option("--static-replicas", type=click.IntRange(min=1, max=100_000),
              help="Replicas of the static preset (default: the group's maxSize in replicas).")
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a chart of demand, queue and capacity over time (several groups: one file each).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every figure as JSON to this file.")
@click.option("--project-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory holding Pulumi.yaml (default: the nearest one at or above the current directory).")
@click.option("--config-namespace", "namespace", metavar="NAMESPACE",
              help="The config namespace the program reads the platform's settings from (what it passes to "
                   "load_program_config), where it is not the project's name. Default: the project's name if the "
                   "stack file holds settings there, else gpuscale.")
def simulate(stack: str, trace_name: str, groups: tuple[str, ...], services: tuple[str, ...],
             presets: tuple[str, ...], compare: bool, suggest_headroom: bool, target_p95: float,
             duration: str | None, step_seconds: float | None,
             static_replicas: int | None, png_path: Path | None, json_path: Path | None,
             project_dir: Path | None, namespace: str | None) -> None:
    """Predict cost and latency of STACK's scaling under a request trace, before `pulumi up`."""
    seconds = parse_duration(duration) if duration is not None else None
    chosen = list(PRESETS) if compare else list(dict.fromkeys(presets or DEFAULT_PRESETS))
    if suggest_headroom:
        _suggest_headroom(stack, services, trace_name, target_p95, seconds, project_dir, namespace)
        return
    try:
        config = _config(project_dir, stack, namespace)
        sims = []
        if groups or not services:
            group_presets = [p for p in chosen if p in PRESETS]
            _unknown(chosen if not services else [], PRESETS, "a group")
            sims += [_simulate(group, config, trace_name, group_presets, seconds, step_seconds, static_replicas)
                     for group in _groups(config, groups)]
        if services:
            service_presets = list(SERVICE_PRESETS) if compare else chosen
            _unknown(service_presets, SERVICE_PRESETS, "a service")
            sims += [_simulate_service(service, config, trace_name, service_presets, seconds, step_seconds, compare)
                     for service in _services(config, services)]
    except ConfigError as exc:
        _fail(f"invalid config for stack {stack}: {exc}")
    except (TraceError, SimulationError) as exc:
        _fail(str(exc))
    for sim in sims:
        click.echo(render_table(sim))
        click.echo()
    if json_path is not None:
        from .report import simulation_json

        _write(json_path, json.dumps(simulation_json(stack, sims), indent=2) + "\n", "--json")
    if png_path is not None:
        from .chart import ChartError, write_chart

        for sim in sims:
            path = png_path if len(sims) == 1 else png_path.with_name(f"{png_path.stem}-{sim.group}{png_path.suffix}")
            try:
                write_chart(sim, path)
            except ChartError as exc:
                _fail(str(exc))
            click.echo(f"Chart written to {path}")


def _config(project_dir: Path | None, stack: str, namespace: str | None) -> StackConfig:
    """The stack's settings where the program reads them (settings_namespace, shared with `gpuscale plan`)."""
    project = _project(project_dir)
    found = settings_namespace(project, stack, namespace)
    if found is None:
        raise ConfigError(f"{PROJECT}:nodeGroups", REQUIRED, "the platform's settings, which the simulator runs: "
                          f"none in this project's namespace or the project's own ({read_project(project).name}:); "
                          f"name the program's with {NAMESPACE_OPTION}")
    return load_stack_file(project, stack, namespace=found)


def _project(project_dir: Path | None) -> Path:
    if project_dir is not None:
        return project_dir
    from ..config.project import ProjectError, find_project_dir

    try:
        return find_project_dir(Path.cwd())
    except ProjectError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def _groups(config, names: tuple[str, ...]) -> list:
    by_name = {g.name: g for g in (*config.auto_scaling_groups, *config.node_groups)}
    for name in names:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise SimulationError(f"--group {name!r}: not a node group or Auto Scaling group of stack {config.stack} "
                                  f"(its groups: {known})")
    chosen = [by_name[n] for n in dict.fromkeys(names)] or [g for g in by_name.values() if g.workload is not None]
    if not chosen:
        raise SimulationError(f"stack {config.stack} has no group with a workload: section to simulate "
                              "(see docs/simulate.md)")
    return chosen


def _unknown(presets: list[str], known, what: str) -> None:
    for name in presets:
        if name not in known:
            raise SimulationError(f"--preset {name}: not a preset for {what} (those are {', '.join(known)})")


def _services(config, names: tuple[str, ...]) -> list:
    by_name = {s.name: s for s in config.services}
    for name in names:
        if name not in by_name:
            raise SimulationError(f"--service {name!r}: not a service of stack {config.stack} (its services: "
                                  f"{', '.join(by_name) or 'none; see gpuscale:services in docs/simulate.md'})")
    return [by_name[n] for n in dict.fromkeys(names)]


def _suggest_headroom(stack, services, trace_name, target_p95, seconds, project_dir, namespace) -> None:
    from .serving import render_suggestion, suggest_headroom

    if not services:
        _fail("--suggest-headroom: name the service with --service")
    try:
        config = _config(project_dir, stack, namespace)
        for service in _services(config, services):
            trace = load(trace_name, service_peak_rps(service, service_model(service.workload)), seconds)
            click.echo(render_suggestion(service, suggest_headroom(service, config, trace, target_p95)))
    except ConfigError as exc:
        _fail(f"invalid config for stack {stack}: {exc}")
    except (TraceError, SimulationError) as exc:
        _fail(str(exc))


def _simulate_service(service, config, trace_name, presets, seconds, step_seconds,
                      lever_rows: bool = False) -> GroupSimulation:
    trace = load(trace_name, service_peak_rps(service, service_model(service.workload)), seconds)
    return simulate_service(service, config, trace, presets, duration=seconds, step_seconds=step_seconds,
                            lever_rows=lever_rows)


def _simulate(group, config, trace_name, presets, seconds, step_seconds, static_replicas) -> GroupSimulation:
    trace = load(trace_name, peak_rps(group, group_service(group)), seconds)
    return simulate_group(group, config.agent, trace, presets, duration=seconds, step_seconds=step_seconds,
                          static_replicas=static_replicas, kubernetes=config.kubernetes)


def _write(path: Path, text: str, option: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        _fail(f"{option} {path}: cannot write ({exc.strerror or exc})")


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_INVALID)
