"""``hrnet-explorer diagram`` and ``hrnet-explorer features``: architecture diagrams and feature maps.

    hrnet-explorer diagram CONFIG -o OUT.{svg,png,dot} [--level stage|module|block] [--module NAME]
                           [--annotate params|gflops] [--fusion PRESET] [--input-size H W]
    hrnet-explorer features [CONFIG] --image PATH|astronaut [--checkpoint PATH] [--device auto|cpu|cuda]
                            -o DIR [--fusion PRESET] [--topk K] [--seed N] [--init default|official]
                            [--box X Y W H] [--png-level 0-9]
    hrnet-explorer features --run runs/NAME --variant all --seed 0 [--which best|last|auto]
                            [--val-index K] -o DIR

A run checkpoint (``--run``, or ``--checkpoint`` of a run's job folder) brings its own config (the
job's ``model.yaml``); ``--val-index K`` takes the run's K-th validation person and writes the ground
truth against the prediction (``gt_vs_pred.png``, ``joints.csv``).
"""

from __future__ import annotations

import time
from pathlib import Path

import hrnet_core as hc
from analysis.cli.args import bounded_int, check_box, finite_float, output_dir, output_file
from hrnet_core.budget import check_activations, check_depth
from hrnet_core.errors import UserInputError
from hrnet_core.networks.model_config import network_label


def register(sub) -> None:
    p = sub.add_parser("diagram", help="draw the architecture in the paper's layout (DOT, SVG or PNG)",
                       description="Draw a config's HRNet: depth left to right, resolution top to bottom.")
    p.add_argument("config", help="official experiment YAML or project YAML")
    p.add_argument("-o", "--output", required=True, help="output file: .svg, .png (need Graphviz dot) or .dot/.gv")
    p.add_argument("--level", choices=("stage", "module", "block"),
                   help="stage: a node per branch per stage; module (default): per module; block: one module opened "
                        "up (the default when --module is given)")
    p.add_argument("--module", help="the module the block level opens, e.g. stage3.module1 (0-based, as "
                                    "forward_intermediates names it; default: the last stage's first module)")
    p.add_argument("--annotate", choices=("params", "gflops"), help="add params or GFLOPs (paper convention) per node")
    p.add_argument("--fusion", choices=hc.FUSION_PRESETS, help="override the fusion schedule")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"),
                   help="input size for the shapes shown")
    p.set_defaults(func=run_diagram)

    f = sub.add_parser("features", help="per-module, per-branch feature maps and head outputs of a real image",
                       description="Run a config's model on an image and write every module's per-branch maps "
                                   "(PNG), overlays, head outputs and stats.csv.")
    f.add_argument("config", nargs="?",
                   help="official experiment YAML or project YAML (default with a run checkpoint: its model.yaml)")
    f.add_argument("--image", help="an image file (PNG, JPEG, ...) or a bundled photograph: astronaut (default), "
                                   "coffee, chelsea")
    f.add_argument("--checkpoint", help="load this .pth/.pth.tar strictly (default: an untrained network); a run's "
                                        "best.pth / last.pth brings its model.yaml")
    f.add_argument("--run", help="an ablation run folder (runs/NAME): take the checkpoint of --variant and --seed")
    f.add_argument("--variant", help="with --run: the variant (e.g. all, final_only)")
    f.add_argument("--which", choices=("best", "last", "auto"), default="auto",
                   help="with --run: best.pth (best val AP), last.pth, or auto (default: best when present)")
    f.add_argument("--val-index", type=int, metavar="K",
                   help="the run's K-th validation person (0-based) instead of --image: its box, ground truth "
                        "vs prediction (gt_vs_pred.png) and per-joint confidence (joints.csv)")
    f.add_argument("--device", default="auto", help="auto (default: cuda when available), cpu or cuda")
    f.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch",
                   help="run the forward in PyTorch (default) or as ONNX in onnxruntime (CPU)")
    f.add_argument("--fast", action="store_true",
                   help="the inference fast path (BatchNorm folded, channels_last) with the torch engine")
    f.add_argument("-o", "--output", required=True, help="output folder (created)")
    f.add_argument("--fusion", choices=hc.FUSION_PRESETS, help="override the fusion schedule")
    f.add_argument("--topk", type=bounded_int(1, 4096), default=16, help="channels shown per branch, by energy (default 16)")
    f.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0,
                   help="with --run: the job's seed (seed<N> folder); otherwise the seed of the untrained weights "
                        "(default 0)")
    f.add_argument("--init", choices=("default", "official"), default="default",
                   help="untrained weights: PyTorch's default init (default), or the official N(0, 0.001) convs, "
                        "whose activations collapse to ~1e-10 in eval mode (see analysis.features.weights)")
    f.add_argument("--box", nargs=4, type=finite_float, metavar=("X", "Y", "W", "H"),
                   help="person box for the official pose crop (default: the bundled photo's box, else the whole "
                        "image, centre-cropped)")
    f.add_argument("--allow-nonfinite-weights", action="store_true",
                   help="load a checkpoint even with NaN/Inf weights (warns); refused by default")
    f.add_argument("--png-level", type=int, default=1, choices=range(10), metavar="0-9",
                   help="PNG compression level: 1 (default) is fast, 9 the smallest files")
    f.set_defaults(func=run_features)


