#!/usr/bin/env python3
"""Pin the workflows' actions to full commit SHAs, from the tags in .github/action-pins.json.

For each action the file names a tag (the release we reviewed); this script resolves the tag to the commit it
points at (annotated tags peeled), records the SHA with where and when it was resolved, and rewrites every
`uses: owner/repo@...` line in .github/workflows/ to `owner/repo@SHA # tag`. Resolution is `git ls-remote` against
GitHub, or a local clone or mirror (`--mirror owner/repo=PATH`) where GitHub is not reachable.

    python scripts/pin_actions.py                       # resolve every tag, rewrite the workflows
    python scripts/pin_actions.py --mirror actions/checkout=/src/checkout.git
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / ".github" / "action-pins.json"
WORKFLOWS = ROOT / ".github" / "workflows"
USES = re.compile(r"(uses:\s*)([\w.-]+/[\w.-]+)@[^\s#]+(\s*#.*)?$", re.M)


def resolve(repo: str, tag: str, mirror: str | None) -> tuple[str, str]:
    """(commit SHA, where it was resolved) of `tag` in `repo`."""
    if mirror is not None:
        sha = subprocess.run(["git", "-C", mirror, "rev-parse", f"refs/tags/{tag}^{{commit}}"], check=True,
                             capture_output=True, text=True).stdout.strip()
        return sha, f"git rev-parse refs/tags/{tag}^{{commit}} in a mirror of github.com/{repo}"
    out = subprocess.run(["git", "ls-remote", f"https://github.com/{repo}", f"refs/tags/{tag}",
                          f"refs/tags/{tag}^{{}}"], check=True, capture_output=True, text=True).stdout
    refs = dict(reversed(line.split("\t")) for line in out.splitlines() if line)
    sha = refs.get(f"refs/tags/{tag}^{{}}") or refs.get(f"refs/tags/{tag}")
    if sha is None:
        raise SystemExit(f"{repo}: no tag {tag}")
    return sha, f"git ls-remote https://github.com/{repo} refs/tags/{tag}"


def rewrite(pins: dict[str, dict[str, str]]) -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()

        def pin(m: re.Match[str]) -> str:
            repo = m.group(2)
            if repo not in pins:
                raise SystemExit(f"{path.name}: {repo} is not in {PINS.name}; add it with the tag to pin")
            return f"{m.group(1)}{repo}@{pins[repo]['sha']} # {pins[repo]['tag']}"

        path.write_text(USES.sub(pin, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", action="append", default=[], help="owner/repo=PATH of a local clone")
    args = parser.parse_args()
    mirrors = dict(m.split("=", 1) for m in args.mirror)
    pins = json.loads(PINS.read_text())
    today = datetime.date.today().isoformat()
    for repo, pin in pins.items():
        sha, source = resolve(repo, pin["tag"], mirrors.get(repo))
        pins[repo] = {"tag": pin["tag"], "sha": sha, "source": source, "date": today}
    PINS.write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")
    rewrite(pins)
    print("\n".join(f"{repo}@{p['sha']} # {p['tag']}" for repo, p in sorted(pins.items())))


if __name__ == "__main__":
    main()
