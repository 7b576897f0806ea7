"""The lab in Chromium: first load of ``/``, and the boundary's redraws while a 2,000-epoch job streams.

Starts ``descent serve`` on 127.0.0.1 and drives Debian's Chromium with Playwright (as the browser
tests do, network limited to the service):

- first load: a fresh browser context (empty cache) opens ``/``; navigation to DOMContentLoaded, to
  the load event, and to the data drawn in the playground (the page usable); bytes transferred.
  Then the same with the cache warm. Median of 5 after one warm-up load.
- streaming: the playground trains an MLP (2→8→8→1, tanh) on 400 XOR points for 2,000 epochs, with
  the service's progress interval at its default (0.5 s) and at 0.1 s. For each boundary redrawn from a
  snapshot: the time from the progress event to the new boundary on screen, split into the request
  (POST /v1/jobs/{id}/snapshot/predict on a 100 × 100 grid) and the drawing; redraws per second;
  animation frames per second while the job streams, and the longest main-thread task.

Run: python benchmarks/lab.py [--screenshots docs/img]. Prints Markdown for docs/benchmarks.md; with
--screenshots, also saves the playground and the compare view as PNG files for the README.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.service.lab.browser import Browser, service  # noqa: E402

LOAD_JS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const bytes = [nav, ...resources].reduce((sum, e) => sum + (e.transferSize || 0), 0);
  return { dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, bytes };
}"""
# Counts animation frames and long tasks from now on, into window.benchFrames / window.benchLongest.
FRAMES_JS = """() => {
  window.benchFrames = 0; window.benchLongest = 0;
  const tick = () => { window.benchFrames += 1; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.benchLongest = Math.max(window.benchLongest, e.duration);
  }).observe({ type: "longtask" });
}"""
PLAYGROUND = {
    "kind": "xor", "n": 400, "noise": 0.1, "dseed": 1, "model": "mlp", "layers": "8,8", "act": "tanh",
    "opt": "adam", "lr": 0.02, "epochs": 2000, "batch": 32, "val": 0.2, "seed": 42,
}  # fmt: skip


def first_load(browser: Browser, repeats: int = 5) -> dict[str, Any]:
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    for i in range(repeats + 1):
        with browser.page(block=False) as (first, watched):
            for kind in ("cold", "warm"):
                # The warm load is a second tab of the same context: it shares the HTTP cache.
                page = first if kind == "cold" else first.context.new_page()
                began = time.perf_counter()
                page.goto(f"{browser.base_url}/")
                page.wait_for_selector("#pg-boundary .points .main-svg", state="attached")
                ready = (time.perf_counter() - began) * 1000
                timing = page.evaluate(LOAD_JS)
                if i > 0:  # the first round warms the service (it compresses the bundles once)
                    (cold if kind == "cold" else warm).append({**timing, "ready": ready})
            watched.assert_clean()
    return {
        name: {key: statistics.median(run[key] for run in runs) for key in ("dcl", "load", "ready", "bytes")}
        for name, runs in (("cold", cold), ("warm", warm))
    }


def streaming(browser: Browser) -> dict[str, Any]:
    with browser.page(block=False) as (page, watched):
        page.goto(f"{browser.base_url}/#/playground?{urlencode(PLAYGROUND)}")
        page.wait_for_selector("#pg-boundary .points .main-svg", state="attached")
        page.evaluate(FRAMES_JS)
        began = time.perf_counter()
        page.get_by_role("button", name="Train", exact=True).click()
        page.locator("#pg-status", has_text="succeeded").wait_for(timeout=300_000)
        seconds = time.perf_counter() - began
        frames = page.evaluate("window.benchFrames")
        longest = page.evaluate("window.benchLongest")
        redraws = [r for r in page.evaluate("window.descentLab.stats.redraws") if r.get("epoch") is not None]
        watched.assert_clean()
    totals = sorted(r["ms"] for r in redraws)
    return {
        "seconds": seconds,
        "redraws": len(redraws),
        "per_s": len(redraws) / seconds,
        "median": statistics.median(totals) if totals else float("nan"),
        "p95": totals[min(len(totals) - 1, int(0.95 * len(totals)))] if totals else float("nan"),
        "fetch": statistics.median(r["fetchMs"] for r in redraws) if redraws else float("nan"),
        "draw": statistics.median(r["drawMs"] for r in redraws) if redraws else float("nan"),
        "fps": frames / seconds,
        "longest": longest,
    }


def screenshots(browser: Browser, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with browser.page(width=1280, height=860) as (page, _):
        page.goto(f"{browser.base_url}/#/playground?{urlencode({**PLAYGROUND, 'epochs': 300})}")
        page.wait_for_selector("#pg-boundary .points .main-svg", state="attached")
        page.get_by_role("button", name="Train", exact=True).click()
        page.locator("#pg-status", has_text="succeeded").wait_for(timeout=300_000)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(folder / "lab-playground.png"), full_page=False)
    with browser.page(width=1280, height=1180) as (page, _):
        page.goto(f"{browser.base_url}/#/compare")
        page.wait_for_selector("#cmp-mlp-plot .points .main-svg", state="attached")
        page.get_by_role("button", name="Train both").click()
        page.locator("#cmp-why", has_text="Held out").wait_for(timeout=300_000)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(folder / "lab-compare.png"), full_page=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", type=Path, help="save the playground and compare views here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for interval in ("0.5", "0.1"):
            workdir = Path(tmp) / interval
            workdir.mkdir()
            with service(workdir, progress_interval_s=interval, workers="1") as url:
                browser = Browser(url)
                try:
                    if interval == "0.5":
                        results["load"] = first_load(browser)
                        if args.screenshots:
                            screenshots(browser, args.screenshots)
                    results[interval] = streaming(browser)
                finally:
                    browser.close()
    print("| first load of / | DOMContentLoaded | load event | playground drawn | transferred |")
    print("|---|---|---|---|---|")
    for name, label in (("cold", "empty cache"), ("warm", "warm cache")):
        r = results["load"][name]
        print(
            f"| {label} | {r['dcl']:.0f} ms | {r['load']:.0f} ms | {r['ready']:.0f} ms | "
            f"{r['bytes'] / 1024:.0f} KiB |"
        )
    print()
    print(
        "| progress interval | job | boundary redraws | event → on screen, median (p95) | request | drawing |"
        " frames/s while streaming | longest task |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for interval in ("0.5", "0.1"):
        r = results[interval]
        print(
            f"| {interval} s | {r['seconds']:.1f} s | {r['redraws']} ({r['per_s']:.1f}/s) | "
            f"{r['median']:.0f} ms ({r['p95']:.0f} ms) | {r['fetch']:.0f} ms | {r['draw']:.0f} ms | "
            f"{r['fps']:.0f} | {r['longest']:.0f} ms |"
        )


if __name__ == "__main__":
    main()
