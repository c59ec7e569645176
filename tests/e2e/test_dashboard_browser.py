"""The dashboard served for real and opened in headless Chromium: the Compare page's charts,
and an admin promoting the leader there.

Runs the API on the committed attrition models (real runtimes, so the screenshot shows the real
comparison), ``streamlit run dashboard/app.py`` as ``make run`` does, and Debian's chromium
through chromium-driver (``apt-get install chromium chromium-driver``; no downloaded browser).
The screenshot is saved as ``artifacts/dashboard-compare.png``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
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

ARTIFACTS = ROOT / "artifacts"
SCREENSHOT = ARTIFACTS / "dashboard-compare.png"
ATTRITION = ("attrition-logreg", "attrition-gbm")
# Quality bars, ROC, latency, two confusion matrices, per class, agreement, who-is-right.
COMPARE_CHARTS = 8
PAGE_TIMEOUT = 120  # first evaluations of both models included
SETTLE_TIMEOUT = 30  # drawn charts that still change after this are a bug, not slowness
WINDOW = (1600, 3600)  # tall enough for the whole Compare page in one screenshot


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("browser-api")
    store = workdir / "models"
    for name in ATTRITION:
        shutil.copytree(ROOT / "models" / name, store / name)
    shutil.copytree(
        ROOT / "models" / "_evaluation" / "employee-attrition",
        store / "_evaluation" / "employee-attrition",
    )
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


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
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


def test_compare_page_renders_its_charts(dashboard: str, browser: webdriver.Chrome) -> None:
    browser.get(f"{dashboard}/compare")

    WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.5).until(
        lambda driver: _rendered_charts(driver) >= COMPARE_CHARTS
    )
    # Plotly's transitions end before the screenshot: the charts' markup stops changing.
    WebDriverWait(browser, SETTLE_TIMEOUT, poll_frequency=0.5).until(_ChartsSettled())
    ARTIFACTS.mkdir(exist_ok=True)
    # artifacts/ outlives the run: a screenshot left by an earlier one must not pass for this.
    SCREENSHOT.unlink(missing_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))

    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Compare models" in page
    assert "leads on roc_auc" in page
    assert "ROC curves" in page and "Confusion matrix: attrition-gbm@1" in page
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
    assert SCREENSHOT.stat().st_size > 10_000


def _button(driver: webdriver.Chrome, label: str) -> Any:
    return driver.find_element(By.XPATH, f"//button[.//p[normalize-space()='{label}']]")


def test_an_admin_promotes_the_leader_from_compare(
    api: LiveServer, dashboard: str, browser: webdriver.Chrome
) -> None:
    promote = "Make attrition-logreg@1 the champion of attrition-logreg"
    browser.get(f"{dashboard}/compare")
    wait = WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.5)
    username = wait.until(
        lambda driver: driver.find_element(By.CSS_SELECTOR, "input[aria-label='Username']")
    )

    username.send_keys(ADMIN["username"])
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='Password']").send_keys(
        ADMIN["password"]
    )
    _button(browser, "Log in").click()
    wait.until(lambda driver: _button(driver, promote)).click()

    wait.until(lambda driver: "serves version 1 on every worker" in driver.page_source)
    aliases = httpx.get(f"{api.url}/models/attrition-logreg").json()["aliases"]
    assert aliases == {"champion": "1"}
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
