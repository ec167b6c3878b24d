"""Pictures of training runs."""

import json
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str) -> List[Dict]:
    """Rows of Detectron2's ``metrics.json`` (one JSON object per line) that have an
    ``iteration``."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                row = json.loads(line)
                if "iteration" in row:
                    rows.append(row)
    return rows


def plot_loss_curves(metrics_path: str, out_png: str, title: str = "") -> List[str]:
    """Plot every ``loss*`` series of ``metrics.json`` against iteration; returns the series
    names."""
    rows = read_metrics(metrics_path)
    names = sorted({k for r in rows for k in r if k.startswith("loss") or k == "total_loss"})
    if not names:
        raise ValueError(f"{metrics_path} has no loss values")
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        pts = [(r["iteration"], r[name]) for r in rows if name in r]
        ax.plot(*zip(*pts), label=name, linewidth=2.5 if name == "total_loss" else 1.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title or metrics_path)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return names
