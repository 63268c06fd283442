"""Side-by-side comparison of methods, pure: every method is a set of evaluated points (accuracy, tokens, latency);
the table reports each method's cheapest point that keeps ``>= 97%`` of the base's accuracy. Latency is the mean
per-request time of the interleaved pass (`frugalthink.commands.sidebyside.interleaved_latency`), or of the
evaluation's own timing when that pass has not run.

``comparison.json`` (written by `frugalthink sidebyside`) holds::

    {"base": {point}, "methods": [{"method": ..., "kind": ..., "points": [{point}, ...]}, ...]}

with a point = ``{"label", "accuracy", "accuracy_ci95", "mean_tokens", "latency_p50_ms", "eval_dir"}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from frugalthink.errors import UserError

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
    base = comp["base"]
    head = (f"| method | kind | points | matched (>= {100 * ratio:.0f}% of base acc.) | accuracy [95% CI] | "
            "mean tokens | tokens vs base | latency ms / request | latency vs base |")
    lines = [head, "|" + "---|" * 9]
    rows = [{"method": "base", "kind": "-", "points": [base]}] + comp["methods"]
    for m in rows:
        pts = m["points"]
        if not pts:
            lines.append(f"| {m['method']} | {m['kind']} | 0 | not run: {m.get('note', '')} |" + " |" * 5)
            continue
        best = matched_point(pts, base["accuracy"], ratio)
        shown = best or max(pts, key=lambda p: p["accuracy"])
        lo, hi = shown["accuracy_ci95"]
        lat, lat0 = shown.get("latency_mean_ms"), base.get("latency_mean_ms")
        lines.append(
            f"| {m['method']} | {m['kind']} | {len(pts)} | "
            f"{shown['label'] if best else 'none (most accurate: ' + shown['label'] + ')'} | "
            f"{shown['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | {shown['mean_tokens']:.1f} | "
            f"{_pct(shown['mean_tokens'], base['mean_tokens'])} | {'' if lat is None else f'{lat:.1f}'} | "
            f"{_pct(lat, lat0)} |")
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
                f"{_ratio(p['accuracy'], base['accuracy'])} | {p['mean_tokens']:.1f} | "
                f"{_pct(p['mean_tokens'], base['mean_tokens'])} | {'' if trunc is None else f'{trunc:.3f}'} | "
                f"{'' if lat is None else f'{lat:.1f}'} | {'' if mpt is None else f'{mpt:.2f}'} |")
    return "\n".join(lines)


def _ratio(x, ref) -> str:
    return f"{100 * x / ref:.1f}%" if ref else "n/a"


def _pct(x, ref) -> str:
    if x is None or not ref:
        return ""
    return f"{100 * (x / ref - 1):+.1f}%"


def plot_comparison(comp: dict, path: Path, ratio: float = MATCHED) -> None:
    """Accuracy vs mean tokens, one marker/line per method (points of a method sorted by tokens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = comp["base"]
    fig, ax = plt.subplots(figsize=(8.0, 5.4))
    markers = "osD^v<>pPX*h"
    families: dict[str, int] = {}
    for m in comp["methods"]:
        families.setdefault(m.get("family", m["method"]), len(families))
    colors = plt.get_cmap("tab20" if len(families) > 10 else "tab10")
    for m in comp["methods"]:
        if not m["points"]:
            continue
        k = families[m.get("family", m["method"])]
        pts = sorted(m["points"], key=lambda p: p["mean_tokens"])
        xs, ys = [p["mean_tokens"] for p in pts], [p["accuracy"] for p in pts]
        ours, other_seed = m["kind"] == "ours", bool(m.get("seed"))
        ax.plot(xs, ys, marker=markers[k % len(markers)], ls=(":" if other_seed else "-") if len(pts) > 1 else "none",
                color=colors(k), markerfacecolor="none" if other_seed else colors(k),
                lw=2.2 if ours else 1.0, ms=7 if ours else 5, label=m["method"], zorder=3 if ours else 2)
    ax.plot([base["mean_tokens"]], [base["accuracy"]], marker="*", ms=14, color="black", ls="none", label="base",
            zorder=4)
    ax.axhline(ratio * base["accuracy"], ls=":", color="grey", lw=1, label=f"{100 * ratio:.0f}% of base accuracy")
    if comp.get("oracle_mean_tokens"):
        ax.axvline(comp["oracle_mean_tokens"], ls="--", color="grey", lw=1, label="oracle minimum tokens")
    ax.set_xlabel("mean completion tokens (test set, T=0.6)")
    ax.set_ylabel("accuracy")
    ax.set_title("Every method, measured the same way: accuracy vs tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_comparison(d: str | Path) -> dict:
    path = Path(d) / "comparison.json"
    if not path.exists():
        raise UserError(f"{path}: not found (run `frugalthink sidebyside` first)")
    try:
        comp = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    for key in ("base", "methods"):
        if key not in comp:
            raise UserError(f"{path}: missing field '{key}'")
    return comp


def write_comparison_report(d: str | Path) -> tuple[Path, Path]:
    """comparison.md (both tables) and comparison.png from comparison.json; returns their paths."""
    d = Path(d)
    comp = load_comparison(d)
    png, md = d / "comparison.png", d / "comparison.md"
    plot_comparison(comp, png)
    md.write_text("## Cheapest point at matched accuracy\n\n" + comparison_table(comp) +
                  "\n\n## Every point\n\n" + points_table(comp) + "\n")
    return md, png