def _config(args):
    cfg = hc.load_config(args.config)
    if args.fusion:
        cfg = cfg.with_fusion(args.fusion)
    check_depth(cfg)  # the same whole-model bound for a diagram as for a built model
    return cfg


def run_diagram(args) -> int:
    from analysis.diagram.build import build_diagram, count_classes, render

    cfg = _config(args)
    output_file(args.output, "-o")
    level = args.level or ("block" if args.module else "module")
    graph = build_diagram(cfg, level=level, module=args.module, annotate=args.annotate,
                          input_hw=tuple(args.input_size) if args.input_size else None)
    path = render(graph, args.output)
    counts = count_classes(graph)
    n, e = counts["nodes"], counts["edges"]
    exchange = e["fuse_up"] + e["fuse_down"]
    print(f"wrote {path} ({level} level: {n['branch'] + n['block']} branch/block nodes, exchange sums: {n['fuse']}, "
          f"exchange edges: {exchange} ({e['fuse_up']} up, {e['fuse_down']} down); "
          f"fusion in {_fused_modules(cfg)})")
    return 0


def _fused_modules(cfg) -> str:
    """``3 of 8 modules``: the modules whose exchange unit fuses, from the parts plan (any network)."""
    graph = hc.architecture(cfg)
    fused = {(p.stage, p.module) for p in graph.parts if p.kind == "fusion"}
    return f"{len(fused)} of {len(graph.exchange_modules)} modules"


def _features_source(args):
    """``(cfg, checkpoint, run_dir)`` from CONFIG / --checkpoint / --run."""
    from analysis.ablation.progress import checkpoint_config, checkpoint_run_dir, find_run_checkpoint

    checkpoint, run_dir = args.checkpoint, None
    if args.run:
        if args.checkpoint:
            raise UserInputError("--run and --checkpoint: give one of them")
        if not args.variant:
            raise UserInputError("--variant: needed with --run (e.g. --variant all)")
        checkpoint = str(find_run_checkpoint(args.run, args.variant, args.seed, args.which))
        run_dir = Path(args.run)
    elif args.variant:
        raise UserInputError("--variant: only with --run")
    elif checkpoint:
        run_dir = checkpoint_run_dir(checkpoint)
    if args.config:
        return _config(args), checkpoint, run_dir
    run_cfg, _ = checkpoint_config(checkpoint) if checkpoint and Path(checkpoint).is_file() else (None, None)
    if run_cfg is None:
        raise UserInputError("CONFIG: needed (no run checkpoint with a model.yaml beside it was given)")
    return (run_cfg.with_fusion(args.fusion) if args.fusion else run_cfg), checkpoint, run_dir


