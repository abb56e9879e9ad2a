"""What a person sees in Airflow's UI, in a real browser: Debian's Chromium, driven through Selenium by
Debian's chromium-driver, logged in on the simple auth manager's login page as a person would.

``make test-deploy*`` install both (``apt-get install chromium chromium-driver``). Where they cannot
be installed the tiers say so and skip what needs a browser, nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

from deployment import Failure, step

from airflow_provider_seedream.plugins.paths import RUN_TAB_ROUTE

CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
WAIT_SECONDS = 60


def missing() -> str | None:
    """Why no browser can run here, or None."""
    if not any(shutil.which(name) for name in CHROMIUM):
        return "chromium is not installed (apt-get install chromium)"
    if not shutil.which(DRIVER):
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


class Browser:
    """One headless Chromium window; screenshots go to ``screenshots``."""

    def __init__(self, base_url: str, screenshots: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = next(path for name in CHROMIUM if (path := shutil.which(name)))
        # --no-sandbox: the tiers run as root, where Chromium's sandbox refuses to start.
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            options.add_argument(argument)
        options.add_argument("--window-size=1400,1000")
        self.driver = webdriver.Chrome(options=options, service=Service(shutil.which(DRIVER)))
        self.driver.set_page_load_timeout(WAIT_SECONDS)
        self.base_url = base_url
        self.screenshots = screenshots
        screenshots.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.quit()

    def _wait(self, condition: Any, what: str) -> Any:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, WAIT_SECONDS).until(condition)
        except TimeoutException:
            shot = self.screenshot("timeout")
            raise Failure(
                f"the browser waited {WAIT_SECONDS} s for {what} (at {self.driver.current_url}; {shot})"
            ) from None

    def log_in(self, username: str, password: str) -> None:
        """Through the login page the UI sends an anonymous visitor to."""
        from selenium.webdriver.common.by import By

        self.driver.get(self.base_url + "/")
        self._wait(lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=password]"), "the login page")
        if "/auth/login" not in self.driver.current_url:
            raise Failure(f"an anonymous visitor was not sent to the login page: {self.driver.current_url}")
        self.driver.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys(username)
        self.driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self._wait(lambda d: "/auth/login" not in d.current_url, "the login to finish")

    def screenshot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def loaded_images(self, selector: str, expected: int, what: str) -> list[dict[str, Any]]:
        """Wait until ``expected`` images matching ``selector`` have loaded (``naturalWidth > 0``), in
        the page or inside the frame an external view puts it in; their ``src`` and natural size."""
        from selenium.webdriver.common.by import By

        script = (
            "return [...document.querySelectorAll(arguments[0])].map(image => ({src: image.currentSrc, "
            "complete: image.complete, width: image.naturalWidth, height: image.naturalHeight}))"
        )

        def images(driver: Any) -> list[dict[str, Any]] | None:
            for frame in [None, *driver.find_elements(By.TAG_NAME, "iframe")]:
                driver.switch_to.default_content()
                if frame is not None:
                    driver.switch_to.frame(frame)
                found = driver.execute_script(script, selector)
                if len(found) == expected and all(
                    image["complete"] and image["width"] > 0 for image in found
                ):
                    return found
            driver.switch_to.default_content()
            return None

        found = self._wait(images, f"{expected} loaded {what}")
        self.driver.switch_to.default_content()
        return found

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)


def run_tab(dag_id: str, run_id: str) -> str:
    return f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}/plugin/{RUN_TAB_ROUTE}"


def required_actions(dag_id: str, run_id: str, task_id: str) -> str:
    return f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id)}/required_actions"


def look_at(
    deployment: Any, path: str, selector: str, expected: int, what: str, name: str
) -> tuple[list[dict[str, Any]], Path] | None:
    """Log in as ``admin``, open ``path``, wait until ``expected`` images matching ``selector`` have
    loaded, and take a screenshot: the images and the screenshot, or None (said) without a browser."""
    if reason := missing():
        step(f"SKIPPED the browser check of {what}: {reason}")
        return None
    with Browser(deployment.api_root, deployment.screenshots) as browser:
        browser.log_in("admin", deployment.password)
        browser.open(path)
        found = browser.loaded_images(selector, expected, what)
        return found, browser.screenshot(name)


def look_at_gallery(deployment: Any, dag_id: str, run_id: str, expected: int, name: str) -> None:
    """The run's "Images" tab shows every thumbnail, and nothing but thumbnails."""
    seen = look_at(
        deployment, run_tab(dag_id, run_id), "img", expected, "thumbnails in the run's Images tab", name
    )
    if seen is None:
        return
    found, shot = seen
    if not all("/seedream/thumbnails/" in image["src"] for image in found):
        raise Failure(f"the run's Images tab shows other images: {[image['src'] for image in found]}")
    sizes = sorted({(image["width"], image["height"]) for image in found})
    step(f"{dag_id}: the run's Images tab, logged in, shows {len(found)} thumbnails (sizes {sizes}): {shot}")


def look_at_review(deployment: Any, dag_id: str, run_id: str, expected: int, name: str) -> None:
    """The review task's Required Actions page shows every candidate's picture."""
    seen = look_at(
        deployment,
        required_actions(dag_id, run_id, "review"),
        "img[src*='/seedream/thumbnails/']",
        expected,
        "candidate pictures on the Required Actions page",
        name,
    )
    if seen is not None:
        found, shot = seen
        step(f"{dag_id} {run_id}: the Required Actions page shows {len(found)} candidates' pictures: {shot}")
