"""Command line: ``robustbench-gan run | list | report | compare | export | bench``.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem; ``--debug`` shows the traceback),
1 an unexpected internal error, 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from .checks.warn import SanityFlagWarning, flag_line

log = logging.getLogger("robustbench_gan")


class UsageError(Exception):
    """Bad command-line arguments (argparse would otherwise exit on its own)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}; see `{self.prog} --help`")


def int_option(minimum: int, example: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, with an example of a good value in its error."""
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind}, e.g. {example} (got {text!r})") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {kind}, e.g. {example} (got {value})")
        return value

    return parse


def float_option(strict: bool, example: str) -> Callable[[str], float]:
    """An argparse type: a finite number > 0 (``strict``) or >= 0, with an example of a good value in its error."""
    kind = "a number > 0" if strict else "a number >= 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > 0 if strict else value >= 0) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be {kind}, e.g. {example} (got {text!r})")
        return value

    return parse


seed_value = int_option(0, "--seed 0")
positive_int = int_option(1, "--threads 1")
positive_float = float_option(True, "--num-cpus 1")
non_negative_float = float_option(False, "--num-gpus 0.5")


def build_parser() -> Parser:
    p = Parser(prog="robustbench-gan", description="Benchmark how robust image classifiers are to adversarial examples.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    # the global flags work after the command too (`robustbench-gan run default -q`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logs")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars, warnings only")
    sub = p.add_subparsers(dest="command", parser_class=Parser)

    run = sub.add_parser("run", parents=[common], help="run a suite (a built-in name or a TOML/YAML file)")
    run.add_argument("suite", nargs="?", default="default", help="built-in suite name or path (default: default)")
    run.add_argument("--out", default=None, help="output folder (default: reports/SUITE)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="override the suite's device")
    run.add_argument("--seed", type=seed_value, default=None, help="override the suite's seed")
    run.add_argument("--data-root", default=None, help="set [data] root (for mnist, cifar10, imagefolder suites)")
    run.add_argument("--cache-dir", default=None, help="where trained weights and finished cells are cached (default: OUT/cache)")
    run.add_argument("--no-cache", action="store_true", help="retrain and recompute everything")
    run.add_argument("--threads", type=positive_int, default=None,
                     help="torch CPU threads (default: one per core); several runs sharing a machine each run best "
                          "with cores / runs, e.g. --threads 1 for two runs on 2 cores. The numbers can depend on "
                          "it (it is part of the cache keys and the manifest)")
    run.add_argument("--executor", choices=("local", "ray"), default=None,
                     help="where cells run: local (this process, the default) or ray (a Ray cluster; needs "
                          "pip install 'robustbench_gan[ray]'); overrides [execution] executor")
    run.add_argument("--address", default=None,
                     help="ray: the cluster to connect to (auto, ray://HOST:10001; default: RAY_ADDRESS, else a "
                          "local cluster sized to this machine)")
    run.add_argument("--num-cpus", type=positive_float, default=None,
                     help="ray: CPUs per task, fractions allowed (default 1; torch uses that many threads)")
    run.add_argument("--num-gpus", type=non_negative_float, default=None,
                     help="ray: GPUs per task, fractions allowed (default 1 with --device cuda, else 0)")
    run.add_argument("--trust-checkpoint", action="store_true",
                     help="DANGEROUS: allow loading checkpoints that run pickled code; only for files you trust")

    sub.add_parser("list", parents=[common], help="list datasets, models, attacks, defenses and built-in suites")

    rep = sub.add_parser("report", parents=[common], help="re-render index.html from a run folder's results.json")
    rep.add_argument("run_dir", help="a folder written by `robustbench-gan run`")

    cmp_ = sub.add_parser("compare", parents=[common],
                          help="compare two run folders (tables, plots) into OUT/index.html")
    cmp_.add_argument("run_a", help="the baseline run folder (A)")
    cmp_.add_argument("run_b", help="the run compared with it (B)")
    cmp_.add_argument("--out", required=True, help="folder for compare.csv, compare.json and index.html")

    exp = sub.add_parser("export", parents=[common],
                         help="RobustBench-style JSON cards (clean and worst-case accuracy) of a run")
    exp.add_argument("run_dir", help="a folder written by `robustbench-gan run`")
    exp.add_argument("--out", default=None, help="output folder (default: RUN_DIR/robustbench)")
    exp.add_argument("--eps", type=float, default=None, help="the eps to export (default: the largest of the run)")

    bench = sub.add_parser("bench", parents=[common],
                           help="attack throughput: ours vs the bare forward+backward loop vs ART")
    bench.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where to measure (default: cuda when available)")
    bench.add_argument("--batch", type=int, default=256, help="images per batch (default: 256)")
    bench.add_argument("--steps", type=int, default=10, help="PGD steps, i.e. forward+backward passes (default: 10)")
    bench.add_argument("--repeats", type=int, default=3,
                       help="timed repetitions of each method; the median is reported (default: 3)")
    return p


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run_suite
    from .suite import load_suite

    overrides: dict[str, object] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device is not None:
        overrides["device"] = args.device
    if args.data_root is not None:
        overrides["data.root"] = str(Path(args.data_root).resolve())
    for flag in ("executor", "address", "num_cpus", "num_gpus"):
        if getattr(args, flag) is not None:
            overrides[f"execution.{flag}"] = getattr(args, flag)
    suite = load_suite(args.suite, overrides=overrides)
    if args.trust_checkpoint:
        from dataclasses import replace

        log.warning("--trust-checkpoint: checkpoints may run arbitrary code while loading")
        suite = replace(suite, models=tuple(replace(m, trust_checkpoint=True) for m in suite.models))
    out = Path(args.out) if args.out else Path("reports") / suite.name.replace("/", "_")
    # progress bars on a terminal; redirected output gets log lines instead (core.progress), -q neither
    progress = not args.quiet
    with warnings.catch_warnings():  # the summary below says it once, at the end
        warnings.simplefilter("ignore", SanityFlagWarning)
        results = run_suite(suite, out=out, cache_dir=args.cache_dir, cache=not args.no_cache, progress=progress,
                            threads=args.threads)
    log.info("%d rows; report: %s", len(results.records), out / "index.html")
    written = [out / name for name in ("results.csv", "results.json", "samples.csv.gz", "index.html")]
    sys.stdout.write("wrote " + ", ".join(str(p) for p in written if p.is_file()) + "\n")
    summarise_flags(results.flags, out / "index.html")
    return 0


def summarise_flags(flags: Sequence[dict], report: Path) -> None:
    """The sanity flags of a run, at its end, on stderr (shown with -q too): a number they concern may be
    overstated."""
    if not flags:
        log.info("sanity checks: no flags")
        return
    lines = [f"  {flag_line(f)}" for f in flags]
    log.warning("%d sanity flag(s): the numbers they concern may overstate robustness (explanations: %s)\n%s",
                len(flags), report, "\n".join(lines))


def cmd_list(args: argparse.Namespace) -> int:
    from .attacks import ATTACKS
    from .data import DATASETS
    from .defenses import DEFENSES
    from .zoo import MODELS
    from .suite import builtin_suites

    rows = [
        ("datasets", DATASETS.names()),
        ("models", MODELS.names()),
        ("attacks", ATTACKS.names() + ["art:<ClassName> (any ART evasion attack)"]),
        ("defenses", DEFENSES.names()),
        ("suites", builtin_suites()),
    ]
    for title, names in rows:
        sys.stdout.write(f"{title}: {', '.join(names)}\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .reports.html import render_report
    from .core.io import atomic_write_text
    from .results import Results

    results = Results.load(args.run_dir)
    path = Path(args.run_dir) / "index.html"
    atomic_write_text(path, render_report(results, progress=True))
    sys.stdout.write(f"wrote {path}\n")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import write_comparison

    for path in (args.run_a, args.run_b):
        if not Path(path).exists():
            raise UsageError(f"compare: no run folder at {path!r}; give two folders written by `robustbench-gan run`")
    out = write_comparison(args.run_a, args.run_b, args.out)
    sys.stdout.write(f"wrote {out / 'compare.csv'}, {out / 'compare.json'}, {out / 'index.html'}\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_robustbench
    from .results import Results

    results = Results.load(args.run_dir)
    paths = export_robustbench(results, args.out or Path(args.run_dir) / "robustbench", eps=args.eps)
    sys.stdout.write("".join(f"wrote {p}\n" for p in paths))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .throughput import format_table, measure

    rows = measure(device=args.device, batch=args.batch, steps=args.steps, repeats=args.repeats)
    sys.stdout.write(format_table(rows) + "\n")
    return 0


COMMANDS = {"run": cmd_run, "list": cmd_list, "report": cmd_report, "compare": cmd_compare, "export": cmd_export,
            "bench": cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robustbench-gan`` console script."""
    from .errors import RobustBenchError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO if "-q" not in argv and "--quiet" not in argv
                        else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # ART's INFO lines ("set ART_DATA_PATH", "Inferred 1 hidden layers") are not ours to show
        logging.getLogger("art").setLevel(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("robustbench-gan: choose a command: run, list, report, compare, export or bench (see --help)")
        return COMMANDS[args.command](args)
    except (RobustBenchError, UsageError) as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt as exc:  # a run says what it kept (run.pipeline.RunInterrupted)
        sys.stderr.write(f"{exc or 'interrupted; nothing was written'}\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
