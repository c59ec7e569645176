"""The dashboard served for real and opened in headless Chromium: every page, in one browser
session, with a screenshot of each, and an admin promoting the leader on Compare.

Runs the API on the committed models (real runtimes, so the screenshots show the real
figures), ``streamlit run dashboard/app.py`` as ``make run`` does, and Debian's chromium
through chromium-driver (``apt-get install chromium chromium-driver``; no downloaded browser).
The tests run in file order: the first logs in, and every later page is a fresh load (a new
Streamlit session) that the login survives. Screenshots go to ``$ARTIFACTS_DIR`` or
``artifacts/screenshots/``, which CI uploads.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ADMIN
from tests.live_server import ROOT, LiveServer, answers, free_port, live_api, running_process

# Debian's chromium here and in .ci/run; the runner's Chrome on GitHub's Ubuntu images.
BROWSER = shutil.which("chromium") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver") or shutil.which(
    "chromedriver", path=os.environ.get("CHROMEWEBDRIVER", "")
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (BROWSER and DRIVER),
        reason="needs Debian's chromium and chromium-driver "
        "(apt-get install -y chromium chromium-driver)",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (requirements-dev)")
from selenium.webdriver.common.by import By  # noqa: E402 (after the skip above)
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SCREENSHOTS = Path(os.environ.get("ARTIFACTS_DIR") or ROOT / "artifacts" / "screenshots")
ATTRITION = ("attrition-logreg", "attrition-gbm")
HELDOUT = "_evaluation/employee-attrition/heldout.csv (294 samples)"
# Quality bars, ROC, latency, two confusion matrices, per class, agreement, who-is-right.
COMPARE_CHARTS = 8
PAGE_TIMEOUT = 120  # first evaluations of both models included
SETTLE_TIMEOUT = 30  # drawn charts that still change after this are a bug, not slowness
WINDOW = (1400, 3600)  # tall enough for the whole Compare page in one screenshot


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The committed models, having answered two predictions (the Overview's traffic)."""
    workdir = tmp_path_factory.mktemp("browser-api")
    store = workdir / "models"
    shutil.copytree(ROOT / "models", store)
    env = {
        "ENV": "dev",
        "DATABASE_URL": f"sqlite:///{workdir / 'traces.db'}",
        "MODELS_DIR": str(store),
        # One OpenMP thread: the boosted model's per-row calls otherwise spin-wait for
        # seconds on a busy 2-core runner while it is evaluated row by row.
        "OMP_NUM_THREADS": "1",
        "ADMIN_USERNAME": ADMIN["username"],
        "ADMIN_PASSWORD": ADMIN["password"],
    }
    with live_api(workdir, env) as server:
        manifest = httpx.get(f"{server.url}/models/attrition-logreg").json()["manifest"]
        for model in ATTRITION:
            answer = httpx.post(
                f"{server.url}/predict/{model}", json={"features": manifest["input"]["example"]}
            )
            assert answer.is_success, answer.text
        yield server


