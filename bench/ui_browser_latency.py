"""What the user waits for in a real browser: edit -> refreshed numbers on the Build page, and the first page.

Serves the app with ``streamlit run`` (or uses ``--url``), drives Debian's chromium through Playwright, and
times, from the input event until the page shows the new numbers (the Params / Fusions metrics hold the
edited model's values), on the page's own clock: a capture listener stamps the last ``keydown`` / ``mousedown``
with ``performance.now()`` and a ``requestAnimationFrame`` poll stamps the first frame that shows the new value
(so one frame, ~16 ms, of resolution). The time Playwright itself takes to find, scroll to and press the control
is not the user's wait; it is printed apart ("driver" figures: from the Playwright call to the poll's answer):

  width:   the Width control 32 -> 48 -> 32 ... (typed, Enter)
  preset:  the preset picker, pose_hrnet_w32_256x192 <-> cls_hrnet_w18_small_v1 (typed, from Enter)
  fusion:  one module's fusion toggled (the stage 2 module0 pill of the fusion schedule)

and the first page: ``goto`` until the Build page's metrics are drawn, on a warm server (a fresh browser
context each time) and cold (from ``streamlit run`` to the first page's numbers, the server process started by
this script; not with ``--url``). Page switches: a click on the sidebar's link until the new page's title is
drawn ("title") and until its script run has ended with nothing left running ("settled"), for every page.
Prints the median and p90 per kind and the load average (``os.getloadavg``) before and after. Targets
(issue 21): first page warm <= 1.5 s, cold <= 4 s, edit median <= 150 ms on this 2-core machine.

    python bench/ui_browser_latency.py [--repeats 8] [--url http://127.0.0.1:8501] [--parts first,edits,switches]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("HRNET_EXPLORER_CHROMIUM", "/usr/bin/chromium")
METRICS = "() => Array.from(document.querySelectorAll('[data-testid=\"stMetricValue\"]')).map(e => e.innerText)"


@contextlib.contextmanager
def serve():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="ui_latency_"))
    env = dict(os.environ, HRNET_EXPLORER_RUNS=str(tmp / "runs"), HRNET_EXPLORER_USER_CONFIGS=str(tmp / "configs"))
    proc = subprocess.Popen([sys.executable, "-m", "app.serve", "--server.address",
                             "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    try:
        for _ in range(600):
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            time.sleep(0.05)
        yield url, started
    finally:
        proc.terminate()
        proc.wait(10)


STAMP_INPUT = """for (const type of ["keydown", "mousedown"])
  document.addEventListener(type, () => { window.__inputAt = performance.now(); }, true);"""


def wait_metric(page, text: str, timeout_ms: int = 120_000) -> float:
    """Wait until a metric shows ``text``; return the page clock's ms from the last input event to that frame."""
    seen = page.wait_for_function(f"() => ({METRICS})().includes({text!r}) && performance.now()",
                                  polling="raf", timeout=timeout_ms).json_value()
    return (seen - (page.evaluate("window.__inputAt") or 0.0)) / 1e3


def first_page(browser, url: str, since: float | None = None) -> float:
    """Seconds from ``since`` (default: the ``goto``) until the Build page's metrics are drawn."""
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = ctx.new_page()
    t = time.perf_counter() if since is None else since
    page.goto(url)
    page.wait_for_function(f"() => ({METRICS})().length >= 4", timeout=240_000)
    dt = time.perf_counter() - t
    ctx.close()
    return dt


PAGES = ["Architecture", "Complexity", "Feature maps", "Ablation", "Design space", "System", "Build"]
IDLE = ("() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"
        " === 'notRunning' && !document.querySelector('[data-testid=\"stStatusWidget\"]')")


def switch_page(page, title: str) -> tuple[float, float]:
    """Click the sidebar link to ``title``: seconds until its title is drawn, and until its run has settled."""
    t = time.perf_counter()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
    page.wait_for_function(f"() => [...document.querySelectorAll('[data-testid=\"stMainBlockContainer\"] h1')]"
                           f".some(h => h.innerText.trim() === {title!r})", polling="raf", timeout=240_000)
    drawn = time.perf_counter() - t
    page.wait_for_function(IDLE, timeout=240_000)
    return drawn, time.perf_counter() - t


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))]
    return f"median {1e3 * statistics.median(xs):6.0f} ms   p90 {1e3 * p90:6.0f} ms   (n={len(xs)})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--url", default=None, help="an app already served (default: start one)")
    ap.add_argument("--parts", default="first,edits,switches",
                    help="what to measure, comma-separated: first (first page), edits, switches (page switches)")
    args = ap.parse_args(argv)
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = args.parts - {"first", "edits", "switches"}
    if unknown or not args.parts:
        ap.error(f"--parts: {', '.join(sorted(unknown)) or 'nothing'} is not one of first, edits, switches")
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    import hrnet_core as hc

    def params(name: str) -> str:
        return f"{hc.count_params(hc.load_config(ROOT / 'configs' / f'{name}.yaml')) / 1e6:.2f}M"

    w32, w48, cls = params("pose_hrnet_w32_256x192"), params("pose_hrnet_w48_256x192"), params("cls_hrnet_w18_small_v1")
    load0 = os.getloadavg()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        with (contextlib.nullcontext((args.url, None)) if args.url else serve()) as (url, started):
            _measure(args, browser, url, started, (w32, w48, cls), load0)
    return 0


