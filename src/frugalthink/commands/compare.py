"""`frugalthink compare DIR...`: accuracy, tokens and latency of evaluation runs, relative to the first."""

from __future__ import annotations

from pathlib import Path

from frugalthink.errors import UserError


def load_summary(d: str | Path) -> dict:
    from frugalthink.jsonl import read_json_object

    path = Path(d) / "summary.json"
    summary = read_json_object(path, ("accuracy", "accuracy_ci95", "mean_tokens"),
                               f"is {d} an evaluation directory? `frugalthink eval` writes it")
    for key in ("accuracy", "mean_tokens"):
        if isinstance(summary[key], bool) or not isinstance(summary[key], int | float):
            raise UserError(f"{path}: field '{key}' must be a number, got {summary[key]!r}")
    return summary


def _rel(x, ref):
    if x is None or ref in (None, 0):
        return None
    return x / ref - 1


def comparison_rows(dirs: list[str], names: list[str] | None = None) -> list[dict]:
    summaries = [load_summary(d) for d in dirs]
    ref = summaries[0]
    rows = []
    for i, (d, s) in enumerate(zip(dirs, summaries, strict=True)):
        lat = s.get("latency", {}).get("p50_ms")
        ref_lat = ref.get("latency", {}).get("p50_ms")
        rows.append({
            "run": names[i] if names else str(d),
            "accuracy": s["accuracy"],
            "ci95": s["accuracy_ci95"],
            "accuracy_rel": s["accuracy"] / ref["accuracy"] if ref["accuracy"] else None,
            "mean_tokens": s["mean_tokens"],
            "tokens_change": _rel(s["mean_tokens"], ref["mean_tokens"]),
            "latency_p50_ms": lat,
            "latency_change": _rel(lat, ref_lat),
            "tokens_over_oracle": s.get("tokens_over_oracle"),
        })
    return rows


def _pct(x):
    return "" if x is None else f"{100 * x:+.1f}%"


def to_markdown(rows: list[dict]) -> str:
    head = "| run | accuracy [95% CI] | acc. vs first | mean tokens | tokens vs first | p50 latency ms | latency vs first |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        lat = "" if r["latency_p50_ms"] is None else f"{r['latency_p50_ms']:.1f}"
        rel = "" if r["accuracy_rel"] is None else f"{100 * r['accuracy_rel']:.1f}%"
        lines.append(
            f"| {r['run']} | {r['accuracy']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {rel} | "
            f"{r['mean_tokens']:.1f} | {_pct(r['tokens_change'])} | {lat} | {_pct(r['latency_change'])} |"
        )
    return "\n".join(lines)


def run(args) -> int:
    rows = comparison_rows(args.dirs)
    md = to_markdown(rows)
    print(md)
    if args.markdown:
        Path(args.markdown).write_text(md + "\n")
    return 0
