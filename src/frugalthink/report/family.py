"""Family report: PNG figures plus one self-contained HTML page (figures embedded as data URIs) and a markdown
table. Reads only ``family.json`` and the files it points to, so it can be rebuilt at any time."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from frugalthink.util.jsonl import read_json_object
from frugalthink.util.tables import change, share

# Figure -> what a reader should look at in it (its caption in report.html).
FIGURES = {
    "pareto.png": "Accuracy against mean completion tokens, one point per model: up and to the left is better; "
                  "a family should trace a curve from the base towards fewer tokens.",
    "tokens_by_level.png": "Mean tokens and accuracy per difficulty level: an adaptive model cuts more on easy "
                           "levels than on hard ones and keeps accuracy where the tokens are needed.",
    "latency.png": "Per-request latency (one request at a time): it should fall in line with tokens.",
    "training_curves.png": "Reward, rollout accuracy (T=1.0) and mean tokens during RL, per member.",
    "training_health.png": "Run health: lengths of correct vs wrong samples, groups without signal, truncation, "
                           "entropy, KL and clipping. A collapse shows here first.",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _members(fam):
    return sorted(fam["members"], key=lambda m: (m.get("seed", 0), *member_order(m)))


def member_order(m: dict) -> tuple:
    """Members in order of falling thinking: alphas upwards, then the tiers of a budget-tier model downwards."""
    return (0, m["alpha"]) if m.get("tier") is None else (1, -m["tier"])


def member_name(m: dict) -> str:
    """``alpha=0.2``, or a budget-tier model's ``tier 0.6 (medium)`` / ``ratio 0.5 (unseen)``."""
    if m.get("tier") is None:
        return f"alpha={m['alpha']:g}"
    if m.get("effort"):
        return f"tier {m['tier']:g} ({m['effort']})"
    return f"ratio {m['tier']:g}" + ("" if m.get("seen_in_training", True) else " (unseen)")


def _label(m) -> str:
    return member_name(m) + (f" s{m['seed']}" if m.get("seed") else "")


