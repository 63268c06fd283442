"""Side-by-side comparison of methods, pure: every method is a set of evaluated points (accuracy, tokens, latency);
the table reports each method's cheapest point that keeps ``>= 97%`` of the base's accuracy. Latency is the mean
per-request time of the interleaved pass (`frugalthink.studies.sidebyside.interleaved_latency`), or of the
evaluation's own timing when that pass has not run.

``comparison.json`` (written by `frugalthink sidebyside`) holds::

    {"base": {point}, "methods": [{"method": ..., "kind": ..., "points": [{point}, ...]}, ...]}

with a point = ``{"label", "accuracy", "accuracy_ci95", "mean_tokens", "latency_p50_ms", "eval_dir"}``.
"""

from __future__ import annotations

from pathlib import Path

from frugalthink.util.jsonl import read_json_object
from frugalthink.util.tables import change, share

MATCHED = 0.97


def point_of(label: str, summary: dict, eval_dir: str | Path) -> dict:
    return {"label": label, "accuracy": summary["accuracy"], "accuracy_ci95": summary["accuracy_ci95"],
            "mean_tokens": summary["mean_tokens"], "latency_p50_ms": summary.get("latency", {}).get("p50_ms"),
            "latency_mean_ms": summary.get("latency", {}).get("mean_ms"),
            "truncated_frac": summary.get("truncation_rate"), "eval_dir": str(eval_dir)}


def matched_point(points: list[dict], base_accuracy: float, ratio: float = MATCHED) -> dict | None:
    """The point with the fewest mean tokens among those with accuracy >= ratio * base accuracy (None if none)."""
    ok = [p for p in points if p["accuracy"] >= ratio * base_accuracy]
    return min(ok, key=lambda p: p["mean_tokens"]) if ok else None


def comparison_table(comp: dict, ratio: float = MATCHED) -> str:
    """Markdown: one row per method -- its cheapest point at matched accuracy, else its most accurate point."""
    from frugalthink.util.stats import aes, format_aes

    base = comp["base"]
    head = (f"| method | kind | points | matched (>= {100 * ratio:.0f}% of base acc.) | accuracy [95% CI] | "
            "mean tokens | tokens vs base | AES | latency ms / request | latency vs base |")
    lines = [head, "|" + "---|" * 10]
    rows = [{"method": "base", "kind": "-", "points": [base]}] + comp["methods"]
    for m in rows:
        pts = m["points"]
        if not pts:
            lines.append(f"| {m['method']} | {m['kind']} | 0 | not run: {m.get('note', '')} |" + " |" * 6)
            continue
        best = matched_point(pts, base["accuracy"], ratio)
        shown = best or max(pts, key=lambda p: p["accuracy"])
        lo, hi = shown["accuracy_ci95"]
        lat, lat0 = shown.get("latency_mean_ms"), base.get("latency_mean_ms")
        lines.append(
            f"| {m['method']} | {m['kind']} | {len(pts)} | "
            f"{shown['label'] if best else 'none (most accurate: ' + shown['label'] + ')'} | "
            f"{shown['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | {shown['mean_tokens']:.1f} | "
            f"{change(shown['mean_tokens'], base['mean_tokens'])} | "
            f"{format_aes(aes(shown['accuracy'], shown['mean_tokens'], base['accuracy'], base['mean_tokens']))} | "
            f"{'' if lat is None else f'{lat:.1f}'} | "
            f"{change(lat, lat0)} |")
    return "\n".join(lines)


