"""``hrnet-explorer ablate`` (the paper's fusion ablation on any base config) and
``hrnet-explorer report RUN_DIR`` (its report)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from analysis import settings
from analysis.cli.args import check_count, output_dir
from hrnet_core.errors import UserInputError

DEFAULT_BASE = "configs/pose_hrnet_w32_256x192.yaml"  # in the project (any working directory)


def register(sub) -> None:
    p = sub.add_parser(
        "ablate",
        help="train fusion variants (1 / 3 / 8 exchange units) of a base config and report them",
        description="Train the fusion variants of a base config with one recipe, data order and seeds "
                    "(only the fusion schedule differs), then write the report. Under torchrun the same "
                    "command trains with DistributedDataParallel.",
    )
    p.add_argument("--base", default=None, help=f"base config YAML (default {DEFAULT_BASE})")
    p.add_argument("--variants", default="1,3,8",
                   help="fusion counts (1,3,8), presets (final_only,across_stage,all,none), per-stage 0/1 "
                        "schedules (1/0001/001) or a YAML file of name: schedule (default 1,3,8)")
    p.add_argument("--schedule", action="append", default=[], metavar="NAME=FLAGS",
                   help="an extra custom variant: one 0/1 flag per module, e.g. mine=1,1,0,0,1,0,0,1 (repeatable)")
    p.add_argument("--data", default=None, help="builtin, or a COCO 2017 keypoints folder (default: the recipe's)")
    p.add_argument("--recipe", default=None, help="cpu | quick | paper | smoke | a recipe YAML (default: quick "
                                                   "with a GPU, cpu without)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per variant: 0..N-1 (default: the recipe's, "
                                                            "3 for cpu, else 1)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"), help="default auto (cpu with --smoke)")
    p.add_argument("--out", default=None, help="run folder (default runs/ablation-<date>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last complete epochs")
    p.add_argument("--smoke", action="store_true",
                   help="recipe smoke: a tiny model on 48 built-in images (or the first 48 of --data PATH), "
                        "all variants end to end on CPU in seconds; overrides --recipe")
    p.add_argument("--cpu-threads", type=int, default=None, metavar="N",
                   help="torch threads per job on a CPU (default: the recipe's cpu_threads, else all cores for "
                        "one job, shared out among the jobs trained at once)")
    p.add_argument("--executor", default="local", metavar="local|submitit-local|slurm",
                   help="who runs the jobs: local (default: this process, or a pool of job processes with the "
                        "recipe's parallel_jobs), submitit-local (one submitit process per job), slurm (one "
                        "SLURM array job for all jobs)")
    p.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="a SLURM option for --executor slurm (repeatable; over the recipe's cluster: section): "
                        "partition, account, qos, constraint, time (minutes), cpus_per_task, gpus_per_task, "
                        "mem (e.g. 16G), array_parallelism")
    p.add_argument("--dry-run", action="store_true",
                   help="with --executor slurm: write the sbatch script into RUN/submitit/, print its path, "
                        "submit nothing")
    p.set_defaults(func=run_ablate)

    r = sub.add_parser("report", help="write report.md, report.html, summary.csv and summary.json of an ablation run")
    r.add_argument("run_dir", help="an ablation run folder (runs/NAME)")
    r.add_argument("--per-joint", action="store_true",
                   help="first evaluate the finished jobs that recorded no per-joint AP / PCK (trained before they "
                        "were recorded) from their last.pth, on the run's validation set, and add them")
    r.set_defaults(func=run_report)


def _sigterm(_signum, _frame):
    raise KeyboardInterrupt


def _build_request(args, out: Path):
    import hrnet_core as hc
    from analysis.ablation.recipes import RecipeError, default_recipe, load_recipe
    from analysis.ablation.runner import AblationRequest, parse_variants, resolve_base
    from analysis.ablation.variants import stage_modules
    if args.smoke and args.recipe not in (None, "smoke"):
        print(f"--smoke: the smoke recipe is used instead of {args.recipe}")
    recipe = load_recipe("smoke" if args.smoke else (args.recipe or default_recipe()))
    if args.epochs is not None:
        check_count(args.epochs, "--epochs", 100_000)
        from dataclasses import replace

        recipe = replace(recipe, epochs=args.epochs, lr_steps=tuple(s for s in recipe.lr_steps if s <= args.epochs))
    seeds = recipe.seeds if args.seeds is None else args.seeds
    check_count(seeds, "--seeds", 1000)
    base_path = args.base or str(settings.PROJECT_ROOT / DEFAULT_BASE)
    loaded = hc.load_config(base_path)
    stage_modules(loaded)  # the ablation varies the fusion schedule: a network without one is refused first
    base = resolve_base(loaded, recipe)
    variants = parse_variants(args.variants, base, args.schedule)
    data = args.data or recipe.data
    if data == "coco":
        raise RecipeError(f"recipe {recipe.name} trains on COCO: give --data PATH (a COCO 2017 keypoints folder)")
    device = args.device or ("cpu" if args.smoke else "auto")
    return AblationRequest(out, base, variants, recipe, data, list(range(seeds)), device, base_path,
                           args.smoke, ["hrnet-explorer", *sys.argv[1:]] if sys.argv else [])


def _executor_spec(args):
    """``--executor``, ``--slurm`` and ``--dry-run`` checked together; one line naming the flag."""
    from analysis.ablation.executors import check_executor_name
    from analysis.ablation.slurm import executor_spec

    name = check_executor_name(args.executor)
    if args.slurm and name != "slurm":
        raise UserInputError(f"--slurm: SLURM options need --executor slurm (not {name})")
    if args.dry_run and name != "slurm":
        raise UserInputError(f"--dry-run: only with --executor slurm (not {name})")
    options = {}
    for item in args.slurm:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserInputError(f"--slurm {item}: must be KEY=VALUE, e.g. partition=gpu")
        options[key.strip()] = value.strip()
    return executor_spec(name, options)


def run_ablate(args) -> int:
    from analysis.ablation.runner import load_request, run_ablation
    from analysis.ablation.slurm import slurm_dry_run

    spec = _executor_spec(args)
    if args.cpu_threads is not None:
        check_count(args.cpu_threads, "--cpu-threads", 4096)

    try:
        from hrnet_core.device import resolve_device

        if args.device:
            resolve_device(args.device)
    except ValueError as err:
        raise UserInputError(f"--device: {err}") from None
    out = Path(args.out) if args.out else Path("runs") / time.strftime("ablation-%Y%m%d-%H%M%S")
    output_dir(out, "--out", keep=False)  # before any work: /proc/x or an existing file is refused in one line
    if args.resume and (out / "ablation.json").is_file():
        req = load_request(out, args.device)
        print(f"resuming {out} with its stored request: variants "
              f"{', '.join(v.name for v in req.variants)}; recipe {req.recipe.name}; seeds {req.seeds}")
    else:
        req = _build_request(args, out)
    if args.cpu_threads is not None:
        from dataclasses import replace

        req = replace(req, cpu_threads=args.cpu_threads)
    if args.dry_run:
        path = slurm_dry_run(req, spec, resume=args.resume, log=print)
        print(f"dry run: the sbatch script of the array job is {path}; nothing was submitted")
        return 0
    previous = signal.signal(signal.SIGTERM, _sigterm)
    # A stop is a SIGINT (the app's Stop, Ctrl-C): it must raise KeyboardInterrupt even when this process was
    # started with SIGINT ignored (a child of a pytest-xdist worker inherits SIG_IGN, and Python then installs no
    # handler of its own), or the run would train on to the end.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.perf_counter()
    try:
        result = run_ablation(req, resume=args.resume, log=lambda s: print(s, flush=True), executor=spec)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    wall = time.perf_counter() - t0
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0 if not result["failed"] else 1
    if result.get("report"):
        from analysis.ablation.report import report_text

        print()
        print(report_text(out))
        print()
        print("report: " + ", ".join(result["report"].values()))
    label = "smoke ablation" if req.smoke else "ablation"
    print(f"{label}: {len(req.variants)} variants x {len(req.seeds)} seed(s), {result['done']} done, "
          f"{result['failed']} failed, in {wall:.1f} s")
    if result["failed"]:
        print(f"hrnet-explorer ablate: {result['failed']} of {result['jobs']} jobs failed; "
              f"see {out}/<variant>/seed<k>/status.json", file=sys.stderr)
        return 1
    return 0


def run_report(args) -> int:
    from analysis.ablation.report import report_text, write_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "ablation.json").is_file():
        raise UserInputError(f"{run_dir}: not an ablation run folder (no ablation.json)")
    if args.per_joint:
        from analysis.ablation.rescore import add_per_joint

        added = add_per_joint(run_dir)
        print(f"per-joint figures added to {len(added)} job(s)" if added else "every finished job has per-joint figures")
    paths = write_report(run_dir)
    print(report_text(run_dir))
    print()
    for name, p in paths.as_dict().items():
        print(f"{name}: {p}")
    return 0