def plot_pareto(fam: dict, path: Path) -> None:
    plt = _plt()
    base = fam["base"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    pts = [("base", base)] + [(_label(m), m) for m in _members(fam)]
    acc0 = base["accuracy"] or 1.0  # a base with zero accuracy (quick demo): plot absolute accuracy
    tok0 = base["mean_tokens"] or 1.0
    for name, m in pts:
        x = m["mean_tokens"] / tok0
        y = m["accuracy"] / acc0
        lo, hi = (v / acc0 for v in m["accuracy_ci95"])
        ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], fmt="o", capsize=3,
                    color="black" if name == "base" else None, label=name)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if base.get("oracle_mean_tokens"):
        ax.axvline(base["oracle_mean_tokens"] / tok0, ls="--", color="grey", lw=1,
                   label="shortest trace writing every step")
    ax.set_xlabel("mean completion tokens / base")
    ax.set_ylabel("accuracy / base (95% CI)")
    ax.set_title("Efficiency family: accuracy vs tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tokens_by_level(fam: dict, path: Path) -> None:
    plt = _plt()
    base = fam["base"]
    fig, (ax, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.6))
    series = [("base", base)] + [(_label(m), m) for m in _members(fam)]
    for name, m in series:
        levels = m.get("by_level") or {}
        xs = list(levels)
        color = "black" if name == "base" else None
        line, = ax.plot(xs, [levels[k]["mean_tokens"] for k in xs], marker="o", color=color, label=name)
        ax_acc.plot(xs, [levels[k]["accuracy"] for k in xs], marker="o", color=line.get_color(), label=name)
    levels = base.get("by_level") or {}
    if levels and all("oracle_mean_tokens" in v for v in levels.values()):
        xs = list(levels)
        ax.plot(xs, [levels[k]["oracle_mean_tokens"] for k in xs], ls="--", color="grey",
                label="shortest trace writing every step")
    for a, ylabel, title in ((ax, "mean completion tokens", "Tokens by difficulty"),
                             (ax_acc, "accuracy", "Accuracy by difficulty")):
        a.set_xlabel("difficulty level")
        a.set_ylabel(ylabel)
        a.set_title(title)
        a.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(fam: dict, path: Path) -> None:
    plt = _plt()
    rows = [("base", fam["base"])] + [(_label(m), m) for m in _members(fam)]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    names = [n for n, _ in rows]
    p50 = [m.get("latency_p50_ms") or 0 for _, m in rows]
    p95 = [m.get("latency_p95_ms") or 0 for _, m in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], p95, width=0.4, label="p95")
    ax.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("per-request latency (ms)")
    ax.set_title("Latency, one request at a time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _train_log(member: dict) -> list[dict]:
    """The rows of steps that sampled a rollout (they carry the reward)."""
    return [r for r in _all_log_rows(member) if "reward" in r]


def plot_training(fam: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for m in _members(fam):
        log = _train_log(m)
        if not log:
            continue
        steps = [r["step"] for r in log]
        for ax, key in zip(axes, ("reward", "accuracy", "tokens_mean"), strict=True):
            ax.plot(steps, [r.get(key) for r in log], label=_label(m), lw=1.2)
    for ax, title in zip(axes, ("mean reward", "accuracy (T=1.0 rollouts)", "mean completion tokens"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


HEALTH = (("tokens_correct_mean", "tokens_wrong_mean", "mean tokens: correct (-) / wrong (--)"),
          ("frac_all_correct", "frac_all_wrong", "groups without signal: all right (-) / all wrong (--)"),
          ("truncated_frac", None, "truncated completions"),
          ("entropy", None, "policy entropy (nats/token)"),
          ("kl", None, "KL to the reference (k1, per token)"),
          ("clip_ratio", None, "clipped fraction (2nd update of each rollout)"))


def plot_health(fam: dict, path: Path) -> None:
    """The run-health signals of every member's train_log.jsonl, one panel each (docs/method.md, "Run health")."""
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for i, m in enumerate(_members(fam)):
        rows = _all_log_rows(m)
        color = f"C{i}"
        for ax, (solid, dashed, _) in zip(axes.flat, HEALTH, strict=True):
            for key, style in ((solid, "-"), (dashed, "--")):
                pts = [(r["step"], r[key]) for r in rows if key and key in r]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, color=color, lw=1.1,
                            label=_label(m) if style == "-" else None)
    for ax, (_, _, title) in zip(axes.flat, HEALTH, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _all_log_rows(member: dict) -> list[dict]:
    path = Path(member["model"]) / "train_log.jsonl"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_report(family_dir: str | Path) -> Path:
    """Write PNGs, ``report.html`` and ``family_table.md`` into ``family_dir``; returns the HTML path."""
    d = Path(family_dir)
    fam = load_family(d)
    plot_pareto(fam, d / "pareto.png")
    plot_tokens_by_level(fam, d / "tokens_by_level.png")
    plot_latency(fam, d / "latency.png")
    plot_training(fam, d / "training_curves.png")
    plot_health(fam, d / "training_health.png")
    table = family_table(fam)
    (d / "family_table.md").write_text(table + "\n")
    imgs = "\n".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode((d / name).read_bytes()).decode()}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in FIGURES.items()
    )
    settings = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in fam.get("eval_settings", {}).items() if v not in (None, {}, []))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>FrugalThink family report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}figure{{display:inline-block;margin:1em;max-width:1000px}}figcaption{{font-size:90%;color:#333}}
img{{max-width:100%}}</style></head><body>
<h1>FrugalThink efficiency family</h1>
<p>Task: {html.escape(str(fam.get('task')))}.</p>
<h2>Evaluation settings</h2><table>{settings}</table>
<h2>Results</h2>
{_md_table_to_html(table)}
{imgs}
<script>window.addEventListener("load", function () {{
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-figures", ok + "/" + imgs.length);
}});</script>
</body></html>
"""
    out = d / "report.html"
    out.write_text(page)
    return out


def _md_table_to_html(md: str) -> str:
    lines = [ln.strip().strip("|").split("|") for ln in md.splitlines() if ln.strip()]
    head, rows = lines[0], lines[2:]
    th = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def load_family(d: str | Path) -> dict:
    return read_json_object(Path(d) / "family.json", ("base", "members"), "run `frugalthink sweep` first")


def family_table(fam: dict) -> str:
    """Markdown table: base and each member, tokens and latency relative to the base."""
    base = fam["base"]
    head = ("| model | accuracy [95% CI] | acc. / base | mean tokens | tokens vs base | x oracle | "
            "p50 latency ms | latency vs base |")
    lines = [head, "|" + "---|" * 8]
    rows = [("base", base)] + [(member_name(m) + (f" (seed {m['seed']})" if m.get("seed") else ""), m)
                               for m in fam["members"]]
    for name, m in rows:
        lo, hi = m["accuracy_ci95"]
        oracle = f"{m['mean_tokens'] / m['oracle_mean_tokens']:.2f}" if m.get("oracle_mean_tokens") else ""
        lat = m.get("latency_p50_ms")
        lat_s = f"{lat:.1f}" if lat is not None else ""
        lines.append(
            f"| {name} | {m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | {share(m['accuracy'], base['accuracy'])} | "
            f"{m['mean_tokens']:.1f} | {change(m['mean_tokens'], base['mean_tokens'])} | {oracle} | "
            f"{lat_s} | {change(lat, base.get('latency_p50_ms'))} |"
        )
    return "\n".join(lines)
