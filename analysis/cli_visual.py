"""``hrnet-explorer diagram`` and ``hrnet-explorer features``: architecture diagrams and feature maps.

    hrnet-explorer diagram CONFIG -o OUT.{svg,png,dot} [--level stage|module|block] [--module NAME]
                           [--annotate params|gflops] [--fusion PRESET] [--input-size H W]
    hrnet-explorer features CONFIG --image PATH|astronaut [--checkpoint PATH] [--device auto|cpu|cuda]
                            -o DIR [--fusion PRESET] [--topk K] [--seed N] [--init official|default]
                            [--box X Y W H] [--png-level 0-9]
"""

from __future__ import annotations

import time

import hrnet_core as hc
from hrnet_core.budget import check_activations, check_depth

from .cli_args import bounded_int, check_box, finite_float, output_dir, output_file


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
    f.add_argument("config", help="official experiment YAML or project YAML")
    f.add_argument("--image", default="astronaut",
                   help="an image file (PNG, JPEG, ...) or a bundled photograph: astronaut (default), coffee, chelsea")
    f.add_argument("--checkpoint", help="load this .pth/.pth.tar strictly (default: random weights)")
    f.add_argument("--device", default="auto", help="auto (default: cuda when available), cpu or cuda")
    f.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch",
                   help="run the forward in PyTorch (default) or as ONNX in onnxruntime (CPU)")
    f.add_argument("-o", "--output", required=True, help="output folder (created)")
    f.add_argument("--fusion", choices=hc.FUSION_PRESETS, help="override the fusion schedule")
    f.add_argument("--topk", type=bounded_int(1, 4096), default=16, help="channels shown per branch, by energy (default 16)")
    f.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0, help="seed of the random weights (default 0)")
    f.add_argument("--init", choices=("official", "default"), default="official",
                   help="random-weight initialisation: official N(0, 0.001) convs (default) or PyTorch's")
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
    from .diagram import build_diagram, count_classes, render

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
          f"fusion in {cfg.num_fusions} of {cfg.num_modules} modules)")
    return 0


def run_features(args) -> int:
    import torch

    from .features import capture, write_feature_maps
    from .images import bundled_box, load_image

    cfg = _config(args)
    check_activations(cfg, 1)
    image = load_image(args.image)  # fail fast, before building the model
    out = output_dir(args.output, "-o")
    box = check_box(args.box, image.shape[:2]) if args.box else (bundled_box(args.image) if cfg.family == "pose" else None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = hc.build_model(cfg, init=args.init)
    weights = f"random weights ({args.init} init, seed {args.seed})"
    if args.checkpoint:
        weights = hc.load_checkpoint(model, args.checkpoint, allow_nonfinite=args.allow_nonfinite_weights).status
    cap = capture(model, cfg, image, device=args.device, box=box, topk=args.topk, source=args.image,
                  engine=args.engine)
    t0 = time.perf_counter()
    groups = write_feature_maps(cap, out, compress_level=args.png_level)
    t_write = time.perf_counter() - t0
    files = sum(len(v) for v in groups.values())
    t = cap.timings
    print(f"{cfg.name} on {cap.device}: {weights}")
    print(f"image {cap.source} -> {cap.input_hw[0]}x{cap.input_hw[1]}; forward {t['forward_s'] * 1e3:.0f} ms, "
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
    print(f"wrote {files} files to {out} ({len(groups['maps'])} branch panels, {len(groups['overlays'])} overlays, "
          f"{len(groups['modules'])} module sheets, {len(groups['head'])} head files, stats.csv)")
    return 0
