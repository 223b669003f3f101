"""`--png`: demand, queue, ready and starting capacity over time, one panel per preset.

matplotlib is an optional extra (`gpuscale[charts]`): it is imported here only, when a chart is asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .results import GroupSimulation


class ChartError(RuntimeError):
    """A chart that cannot be drawn (matplotlib missing, or the file cannot be written)."""


def write_chart(sim: GroupSimulation, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display, no GUI toolkit
        import matplotlib.pyplot as plt
    except ImportError:
        raise ChartError("--png needs matplotlib; install it with: pip install 'gpuscale[charts]'") from None
    names = list(sim.runs)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.4 * len(names) + 0.6), sharex=True, squeeze=False)
    window = sim.window
    seconds = np.arange(window)
    for ax, name in zip(axes[:, 0], names):
        run = sim.runs[name]
        ax.plot(seconds, (run.queued + run.busy)[:window], color="tab:gray", label="outstanding requests")
        ax.plot(seconds, run.queued[:window], color="tab:red", label="waiting requests")
        ax.set_ylabel("requests")
        twin = ax.twinx()
        twin.step(seconds, run.ready_replicas[:window], where="post", color="tab:blue", label="ready replicas")
        twin.step(seconds, run.starting_replicas[:window], where="post", color="tab:orange",
                  label="starting replicas")
        twin.set_ylabel("replicas")
        twin.set_ylim(bottom=0)
        ax.set_title(f"{name}", loc="left", fontsize=10)
        lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(lines, [line.get_label() for line in lines], loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(f"{sim.group}: {sim.trace.name} ({sim.trace.description})", fontsize=11)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise ChartError(f"--png {path}: cannot write the chart ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
