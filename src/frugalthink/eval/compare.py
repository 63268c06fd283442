"""`frugalthink compare DIR...`: accuracy, tokens and latency of evaluation runs, relative to the first."""

from __future__ import annotations

from pathlib import Path

from frugalthink.util.errors import UserError
from frugalthink.util.tables import change, share


def load_summary(d: str | Path) -> dict:
    from frugalthink.util.jsonl import read_json_object

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
            **(paired_tests(dirs[0], d) if i else {}),
        })
    return rows


def paired_tests(ref_dir, other_dir) -> dict:
    """McNemar's exact test on accuracy and a paired bootstrap on tokens, over the (problem, sample) pairs the two
    evaluations share; empty when either has no records."""
    from frugalthink.util.jsonl import read_jsonl_tolerant
    from frugalthink.util.stats import mcnemar_exact, paired_bootstrap, paired_records

    a, b = read_jsonl_tolerant(Path(ref_dir) / "records.jsonl"), read_jsonl_tolerant(Path(other_dir) / "records.jsonl")
    if not a or not b:
        return {}
    try:
        pairs = paired_records(a, b)
    except ValueError:
        return {}
    acc = mcnemar_exact([x["correct"] for x, _ in pairs], [y["correct"] for _, y in pairs])
    tok = paired_bootstrap([x["tokens"] for x, _ in pairs], [y["tokens"] for _, y in pairs])
    return {"pairs": len(pairs), "accuracy_p": acc["p"], "tokens_diff": tok["mean_diff"], "tokens_p": tok["p"]}


def _p(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def to_markdown(rows: list[dict]) -> str:
    from frugalthink.util.stats import aes, format_aes

    head = ("| run | accuracy [95% CI] | acc. vs first | p (McNemar) | mean tokens | tokens vs first | p (paired) | "
            "AES vs first | p50 latency ms | latency vs first |")
    lines = [head, "|" + "---|" * 10]
    ref = rows[0]
    for r in rows:
        lat = "" if r["latency_p50_ms"] is None else f"{r['latency_p50_ms']:.1f}"
        lines.append(
            f"| {r['run']} | {r['accuracy']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | "
            f"{share(r['accuracy'], ref['accuracy'])} | {_p(r.get('accuracy_p'))} | {r['mean_tokens']:.1f} | "
            f"{change(r['mean_tokens'], ref['mean_tokens'])} | {_p(r.get('tokens_p'))} | "
            f"{format_aes(aes(r['accuracy'], r['mean_tokens'], ref['accuracy'], ref['mean_tokens']))} | {lat} | "
            f"{change(r['latency_p50_ms'], ref['latency_p50_ms'])} |"
        )
    return "\n".join(lines)


def run(args) -> int:
    rows = comparison_rows(args.dirs)
    md = to_markdown(rows)
    print(md)
    if args.markdown:
        Path(args.markdown).write_text(md + "\n")
    return 0