def returning_visits(browser, url: str, n: int) -> list[float]:
    """First page in new tabs of one browser profile (its HTTP cache holds Streamlit's scripts, as a returning
    user's does): seconds from ``goto`` until the Build page's metrics are drawn."""
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    ctx.new_page().goto(url)  # fills the cache
    out = []
    for _ in range(n):
        page = ctx.new_page()
        t = time.perf_counter()
        page.goto(url)
        page.wait_for_function(f"() => ({METRICS})().length >= 4", timeout=240_000)
        out.append(time.perf_counter() - t)
        page.close()
    ctx.close()
    return out


def _measure(args, browser, url: str, started: float | None, targets: tuple[str, str, str], load0) -> None:
    w32, w48, cls = targets
    if "first" in args.parts:
        cold = first_page(browser, url, since=started)
        warm = [first_page(browser, url) for _ in range(max(3, args.repeats // 2))]
        returning = returning_visits(browser, url, max(3, args.repeats // 2))
    page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
    page.add_init_script(STAMP_INPUT)
    page.goto(url)
    wait_metric(page, w32)
    page.wait_for_function(IDLE, timeout=240_000)
    times: dict[str, list[float]] = {"width": [], "preset": [], "fusion": []}
    driver: dict[str, list[float]] = {k: [] for k in times}
    if "edits" in args.parts:
        _edits(page, args.repeats, targets, times, driver)
    switches: dict[str, list[tuple[float, float]]] = {name: [] for name in PAGES}
    if "switches" in args.parts:
        for _ in range(max(2, args.repeats // 4)):
            for name in PAGES:
                switches[name].append(switch_page(page, name))
    load1 = os.getloadavg()
    if "first" in args.parts:
        what = "from `streamlit run`" if started is not None else "first visit of the given server"
        print(f"first page: cold {cold:.2f} s ({what}); warm server, new browser profile: median "
              f"{statistics.median(warm):.2f} s, max {max(warm):.2f} s (n={len(warm)}); warm server, returning "
              f"browser (new tab, cached scripts): median {statistics.median(returning):.2f} s, max "
              f"{max(returning):.2f} s (n={len(returning)})")
    if "edits" in args.parts:
        print("edit -> new numbers, from the input event (page clock):")
        for kind, xs in times.items():
            print(f"edit {kind:7s} {stats(xs)}")
        print("the same, from the Playwright call (driver, includes its actionability checks):")
        for kind, xs in driver.items():
            print(f"driver {kind:7s} {stats(xs)}")
    if "switches" in args.parts:
        print("page switch (sidebar link -> title drawn / run settled), median of the visits:")
        for name, xs in switches.items():
            print(f"  {name:13s} {statistics.median(x[0] for x in xs):5.2f} s / "
                  f"{statistics.median(x[1] for x in xs):5.2f} s   (n={len(xs)})")
    print("load average (1, 5, 15 min): before " + " ".join(f"{v:.2f}" for v in load0)
          + ", after " + " ".join(f"{v:.2f}" for v in load1) + f" on {os.cpu_count()} CPUs")


def _edits(page, repeats: int, targets: tuple[str, str, str], times: dict, driver: dict) -> None:
    """Each edit kind ``repeats`` times: the page clock's wait into ``times``, the driver's into ``driver``."""
    w32, w48, cls = targets
    width = page.get_by_role("spinbutton", name="Width (branch 1 channels)")
    for i in range(repeats):
        _record(times, driver, "width", _width_edit(page, width, *(("48", w48) if i % 2 == 0 else ("32", w32))))
    if repeats % 2:  # an odd count left W48: back to W32 (untimed), which the fusion edits below count on
        _width_edit(page, width, "32", w32)
    box = page.locator('[data-testid="stSelectbox"]').first
    for i in range(repeats):
        name, target = ("cls_hrnet_w18_small_v1", cls) if i % 2 == 0 else ("pose_hrnet_w32_256x192", w32)
        _record(times, driver, "preset", _preset_edit(page, box, name, target))
    if repeats % 2:  # an odd count left the cls preset: back to W32 (untimed), whose modules the fusion edits click
        _preset_edit(page, box, "pose_hrnet_w32_256x192", w32)
    for i in range(repeats):
        _record(times, driver, "fusion", _timed_edit(
            page, lambda: page.get_by_text("module0", exact=True).first.click(), "7 of 8" if i % 2 == 0 else "8 of 8"))


def _record(times: dict, driver: dict, kind: str, waits: tuple[float, float]) -> None:
    times[kind].append(waits[0])
    driver[kind].append(waits[1])


def _timed_edit(page, act, target: str) -> tuple[float, float]:
    """``act()``, then wait for a metric showing ``target``: the page clock's ms from the input event and the
    driver's seconds from the call; returns once the edit's run has ended, so the next starts from a settled page."""
    t = time.perf_counter()
    act()
    waits = wait_metric(page, target), time.perf_counter() - t
    page.wait_for_function(IDLE, timeout=240_000)
    return waits


def _width_edit(page, width, value: str, target: str) -> tuple[float, float]:
    width.fill(value)
    return _timed_edit(page, lambda: width.press("Enter"), target)


def _preset_edit(page, box, name: str, target: str) -> tuple[float, float]:
    box.click()
    page.keyboard.type(name)  # the picker filters as one types; Enter picks the match
    page.get_by_role("option", name=name, exact=True).wait_for()
    return _timed_edit(page, lambda: page.keyboard.press("Enter"), target)


if __name__ == "__main__":
    raise SystemExit(main())
