"""How long the Build page takes to refresh its numbers and diagram after an edit, on CPU.

Times, for pose W48 256x192, the chain of pure functions the Build page calls when one edit arrives
(everything the page recomputes; Streamlit's caches are keyed by config hash, and every edit below
yields a config never seen before, so each one is a cache miss):

  form edit:  config_edit.config_from_form  (toggle one module's fusion / change the joints)
  YAML edit:  config_edit.parse_yaml        (the edited YAML text -> HRNetConfig)
  then:       complexity.analyze(backend="analytic")   (params, GFLOPs, the breakdown)
              config_edit.model_view                   (output shapes, stage table, size bound check)
              diagram.build_diagram(level="stage").source (DOT; the page draws it with st.graphviz_chart,
                                                         i.e. Graphviz in the browser, not `dot` here)
              dump_config + config_edit.yaml_diff      (YAML editor text and the diff vs the preset)

Server-side SVG rendering (`dot -Tsvg`) only happens for the Architecture page's download buttons; it
is timed separately and not part of the figure. Prints the median and max over the edits; the target
is a median under 300 ms.

Second figure: the whole Build page script rerun after a form edit (changing the joint count), run by
Streamlit's AppTest in this process: the pure functions above plus every widget, the sidebar and
Streamlit's own overhead, but not the network or the browser drawing the page.

    python bench/ui_latency.py [--preset pose_hrnet_w48_256x192] [--edits 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from analysis.complexity import analyze  # noqa: E402
from analysis.diagram.build import build_diagram, render_bytes  # noqa: E402
from app.logic import config_edit as ce  # noqa: E402
from hrnet_core import dump_config  # noqa: E402

TARGET_MS = 300.0


def refresh(base, cfg) -> dict[str, float]:
    """What the Build page recomputes for a new valid ``cfg``; returns per-step milliseconds."""
    t0 = time.perf_counter()
    report = analyze(cfg, backend="analytic")
    t1 = time.perf_counter()
    ce.model_view(cfg, report)
    t2 = time.perf_counter()
    dot = build_diagram(cfg, level="stage").source
    assert dot.startswith("digraph")
    t3 = time.perf_counter()
    dump_config(cfg)
    ce.yaml_diff(base, cfg)
    t4 = time.perf_counter()
    return {"analyze": 1e3 * (t1 - t0), "model_view": 1e3 * (t2 - t1), "diagram_dot": 1e3 * (t3 - t2),
            "yaml_diff": 1e3 * (t4 - t3)}


def form_edits(base, n: int):
    """``n`` distinct form edits: one module's fusion toggled, and the joint count changed."""
    values = ce.form_values(base)
    slots = [(s, m) for s, row in enumerate(values["fusion"]) for m in range(len(row))]
    for i in range(n):
        v = ce.form_values(base)
        s, m = slots[i % len(slots)]
        v["fusion"][s][m] = not v["fusion"][s][m]
        v["head_outputs"] = 17 + i
        yield v


def page_rerun_ms(preset: str, n: int) -> list[float]:
    """Milliseconds of the Build page's script rerun after ``n`` distinct form edits of ``preset``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120).run()
    at.selectbox(key="b_preset").set_value(preset).run()
    out = []
    for i in range(n):
        widget = at.number_input(key="b_head_out").set_value(100 + i)
        t0 = time.perf_counter()
        widget.run()
        out.append(1e3 * (time.perf_counter() - t0))
        if at.exception or at.error:
            raise SystemExit(f"the Build page failed: {[e.value for e in (*at.exception, *at.error)]}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="pose_hrnet_w48_256x192")
    p.add_argument("--edits", type=int, default=16)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = ce.load_preset(args.preset)
    text = ce.list_presets()[args.preset].read_text()
    refresh(base, base)  # warm-up: imports, first-call overheads

    totals = {"form edit": [], "YAML edit": []}
    steps: dict[str, list[float]] = {}
    for i, values in enumerate(form_edits(base, args.edits)):
        t0 = time.perf_counter()
        cfg = ce.config_from_form(base, values)
        parse_ms = 1e3 * (time.perf_counter() - t0)
        t = refresh(base, cfg)
        totals["form edit"].append(parse_ms + sum(t.values()))
        for k, v in ({"parse": parse_ms} | t).items():
            steps.setdefault(k, []).append(v)

        edited = text.replace("outputs: 17", f"outputs: {40 + i}")  # a YAML edit: the joint count
        t0 = time.perf_counter()
        cfg = ce.parse_yaml(edited)
        parse_ms = 1e3 * (time.perf_counter() - t0)
        totals["YAML edit"].append(parse_ms + sum(refresh(base, cfg).values()))

    svg = []
    for i in range(4):
        g = build_diagram(base.with_fusion(["all", "final_only", "across_stage", "none"][i]), level="stage")
        t0 = time.perf_counter()
        render_bytes(g, "svg")
        svg.append(1e3 * (time.perf_counter() - t0))

    print(f"UI edit latency on CPU ({torch.get_num_threads()} threads), {args.preset}, {args.edits} distinct edits each:")
    for k, v in steps.items():
        print(f"  {k:12s} median {statistics.median(v):7.1f} ms")
    worst = 0.0
    for name, values in totals.items():
        med = statistics.median(values)
        worst = max(worst, med)
        print(f"{name}: edit -> numbers + diagram DOT refreshed: median {med:.1f} ms, max {max(values):.1f} ms")
    print(f"(not in the figure) server-side SVG render of the stage diagram with dot: median {statistics.median(svg):.1f} ms")
    page = page_rerun_ms(args.preset, max(4, args.edits // 2))
    print(f"whole Build page rerun after a form edit (AppTest, server side): median {statistics.median(page):.1f} ms, "
          f"max {max(page):.1f} ms")
    worst = max(worst, statistics.median(page))
    verdict = "OK" if worst < TARGET_MS else "OVER"
    print(f"result: {worst:.1f} ms median per edit, the slower of the figures above (target < {TARGET_MS:.0f} ms): "
          f"{verdict}")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