def points_table(comp: dict) -> str:
    """Markdown: every evaluated point of every method."""
    base = comp["base"]
    lines = ["| method | point | accuracy [95% CI] | acc. / base | mean tokens | tokens vs base | truncated | "
             "latency ms / request | ms / token |", "|" + "---|" * 9]
    for m in [{"method": "base", "points": [base]}] + comp["methods"]:
        for p in m["points"]:
            lo, hi = p["accuracy_ci95"]
            lat, mpt = p.get("latency_mean_ms"), p.get("latency_ms_per_token")
            trunc = p.get("truncated_frac")
            lines.append(
                f"| {m['method']} | {p['label']} | {p['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | "
                f"{share(p['accuracy'], base['accuracy'])} | {p['mean_tokens']:.1f} | "
                f"{change(p['mean_tokens'], base['mean_tokens'])} | {'' if trunc is None else f'{trunc:.3f}'} | "
                f"{'' if lat is None else f'{lat:.1f}'} | {'' if mpt is None else f'{mpt:.2f}'} |")
    return "\n".join(lines)


_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")
_MARKERS = "osD^v<>pPX*h"


def method_style(k: int) -> tuple[str, str]:
    """(colour, marker) of the ``k``-th method on the plot; past the palette the marker shifts, so that no two of the
    first 144 methods share both."""
    return _COLORS[k % len(_COLORS)], _MARKERS[(k + k // len(_COLORS)) % len(_MARKERS)]


def plot_comparison(comp: dict, path: Path, ratio: float = MATCHED) -> None:
    """Accuracy vs mean tokens, one colour/marker per method (a method's points joined in token order; other
    training seeds hollow and dotted). Left: everything; right: the region around the base's accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = comp["base"]
    fig, axes = plt.subplots(1, 2, figsize=(13.0, 5.2), gridspec_kw={"width_ratios": [1, 1]})
    families: dict[str, int] = {}
    for m in comp["methods"]:
        families.setdefault(m.get("family", m["method"]), len(families))
    zoom_lo = ratio * base["accuracy"] - 0.04
    for ax, zoom in zip(axes, (False, True), strict=True):
        for m in comp["methods"]:
            if not m["points"]:
                continue
            k = families[m.get("family", m["method"])]
            pts = sorted(m["points"], key=lambda p: p["mean_tokens"])
            xs, ys = [p["mean_tokens"] for p in pts], [p["accuracy"] for p in pts]
            ours, other_seed = m["kind"] == "ours", bool(m.get("seed"))
            color, marker = method_style(k)
            ax.plot(xs, ys, marker=marker, color=color,
                    ls=(":" if other_seed else "-") if len(pts) > 1 else "none",
                    markerfacecolor="none" if other_seed else color, lw=2.2 if ours else 1.0,
                    ms=8 if ours else 6, label=m["method"], zorder=3 if ours else 2)
        ax.plot([base["mean_tokens"]], [base["accuracy"]], marker="*", ms=14, color="black", ls="none",
                label="base", zorder=4)
        ax.axhline(ratio * base["accuracy"], ls=":", color="grey", lw=1, label=f"{100 * ratio:.0f}% of base accuracy")
        if comp.get("oracle_mean_tokens"):
            ax.axvline(comp["oracle_mean_tokens"], ls="--", color="grey", lw=1,
                       label="oracle trace tokens (chain: the minimum; tally: the fine trace)")
        ax.set_xlabel("mean completion tokens (test set)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        if zoom:
            ax.set_ylim(zoom_lo, 1.0 + 0.15 * (1.0 - zoom_lo))
            ax.set_title(f"zoom: accuracy >= {zoom_lo:.2f}")
        else:
            ax.set_title("every method, measured the same way")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def load_comparison(d: str | Path) -> dict:
    return read_json_object(Path(d) / "comparison.json", ("base", "methods"), "run `frugalthink sidebyside` first")


def write_comparison_report(d: str | Path) -> tuple[Path, Path]:
    """comparison.md (both tables) and comparison.png from comparison.json; returns their paths."""
    d = Path(d)
    comp = load_comparison(d)
    png, md = d / "comparison.png", d / "comparison.md"
    plot_comparison(comp, png)
    md.write_text("## Cheapest point at matched accuracy\n\n" + comparison_table(comp) +
                  "\n\n## Every point\n\n" + points_table(comp) + "\n")
    return md, png