@pytest.fixture(scope="module")
def dashboard(api: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on a free port, pointed at the live API."""
    workdir = tmp_path_factory.mktemp("browser-dashboard")
    port = free_port()
    streamlit = Path(sys.executable).with_name("streamlit")
    command = [
        str(streamlit),
        "run",
        str(ROOT / "dashboard" / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "API_URL": api.url}
    url = f"http://127.0.0.1:{port}"
    with running_process(
        command,
        cwd=workdir,
        env=env,
        log_path=workdir / "dashboard.log",
        is_up=lambda: answers(f"{url}/_stcore/health", "ok"),
    ):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """One browser for every page: its cookies carry the login from one test to the next."""
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER or ""
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=DRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def _rendered_charts(driver: webdriver.Chrome) -> int:
    """Plotly charts whose SVG is drawn."""
    return len(
        driver.find_elements(
            By.CSS_SELECTOR, "[data-testid='stPlotlyChart'] .js-plotly-plot .main-svg"
        )
    )


class _ChartsSettled:
    """True once every chart's markup is the same at two polls in a row: plotly has finished
    drawing and animating, so a screenshot shows the charts as they stay."""

    def __init__(self) -> None:
        self.previous: str | None = None

    def __call__(self, driver: webdriver.Chrome) -> bool:
        markup = driver.execute_script(
            "return Array.from(document.querySelectorAll("
            "\"[data-testid='stPlotlyChart'] .js-plotly-plot\"))"
            ".map(chart => chart.innerHTML).join('\\n');"
        )
        settled = markup == self.previous
        self.previous = markup
        return settled


# Each chart's title, toolbar (modebar), legend and plot area, as drawn on the page.
_CHART_BOXES = """
const box = (chart, selector) => {
  const element = chart.querySelector(selector);
  if (!element) return null;
  const r = element.getBoundingClientRect();
  return r.width && r.height ? {top: r.top, bottom: r.bottom, width: r.width} : null;
};
return Array.from(document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot"))
  .map(chart => ({
    title: (chart.querySelector('.gtitle') || {}).textContent || '',
    titleBox: box(chart, '.gtitle'), toolbar: box(chart, '.modebar'),
    legend: box(chart, '.legend'), plot: box(chart, '.nsewdrag'),
  }));
"""
# A metric whose value is wider than its box, which Streamlit cuts with an ellipsis.
_CUT_METRICS = """
return Array.from(document.querySelectorAll("[data-testid='stMetricValue']"))
  .filter(metric => [metric, ...metric.querySelectorAll('*')]
    .some(element => element.scrollWidth > element.clientWidth + 1))
  .map(metric => metric.textContent);
"""


def _open(browser: webdriver.Chrome, url: str, ready: Callable[[str], bool]) -> None:
    browser.get(url)
    WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.5).until(
        lambda driver: ready(driver.find_element(By.TAG_NAME, "body").text)
    )


def _check_and_keep(browser: webdriver.Chrome, name: str) -> list[dict[str, Any]]:
    """The page's charts once drawn, after the checks every page passes; its screenshot kept."""
    WebDriverWait(browser, SETTLE_TIMEOUT, poll_frequency=0.5).until(_ChartsSettled())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / f"{name}.png"
    # The folder outlives the run: a screenshot left by an earlier one must not pass for this.
    screenshot.unlink(missing_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
    assert browser.execute_script(_CUT_METRICS) == []
    charts: list[dict[str, Any]] = browser.execute_script(_CHART_BOXES)
    for chart in charts:
        if chart["toolbar"] and chart["titleBox"]:  # the title starts below the toolbar
            assert chart["titleBox"]["top"] >= chart["toolbar"]["bottom"] - 1, chart
    return charts


def _body(browser: webdriver.Chrome) -> str:
    text: str = browser.find_element(By.TAG_NAME, "body").text
    return text


def _button(driver: webdriver.Chrome, label: str) -> Any:
    return driver.find_element(By.XPATH, f"//button[.//p[normalize-space()='{label}']]")


def _log_in(browser: webdriver.Chrome) -> None:
    wait = WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.5)
    username = wait.until(
        lambda driver: driver.find_element(By.CSS_SELECTOR, "input[aria-label='Username']")
    )
    username.send_keys(ADMIN["username"])
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='Password']").send_keys(
        ADMIN["password"]
    )
    _button(browser, "Log in").click()


