"""`gpuscale review`: what a pull request changes, whether it is allowed, and what it costs, per stack.

Plans every stack at the pull request's head (this checkout) and at its base (another checkout, planned by its own
environment so its own components are used), diffs them, lists the head's policy findings and the cost change,
and writes one markdown report: the job summary and the pull-request comment of `.github/workflows/review.yml`.
Exit 1 when a mandatory policy rule (or another pre-apply check) finds an error at the head.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..config import ConfigError
from ..config.project import find_project_dir, read_project
from .engine import PlanError, plan_document
from .model import Plan

MARKER = "<!-- gpuscale-review -->"
"""First line of the comment: how the workflow finds its own comment to update instead of adding another."""
EXIT_BLOCKED = 1
EXIT_INVALID = 2


@dataclass
class StackReview:
    stack: str
    markdown: str
    blocking: int


def stacks_of(project: Path) -> list[str]:
    """The project's stacks: those with a file in its stackConfigDir."""
    return read_project(project).stacks()


def _has_stack(project: Path, stack: str) -> bool:
    try:
        read_project(project).stack_file(stack)
    except ConfigError:
        return False
    return True


def review_stack(head: Path, base: Path | None, stack: str, base_python: str) -> StackReview:
    from ..cost import StackCost, compare, cost_of_plan_json, estimate, render_change, render_cost
    from .diff import diff_plans

    head_doc, _ = plan_document(head, stack, accept_check_errors=True)
    head_plan = Plan.from_json(head_doc)
    base_doc, base_note = None, ""
    if base is not None and _has_stack(base, stack):
        try:
            base_doc, _ = plan_document(base, stack, base_python, accept_check_errors=True)
        except PlanError as exc:
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no message"
            base_note = f"The base could not be planned, so nothing is compared with it: {last}"
    elif base is not None:
        base_note = "A new stack: it has no file at the base."
    base_plan = Plan.from_json(base_doc) if base_doc is not None else Plan(head_plan.project, stack, (), {})
    base_cost: StackCost | None = None
    if base_doc is not None:
        base_cost = cost_of_plan_json(base_doc)
        if base_cost is None and base is not None:  # a base from before cost estimates: price it with this code
            from ..config import load_stack_file
            from ..config.files import settings_namespace

            try:
                # The base's settings where its program reads them, found as `gpuscale plan` finds them.
                namespace = settings_namespace(base, stack)
                base_cost = estimate(load_stack_file(base, stack, namespace=namespace), base_plan) \
                    if namespace is not None else StackCost("", error="the base's stack file holds no platform "
                                                            "settings to price")
            except ConfigError as exc:
                base_cost = StackCost("", error=f"the base's config does not validate under this gpuscale: {exc}")
    diff = diff_plans(base_plan, head_plan)
    checks = head_doc.get("checks", [])
    lines = [f"### Stack `{stack}`", ""]
    if base_note:
        lines += [f"_{base_note}_", ""]
    lines += _resources(diff) if base_doc is not None or base is None or not base_note.startswith("The base") \
        else ["**Resources**: not compared"]
    lines += _policy(checks)
    head_cost = cost_of_plan_json(head_doc)
    if base_doc is not None:
        cost_text = render_change(compare(base_cost, head_cost))
    else:
        cost_text = render_cost(head_cost) if head_cost is not None else "Monthly cost: not estimated"
    lines += ["", "**Cost**", "", "```", cost_text, "```"]
    blocking = sum(1 for c in checks if c["severity"] == "error")
    return StackReview(stack, "\n".join(lines), blocking)


def _resources(diff: Any) -> list[str]:
    from .diff import change_lines, replacement_source

    lines = [f"**Resources**: {diff.summary()}", ""]
    if diff.equal:
        return lines + ["No resource changes."]
    source = [f"_{replacement_source()}_", ""] if diff.replaced else []
    return lines + ["<details><summary>What changes</summary>", "", "```diff", *change_lines(diff, 60), "```", "",
                    *source, "</details>"]


def _policy(checks: list[dict[str, Any]]) -> list[str]:
    policy = [c for c in checks if c["check"].startswith("policy:")]
    other = [c for c in checks if not c["check"].startswith("policy:") and c["severity"] != "info"]
    errors = sum(1 for c in policy if c["severity"] == "error")
    lines = ["", f"**Policy**: {errors} mandatory, {sum(c['severity'] == 'warning' for c in policy)} advisory, "
                 f"{sum(c['severity'] == 'info' for c in policy)} accepted", ""]
    if policy:
        lines += ["| | rule | finding |", "|---|---|---|"]
        icon = {"error": "mandatory ❌", "warning": "advisory ⚠️", "info": "accepted"}
        lines += [f"| {icon[c['severity']]} | `{c['check'][len('policy:'):]}` | {_cell(c['message'])} |"
                  for c in policy]
    if other:
        lines += ["", "**Pre-apply checks**", ""]
        lines += [f"- {c['severity']}: [{c['check']}] {_cell(c['message'])}" for c in other]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(reviews: list[StackReview]) -> str:
    blocking = sum(r.blocking for r in reviews)
    verdict = "❌ blocked by mandatory findings" if blocking else "✅ no mandatory findings"
    head = [MARKER, "## gpuscale review", "",
            f"{verdict}. Offline plan of every stack at this pull request's head against its base (`gpuscale "
            "review`); the real `pulumi preview` comments separately where the repository has cloud access.", ""]
    return "\n".join(head + [r.markdown + "\n" for r in reviews])


@click.command()
@click.option("--base", "base_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Checkout of the pull request's base (default: none; every resource shows as added).")
@click.option("--base-python", default=sys.executable, show_default="this Python",
              help="Python of the base checkout's environment, so the base is planned with its own components.")
@click.option("--stack", "-s", "stacks", multiple=True,
              help="Stack to review (repeatable; default: every stack in the head's stackConfigDir).")
@click.option("--project-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The head checkout (default: the nearest directory with a Pulumi.yaml).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here (the pull-request comment).")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the report here too (GitHub's $GITHUB_STEP_SUMMARY).")
def review(base_dir: Path | None, base_python: str, stacks: tuple[str, ...], project_dir: Path | None,
           markdown_path: Path | None, summary_path: Path | None) -> None:
    """Review a change offline: per stack the resources it adds, changes, replaces and removes, the policy
    findings, and the cost change. Exit 1 when a mandatory finding blocks it, 2 on bad input."""
    try:
        head = (project_dir or find_project_dir(Path.cwd())).resolve()
        names = list(stacks) or stacks_of(head)
        if not names:
            raise PlanError(f"no stacks in {read_project(head).stack_config_dir}")
        reviews = [review_stack(head, base_dir.resolve() if base_dir else None, s, base_python) for s in names]
    except (PlanError, ConfigError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    report = render(reviews)
    if markdown_path is not None:
        markdown_path.write_text(report + "\n")
    if summary_path is not None:
        with summary_path.open("a") as f:
            f.write(report + "\n")
    click.echo(report)
    if any(r.blocking for r in reviews):
        sys.exit(EXIT_BLOCKED)
