"""``hrnet-explorer space sample SPACE.yaml --out DIR`` (distinct configs of a design space, with their closed-form
complexity and optionally their latency) and ``hrnet-explorer space report D1 [D2 ...] --out R`` (EDFs, KS test,
Pareto fronts and knob effects of trained spaces); ``hrnet-explorer space train DIR --recipe R [--epochs E]`` trains
every sample with an ablation recipe (``analysis.space.train``)."""

from __future__ import annotations

import json
import sys
import time

from analysis.cli.args import bounded_int, output_dir
from analysis.space.space_file import MAX_SAMPLES, MAX_SEED


def register(sub) -> None:
    """Add ``space`` with its steps ``sample``, ``train``, ``search`` and ``report`` to the CLI's sub-commands."""
    p = sub.add_parser("space", help="design spaces: sample configs of a space file, report trained spaces",
                       description="Design-space exploration (Radosavovic et al. 2019): sample distinct configs of "
                                   "any network from a space file, then compare trained spaces.")
    commands = p.add_subparsers(dest="space_command", required=True, metavar="STEP")
    s = commands.add_parser("sample", help="write DIR/samples.jsonl and DIR/space.yaml",
                            description="Rejection-sample distinct configs of the space (deterministic per seed), "
                                        "each with params, conv_linear_macs, gflops and activations as analyze "
                                        "reports them.")
    s.add_argument("space_file", metavar="SPACE.yaml", help="the space file (see analysis.space.space_file)")
    s.add_argument("-n", type=bounded_int(1, MAX_SAMPLES), default=None,
                   help="number of configs (default: the file's samples)")
    s.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=None, help="seed (default: the file's seed)")
    s.add_argument("--out", required=True, metavar="DIR",
                   help="space folder: new, empty, or one made by space sample")
    s.add_argument("--latency", action="store_true", help="measure each sample's batch-1 latency (fast path)")
    s.add_argument("--device", default="auto", help="latency device: auto, cpu or cuda (default auto)")
    s.set_defaults(func=run_sample)
    t = commands.add_parser("train", help="train every sample of DIR with an ablation recipe; appends DIR/results.jsonl",
                            description="One job per sample through the job engine (same recipe, data, seed and "
                                        "precision policy as an ablation); resumable; a failed sample is recorded.")
    t.add_argument("folder", metavar="DIR", help="a space folder made by space sample")
    _training_args(t)
    t.set_defaults(func=run_train)
    q = commands.add_parser("search", help="directed search with Optuna; trials in DIR (study.db, samples, results)",
                            description="Optuna (TPE, or NSGA-II for several objectives) over the space file's "
                                        "knobs; every trial trained like a space train sample; resumable, several "
                                        "workers may run on one study.")
    q.add_argument("space_file", metavar="SPACE.yaml", help="the space file")
    q.add_argument("--trials", type=bounded_int(1, 100_000), required=True, help="trials to run (more on resume)")
    q.add_argument("--objectives", default="ap", help="comma-separated: ap (max), latency_ms, params, gflops, "
                                                      "activations (min); default ap")
    q.add_argument("--out", required=True, metavar="DIR", help="search folder: new, empty, or this study's")
    q.add_argument("--sampler", choices=("tpe", "nsga2"), help="default: tpe for one objective, nsga2 for several")
    q.add_argument("--seed", type=bounded_int(0, MAX_SEED), help="the sampler's seed (default: the file's seed)")
    _training_args(q)
    q.set_defaults(func=run_search)
    r = commands.add_parser("report", help="write R/summary.json, R/report.html, R/report.md and R/figures",
                            description="Compare trained spaces: error EDFs (plain and complexity-normalized), "
                                        "the KS test of the first two, Pareto fronts and knob effects.")
    r.add_argument("folders", nargs="+", metavar="DIR", help="space folders (samples.jsonl, results.jsonl)")
    r.add_argument("--out", required=True, metavar="R", help="report folder: new, empty, or one made by space report")
    r.set_defaults(func=run_report)


def _training_args(p) -> None:
    """The training options ``train`` and ``search`` share (read back by ``_recipe_data_device``)."""
    p.add_argument("--recipe", default="smoke", help="an ablation recipe: smoke (default), cpu, quick, paper or a file")
    p.add_argument("--epochs", type=bounded_int(1, 100_000), help="override the recipe's epochs")
    p.add_argument("--data", default=None, help="builtin (the recipe's default) or a COCO 2017 keypoints folder")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")


