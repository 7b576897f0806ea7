"""The lab in a real browser: Debian's Chromium driven by Playwright against ``descent serve``.

Every test runs with the network limited to the service (any other request is aborted and fails the
test) and fails on a console error. Waits are on what the page shows, with generous bounds.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.service.lab.browser import JOB_MS, TIMEOUT_MS, Browser, plot_data, require_chromium, service, trace
from tests.timing import REQUEST_S

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.xdist_group("lab-browser")]

XOR = {"kind": "xor", "n": 400, "noise": 0.05, "dseed": 1}
MLP = {"model": "mlp", "layers": "8,8", "act": "tanh", "opt": "adam", "lr": 0.02, "batch": 32, "val": 0.2}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    with service(tmp_path_factory.mktemp("lab")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(base_url: str) -> Iterator[Browser]:
    running = Browser(base_url)
    yield running
    running.close()


def api_get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=REQUEST_S)


def api_post(url: str, json: Any) -> httpx.Response:
    return httpx.post(url, json=json, timeout=REQUEST_S)


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(target)


def playground_url(base_url: str, **settings: Any) -> str:
    return f"{base_url}/#/playground?{urlencode(settings)}"


def train(page: Any) -> str:
    """Press Train and wait for the job to succeed; the job's id (from the URL)."""
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.locator("#pg-status")).to_have_text(re.compile(r"^succeeded"), timeout=JOB_MS)
    match = re.search(r"job=(job_\w+)", page.url)
    assert match, page.url
    return match.group(1)


def nearest(values: list[float], target: float) -> int:
    return min(range(len(values)), key=lambda i: abs(values[i] - target))


def test_every_view_loads_with_no_console_error_and_no_other_host(browser: Browser) -> None:
    with browser.page() as (page, watched):
        page.goto(f"{browser.base_url}/#/activations")
        activations = api_get(f"{browser.base_url}/v1/activations").json()["items"]
        expect(page.locator(".card .main-svg").first).to_be_visible()
        expect(page.locator(".card")).to_have_count(len(activations))
        expect(page.locator("#act-relu dd code").first).to_have_text("max(0, z)")
        relu = trace(page, "#act-relu .plot", "φ′(z)")
        assert relu["y"][0] == 0 and relu["y"][-1] == 1  # φ′ of ReLU: 0 left of zero, 1 right of it

        for view, ready in [
            ("Playground", "#pg-boundary .points .main-svg"),
            ("Compare", "#cmp-mlp-plot .points .main-svg"),
            ("Jobs & models", "#jobs-table tbody tr"),
        ]:
            page.get_by_role("link", name=view).click()
            expect(page.locator(ready).first).to_be_visible()
            expect(page.get_by_role("link", name=view)).to_have_attribute("aria-current", "page")
        expect(page.locator("#models-table tbody td.empty")).to_contain_text("No models yet")
        assert (
            page.locator("nav a[href='/docs']").count() == 1
            and page.locator("nav a[href='/redoc']").count() == 1
        )
        watched.assert_clean()


def test_training_xor_with_an_mlp_draws_a_falling_loss_and_separates_the_quadrants(browser: Browser) -> None:
    with browser.page() as (page, watched):
        page.goto(playground_url(browser.base_url, **XOR, **MLP, epochs=300, seed=42))
        expect(page.locator("#pg-boundary-caption")).to_contain_text("400 samples")
        train(page)
        loss = trace(page, "#pg-curves", "train loss")
        assert len(loss["x"]) == 300 and loss["x"][-1] == 300
        assert loss["y"][-1] < 0.25 * loss["y"][0], (loss["y"][0], loss["y"][-1])
        shading = plot_data(page, "#pg-boundary .shading")[0]
        xs, ys, z = shading["x"], shading["y"], shading["z"]
        assert (len(xs), len(ys)) == (100, 100)
        # XOR's label is 1 where x₀·x₁ > 0: two opposite quadrants each side of the boundary.
        for x0, x1 in [(0.5, 0.5), (-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5)]:
            p = z[nearest(ys, x1)][nearest(xs, x0)]
            assert (p > 0.9) if x0 * x1 > 0 else (p < 0.1), ((x0, x1), p)
        expect(page.locator("#pg-status")).to_contain_text("validation accuracy")
        watched.assert_clean()