def run_features(args) -> int:
    from analysis.features import capture, write_feature_maps
    from analysis.features.val_pose import draw_comparison, pick, predict_person, run_data_root, val_persons
    from analysis.features.weights import build_weights, checkpoint_meta, describe_checkpoint
    from analysis.imaging.images import bundled_box, load_image

    cfg, checkpoint, run_dir = _features_source(args)
    check_activations(cfg, 1)
    person = None
    if args.val_index is not None:
        if args.image or args.box:
            raise UserInputError("--val-index: takes the person's own image and box; drop --image / --box")
        if run_dir is None:
            raise UserInputError("--val-index: needs a run (--run, or --checkpoint of a run's job folder)")
        person = pick(val_persons(run_data_root(run_dir), cfg.input_hw), args.val_index)
        image_arg, box = person.image, person.box
        image = load_image(image_arg)
    else:
        image_arg = args.image or "astronaut"
        image = load_image(image_arg)  # fail fast, before building the model
        box = check_box(args.box, image.shape[:2]) if args.box else (
            bundled_box(image_arg) if cfg.family == "pose" else None)
    out = output_dir(args.output, "-o")  # checked (and made) once the inputs are known to be good
    model, weights = build_weights(cfg, checkpoint, seed=0 if args.run else args.seed, init=args.init,
                                   allow_nonfinite=args.allow_nonfinite_weights)
    cap = capture(model, cfg, image, device=args.device, box=box, topk=args.topk, source=image_arg,
                  engine=args.engine, fast=args.fast)
    t0 = time.perf_counter()
    groups = write_feature_maps(cap, out, compress_level=args.png_level)
    t_write = time.perf_counter() - t0
    files = sum(len(v) for v in groups.values())
    t = cap.timings
    h, w = cfg.input_hw
    print(f"{cfg.name} ({network_label(cfg)}, {hc.count_params(cfg) / 1e6:.3f}M params, input {h}x{w}) "
          f"on {cap.device}: {weights}")
    about = describe_checkpoint(checkpoint_meta(checkpoint)) if checkpoint else ""
    if about:
        print(f"checkpoint: {about}")
    fold = f" (fast path: folded in {t['fast_path_s'] * 1e3:.0f} ms)" if "fast_path_s" in t else ""
    print(f"image {cap.source} -> {cap.input_hw[0]}x{cap.input_hw[1]}; forward {t['forward_s'] * 1e3:.0f} ms{fold}, "
          f"reduce {t['reduce_s'] * 1e3:.0f} ms, render {t_write * 1e3:.0f} ms")
    head = cap.head
    if head.kind == "classification":
        print("top-5 (ImageNet class index: probability): "
              + ", ".join(f"{i}: {p:.4f}" for i, p in head.top5))
    elif head.kind == "heatmaps":
        print(f"{len(head.names)} heatmaps {head.maps.shape[-2]}x{head.maps.shape[-1]}; argmax in head/keypoints.csv")
    elif head.kind == "segmentation":
        print(f"class map of {head.classes} classes at {cap.input_hw[0]}x{cap.input_hw[1]}; pixel shares in head/classes.csv")
    else:
        print(f"{len(head.levels)} pyramid levels: " + ", ".join("x".join(map(str, s)) for s in head.shapes))
    if person is not None:
        if head.kind != "heatmaps" or head.maps is None or head.maps.shape[0] != 17:
            raise UserInputError("--val-index: needs a 17-joint COCO pose head")
        pred = predict_person(head.maps, person)
        draw_comparison(image, pred, cfg.input_hw).save(out / "gt_vs_pred.png")
        pred.joints().to_csv(out / "joints.csv", index=False)
        x, y, bw, bh = person.box
        print(f"validation person {args.val_index} ({Path(person.image).name}, box {x:.0f} {y:.0f} {bw:.0f} {bh:.0f}): "
              f"PCK@0.1 {100 * pred.metrics['PCK@0.1']:.0f} %, mean confidence {pred.mean_confidence:.3f}; "
              f"wrote gt_vs_pred.png, joints.csv")
    print(f"wrote {files} files to {out} ({len(groups['maps'])} branch panels, {len(groups['overlays'])} overlays, "
          f"{len(groups['modules'])} module sheets, {len(groups['head'])} head files, stats.csv)")
    return 0