def _progress(total: int):
    """A progress line on stderr: rewritten in place on a terminal, every tenth of the way otherwise."""
    tty = sys.stderr.isatty()
    step = max(1, total // 10)
    t0 = time.perf_counter()

    def show(measured: int, accepted: int) -> None:
        if tty or accepted % step == 0 or accepted == total:
            end = "\r" if tty and accepted < total else "\n"
            print(f"latency: {accepted}/{total} samples accepted, {measured} measured, "
                  f"{time.perf_counter() - t0:.0f} s", end=end, file=sys.stderr, flush=True)

    return show


def run_sample(args) -> int:
    """``space sample``: read and check the space and ``--out`` (nothing written on any error), sample, then write
    the folder. Exit 0; a ``UserInputError`` (exit 2, one line) for bad input or constraints that cannot be met."""
    from analysis.space.sampler import sample_space, value_range
    from analysis.space.space_file import read_space
    from analysis.space.space_folder import SAMPLES_FILE, SPACE_FILE, SPACE_MARKER, check_space_out, write_files

    t0 = time.perf_counter()
    space = read_space(args.space_file)
    out = check_space_out(args.out)
    output_dir(out, "--out", keep=False)  # creatable and writable; made only when the samples are ready
    n = space.samples if args.n is None else args.n
    seed = space.seed if args.seed is None else args.seed
    meter = on_latency = None
    if args.latency:
        from analysis.space.latency import latency_meter

        meter, label = latency_meter(args.device)
        print(f"latency: batch 1 on {label}, fast path (BatchNorm folded, channels_last), median of the timed runs",
              file=sys.stderr)
        on_latency = _progress(n)
    run = sample_space(space, n, seed, latency=meter, on_latency=on_latency)
    rows = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in run.samples)
    paths = write_files(out, SPACE_MARKER, {SPACE_FILE: space.to_yaml(n, seed), SAMPLES_FILE: rows})
    p_lo, p_hi = value_range(run.samples, "params")
    g_lo, g_hi = value_range(run.samples, "gflops")
    print(f"space {space.name}: {len(run.samples)} distinct configs of base {space.base.name} (seed {seed}) from "
          f"{run.draws} draws in {time.perf_counter() - t0:.1f} s; rejected: {run.rejection_text()}")
    print(f"params {p_lo / 1e6:.3f}M .. {p_hi / 1e6:.3f}M, GFLOPs (paper) {g_lo:.3f} .. {g_hi:.3f}"
          + (f", latency {min(r['latency_ms'] for r in run.samples):.1f} .. "
             f"{max(r['latency_ms'] for r in run.samples):.1f} ms" if args.latency else ""))
    print(f"wrote {paths[SAMPLES_FILE]} and {paths[SPACE_FILE]}")
    return 0


def _recipe_data_device(args):
    """The recipe (``--epochs`` applied), the data argument and the checked device of ``train`` / ``search``."""
    from dataclasses import replace

    from analysis.ablation.recipes import RecipeError, load_recipe
    from hrnet_core.device import resolve_device
    from hrnet_core.errors import UserInputError

    recipe = load_recipe(args.recipe)
    if args.epochs is not None:
        recipe = replace(recipe, epochs=args.epochs, lr_steps=tuple(s for s in recipe.lr_steps if s <= args.epochs))
    data = args.data or recipe.data
    if data == "coco":
        raise RecipeError(f"recipe {recipe.name} trains on COCO: give --data PATH (a COCO 2017 keypoints folder)")
    try:
        resolve_device(args.device)
    except ValueError as err:
        raise UserInputError(f"--device: {err}") from None
    return recipe, data


def run_search(args) -> int:
    from analysis.space.search import parse_objectives, search_space
    from analysis.space.space_file import read_space

    space = read_space(args.space_file)
    objectives = parse_objectives(args.objectives)
    recipe, data = _recipe_data_device(args)
    counts = search_space(space, args.out, args.trials, objectives, recipe, data=data, device=args.device,
                          sampler=args.sampler, seed=args.seed, log=lambda s: print(s, flush=True))
    print(f"space search: {counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed of "
          f"{counts['trials']} trials; samples and results in {args.out} (space report reads it)")
    return 0


def run_train(args) -> int:
    from analysis.space.train import train_space

    recipe, data = _recipe_data_device(args)
    counts = train_space(args.folder, recipe, data=data, device=args.device, log=lambda s: print(s, flush=True))
    print(f"space train: {counts['done']} done, {counts['failed']} failed, {counts['skipped']} already had a result, "
          f"in {counts['seconds']:.1f} s; results in {args.folder}/results.jsonl")
    return 0


def run_report(args) -> int:
    """``space report``: check ``--out``, read the space folders, write the report and print its summary."""
    from analysis.space.report import write_report
    from analysis.space.space_folder import REPORT_MARKER, check_out_folder

    out = check_out_folder(args.out, "--out", REPORT_MARKER, "report folder")
    output_dir(out, "--out", keep=False)
    paths = write_report(args.folders, out)
    summary = json.loads(paths["summary.json"].read_text(encoding="utf-8"))
    for s in summary["spaces"]:
        best = f"; best error {s['best']['error']:.4f} ({s['best']['id']})" if s["best"] else ""
        print(f"{s['name']}: {s['samples']} samples, {s['done']} done, {s['failed']} failed, {s['pending']} pending"
              + best)
    ks = summary["ks"]
    print(f"KS {ks['spaces'][0]} vs {ks['spaces'][1]}: D = {ks['statistic']:.3f}, p = {ks['p_value']:.3g}" if ks
          else f"KS: {summary['ks_note']}")
    print("wrote " + ", ".join(str(paths[k]) for k in ("summary.json", "report.html", "report.md"))
          + f" and {sum(1 for k in paths if k.startswith('figures/'))} figure files in {out / 'figures'}")
    return 0