def test_the_boundary_moves_while_a_job_trains_and_cancel_ends_it(browser: Browser) -> None:
    with browser.page() as (page, watched):
        page.goto(playground_url(browser.base_url, **XOR, **MLP, epochs=100_000, seed=5))
        expect(page.locator("#pg-boundary .points .main-svg").first).to_be_visible()
        page.get_by_role("button", name="Train", exact=True).click()
        expect(page.locator("#pg-status")).to_have_text(re.compile(r"^running · epoch"))
        # Two boundaries drawn from two snapshots of the running job, at different epochs.
        deadline = time.monotonic() + JOB_MS / 1000
        while True:
            epochs = page.evaluate("window.descentLab.stats.redraws.map(r => r.epoch)")
            if len({e for e in epochs if e is not None}) >= 2:
                break
            assert time.monotonic() < deadline, f"the boundary was not redrawn from two snapshots: {epochs}"
            page.wait_for_timeout(100)
        caption = page.locator("#pg-boundary-caption")
        expect(caption).to_contain_text("after epoch")
        cancel = page.get_by_role("button", name="Cancel")
        expect(cancel).to_be_enabled()
        cancel.click()
        expect(page.locator("#pg-status")).to_have_text(re.compile(r"^cancelled · \d+ epochs"))
        expect(cancel).to_be_disabled()
        job_id = re.search(r"job=(job_\w+)", page.url).group(1)  # type: ignore[union-attr]
        job = api_get(f"{browser.base_url}/v1/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["progress"]["epoch"] < 100_000
        # The cancelled job keeps a model (the best weights), and the page shows its boundary.
        assert job["model_id"]
        expect(caption).to_contain_text("of the trained model")
        watched.assert_clean()


def test_compare_shows_a_line_near_chance_and_an_mlp_above_95_percent(browser: Browser) -> None:
    with browser.page() as (page, watched):
        page.goto(f"{browser.base_url}/#/compare")
        expect(page.locator("#cmp-linear-plot .points .main-svg").first).to_be_visible()
        page.get_by_role("button", name="Train both").click()
        why = page.locator("#cmp-why")
        expect(why).to_have_text(re.compile(r"^Held out"), timeout=JOB_MS)
        found = re.search(r"linear ([\d.]+)%, MLP ([\d.]+)%", why.inner_text())
        assert found, why.inner_text()
        linear, mlp = float(found.group(1)) / 100, float(found.group(2)) / 100
        assert 0.35 <= linear <= 0.65, linear
        assert mlp > 0.95, mlp
        assert "no straight line" in why.inner_text()
        # The figures are the held-out accuracies the API reports for the two jobs.
        params = dict(p.split("=") for p in page.url.split("?", 1)[1].split("&"))
        for key, shown in (("linear", linear), ("mlp", mlp)):
            job = api_get(f"{browser.base_url}/v1/jobs/{params[key]}").json()
            assert round(job["metrics"]["val_accuracy"], 3) == pytest.approx(shown, abs=5e-4)
        assert len(plot_data(page, "#cmp-linear-plot .shading")) == 2  # heatmap and P = 0.5 contour
        watched.assert_clean()


def test_a_shared_url_reproduces_the_settings_and_the_run(browser: Browser) -> None:
    settings = {
        "kind": "moons", "n": 300, "noise": 0.2, "dseed": 5, "model": "mlp", "layers": "12,6", "act": "relu",
        "opt": "momentum", "lr": 0.05, "momentum": 0.8, "epochs": 40, "batch": 16, "val": 0.3, "seed": 9,
    }  # fmt: skip
    with browser.page() as (page, watched):
        page.goto(playground_url(browser.base_url, **settings))
        expect(page.locator("#pg-boundary-caption")).to_contain_text("300 samples")
        page.locator("#pg-epochs").fill("30")
        page.locator("#pg-epochs").dispatch_event("change")
        first_job = train(page)
        shared = page.url
        watched.assert_clean()
    with browser.page() as (page, watched):
        page.goto(shared.split("&job=")[0])
        expect(page.locator("#pg-boundary-caption")).to_contain_text("300 samples")
        for key, value in {**settings, "epochs": 30}.items():
            assert page.locator(f"#pg-{key}").input_value() == str(value), key
        second_job = train(page)
        watched.assert_clean()
    jobs = [api_get(f"{browser.base_url}/v1/jobs/{job}").json() for job in (first_job, second_job)]
    assert first_job != second_job
    assert jobs[0]["config"] == jobs[1]["config"]
    assert jobs[0]["metrics"] == jobs[1]["metrics"]  # same seeds: the same run, bit for bit
    models = [api_get(f"{browser.base_url}/v1/models/{job['model_id']}") for job in jobs]
    assert models[0].json()["sha256"] == models[1].json()["sha256"]


def test_jobs_and_models_view_shows_curves_predicts_exports_and_deletes(
    browser: Browser, tmp_path: Path
) -> None:
    with browser.page() as (page, watched):
        page.goto(playground_url(browser.base_url, **XOR, **MLP, epochs=20, seed=1))
        expect(page.locator("#pg-boundary-caption")).to_contain_text("400 samples")
        job_id = train(page)
        page.get_by_role("link", name="Jobs & models").click()
        row = page.locator(f"#jobs-table tr[data-job='{job_id}']")
        expect(row).to_contain_text("succeeded")
        row.get_by_role("button", name=f"Curves of job {job_id}").click()
        expect(page.locator("#job-curves .main-svg").first).to_be_visible()
        assert len(trace(page, "#job-curves", "train loss")["y"]) == 20

        model_id = api_get(f"{browser.base_url}/v1/jobs/{job_id}").json()["model_id"]
        page.get_by_role("button", name=f"Details of model {model_id}").click()
        expect(page.locator("#model-detail caption")).to_have_text("Architecture")
        page.get_by_label(re.compile("Rows of X")).fill("[[0.5, 0.5], [0.5, -0.5]]")
        page.get_by_role("button", name="Predict").click()
        expect(page.locator("#predict-result tbody tr")).to_have_count(2)
        expected = api_post(
            f"{browser.base_url}/v1/models/{model_id}/predict", json={"X": [[0.5, 0.5], [0.5, -0.5]]}
        ).json()
        cells = page.locator("#predict-result tbody tr td:nth-child(2)").all_inner_texts()
        assert cells == [str(p) for p in expected["predictions"]]

        with page.expect_download() as download:
            page.get_by_role("button", name="Export JSON").click()
        saved = tmp_path / "model.json"
        download.value.save_as(saved)
        exported = json.loads(saved.read_text())
        assert exported["format"] == "descent.model/v1" and exported["architecture"]["type"] == "mlp"

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete model").click()
        expect(page.locator(f"#models-table tr[data-model='{model_id}']")).to_have_count(0)
        assert api_get(f"{browser.base_url}/v1/models/{model_id}").status_code == 404
        watched.assert_clean()


def test_errors_show_the_problem_detail(browser: Browser) -> None:
    with browser.page() as (page, watched):
        page.goto(playground_url(browser.base_url, **XOR, **{**MLP, "layers": "8,0"}, epochs=10, seed=1))
        expect(page.locator("#pg-boundary-caption")).to_contain_text("400 samples")
        page.get_by_role("button", name="Train", exact=True).click()
        alert = page.get_by_role("alert").first
        expect(alert).to_contain_text("422")
        expect(alert).to_contain_text("hidden_layers")
        # The browser logs the 422 answer itself as a failed resource load: that one is expected.
        assert all("422" in message for message in watched.console_errors), watched.console_errors
        watched.console_errors.clear()
        watched.assert_clean()


def test_an_api_key_is_kept_for_the_tab_and_sent_as_a_bearer_token(browser: Browser) -> None:
    with browser.page() as (page, watched):
        page.goto(f"{browser.base_url}/#/jobs")
        page.get_by_text("API key", exact=True).click()
        page.get_by_label(re.compile("API key, sent as")).fill("dk_test_123")
        page.get_by_role("button", name="Use this key").click()
        expect(page.locator("#api-key-state")).to_have_text("A key is set for this tab.")
        page.get_by_role("button", name="Refresh").click()
        expect(page.locator("#jobs-table tbody tr").first).to_be_visible()
        page.wait_for_timeout(500)
        sent = [r.headers.get("authorization") for r in watched.requests if "/v1/" in r.url]
        assert sent and sent[-1] == "Bearer dk_test_123", sent
        assert page.evaluate("sessionStorage.getItem('descent.apiKey')") == "dk_test_123"
        watched.assert_clean()


def test_the_lab_fits_a_phone_screen(browser: Browser) -> None:
    with browser.page(width=390, height=844) as (page, watched):
        for view in ("playground", "compare", "activations", "jobs"):
            page.goto(f"{browser.base_url}/#/{view}")
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (view, width)
        watched.assert_clean()


def test_docs_list_the_operations_and_redoc_renders_with_only_the_service_reachable(browser: Browser) -> None:
    operations = [
        op["summary"]
        for item in api_get(f"{browser.base_url}/openapi.json").json()["paths"].values()
        for op in item.values()
    ]
    with browser.page() as (page, watched):
        page.goto(f"{browser.base_url}/docs")
        expect(page.locator(".opblock").first).to_be_visible()
        expect(page.locator(".opblock")).to_have_count(len(operations))
        expect(
            page.locator(".opblock-summary-path", has_text="/v1/jobs/{job_id}/snapshot").first
        ).to_be_visible()
        watched.assert_clean()
    with browser.page() as (page, watched):
        page.goto(f"{browser.base_url}/redoc")
        expect(page.locator("h2", has_text="Create a training job").first).to_be_visible()
        expect(page.locator("h1").first).to_contain_text("Descent")
        watched.assert_clean()