def test_overview_shows_the_traffic_after_a_login_that_a_reload_keeps(
    dashboard: str, browser: webdriver.Chrome
) -> None:
    _open(browser, dashboard, lambda text: "log in" in text)
    _log_in(browser)
    wait = WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.5)
    wait.until(lambda driver: "Requests, last hour" in _body(driver))

    browser.refresh()  # a new Streamlit session: the login comes back from the cookie

    wait.until(lambda driver: "Requests, last hour" in _body(driver))
    assert "Logged in as admin" in _body(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "input[aria-label='Password']")
    assert "futurisys_api_token" not in browser.current_url
    browser.find_element(By.XPATH, "//label[.//p[normalize-space()='week']]").click()
    wait.until(lambda driver: "Requests, last week" in _body(driver))
    wait.until(lambda driver: _rendered_charts(driver) >= 3)
    # The two predictions the API answered, counted by the database.
    assert "Requests, last week\n2" in _body(browser)
    _check_and_keep(browser, "overview")


def test_models_page_names_the_data_set_of_each_figure(
    dashboard: str, browser: webdriver.Chrome
) -> None:
    _open(browser, f"{dashboard}/models", lambda text: "History" in text)
    WebDriverWait(browser, PAGE_TIMEOUT).until(lambda driver: _rendered_charts(driver) >= 2)

    titles = [chart["title"] for chart in _check_and_keep(browser, "models")]
    assert f"employee-attrition: metrics on {HELDOUT}" in titles
    # Not the figures of the held-out pitches: instrument-cnn's headline is its pooled
    # leave-one-source-out set, instrument-mfcc's the other soundfont: two sets, so named.
    assert "instrument-recognition: metrics on different data sets (see the table)" in titles


def test_compare_page_draws_its_charts_with_room_to_read_them(
    dashboard: str, browser: webdriver.Chrome
) -> None:
    _open(browser, f"{dashboard}/compare", lambda text: "Compare models" in text)
    WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.5).until(
        lambda driver: _rendered_charts(driver) >= COMPARE_CHARTS
    )

    charts = _check_and_keep(browser, "compare")
    page = _body(browser)
    assert "leads on roc_auc" in page and f"on {HELDOUT})" in page
    assert f"Quality on {HELDOUT} (higher is better)" in [chart["title"] for chart in charts]
    roc = next(chart for chart in charts if chart["title"].startswith("ROC curves"))
    assert roc["legend"]["top"] >= roc["plot"]["bottom"], roc  # below the plot, not beside
    assert roc["plot"]["width"] > 300, roc
    assert "Confusion matrix: attrition-gbm@1" in [chart["title"] for chart in charts]


def test_an_admin_promotes_the_leader_from_compare(
    api: LiveServer, dashboard: str, browser: webdriver.Chrome
) -> None:
    promote = "Make attrition-logreg@1 the champion of attrition-logreg"
    # Still logged in from the Overview: every page load is a new session.
    _open(browser, f"{dashboard}/compare", lambda text: promote in text)

    _button(browser, promote).click()

    WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.5).until(
        lambda driver: "serves version 1 on every worker" in driver.page_source
    )
    aliases = httpx.get(f"{api.url}/models/attrition-logreg").json()["aliases"]
    assert aliases == {"champion": "1"}
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")


def test_predictions_page_shows_the_history(dashboard: str, browser: webdriver.Chrome) -> None:
    _open(browser, f"{dashboard}/predictions", lambda text: "Matching requests" in text)
    WebDriverWait(browser, PAGE_TIMEOUT).until(lambda driver: _rendered_charts(driver) >= 4)

    _check_and_keep(browser, "predictions")


def test_drift_page_shows_the_window_of_the_served_version(
    dashboard: str, browser: webdriver.Chrome
) -> None:
    _open(browser, f"{dashboard}/drift", lambda text: "Rows in the window" in text)

    _check_and_keep(browser, "drift")


def test_try_a_model_page_predicts(dashboard: str, browser: webdriver.Chrome) -> None:
    _open(browser, f"{dashboard}/try_model", lambda text: "Predict" in text)

    _button(browser, "Predict").click()

    WebDriverWait(browser, PAGE_TIMEOUT).until(lambda driver: _rendered_charts(driver) >= 1)
    assert "from attrition-logreg@1" in _body(browser)
    _check_and_keep(browser, "try-a-model")
