"""The page in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) opens the page of a live uvicorn on 127.0.0.1, uploads a shapes image, waits for the
overlay, checks the instance table against the API's answer for the same image, moves the score
slider and saves a screenshot (``$D2_INSTSEG_SCREENSHOT_DIR`` or the test's folder).

.ci/run installs the browser; without it the test is skipped, except under CI (``CI`` set), where
a missing browser is a failure."""

import math
import os
import shutil

import httpx
import pytest

from d2_instseg.serve.app import create_app
from d2_instseg.serve.models import load_specs

from .conftest import LiveServer

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# headless, and nothing that would reach beyond this machine (its network is closed)
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)
if not (CHROMIUM and DRIVER) and not os.environ.get("CI"):
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def test_upload_overlay_table_and_slider_in_chromium(models_yaml, shapes_png, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    data, rgb = shapes_png
    image_path = tmp_path / "shape.png"
    image_path.write_bytes(data)
    shots = os.environ.get("D2_INSTSEG_SCREENSHOT_DIR", str(tmp_path))
    with LiveServer(create_app(load_specs(models_yaml))) as server:
        api = httpx.post(
            f"{server.url}/v1/predict",
            params={"model": "centermask"},
            files={"file": ("shape.png", data)},
            timeout=60,
        ).json()
        browser = _browser()
        try:
            wait = WebDriverWait(browser, 60)
            browser.get(server.url)
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#model option")) == 2)
            browser.find_element(By.ID, "file").send_keys(str(image_path))
            # the overlay is loaded once the answer came and the server drew it
            wait.until(
                lambda b: b.execute_script(
                    "const o = document.getElementById('overlay');"
                    "return o.src.includes('overlay.png') && o.complete && o.naturalWidth > 0;"
                )
            )

            def table():
                rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
                return [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]

            def expected(threshold):
                return [
                    [i["category_name"], f"{i['score']:.3f}", str(i["area"])]
                    for i in api["instances"]
                    if i["score"] >= threshold
                ]

            assert table() == expected(0.5)  # the same image through the API: the same answer
            # down to just below the 5th best score (a briefly trained CenterMask scores low)
            scores = sorted((i["score"] for i in api["instances"]), reverse=True)
            low = math.floor(100 * scores[min(4, len(scores) - 1)]) / 100
            slider = browser.find_element(By.ID, "threshold")
            for _ in range(round(100 * (0.5 - low))):  # one step of 0.01 a key
                slider.send_keys(Keys.ARROW_LEFT)
            wait.until(EC.text_to_be_present_in_element((By.ID, "threshold-value"), f"{low:.2f}"))
            assert table() == expected(low) and len(expected(low)) > len(expected(0.5))
            links = [
                a.get_attribute("href")
                for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")
            ]
            assert len(links) == 3 and all(f"threshold={low:g}" in href for href in links)
            # the slider's release re-draws the overlay at the new threshold (server side)
            wait.until(
                lambda b: b.execute_script(
                    "const o = document.getElementById('overlay');"
                    f"return o.src.includes('threshold={low:g}') && o.complete"
                    " && o.naturalWidth > 0;"
                )
            )
            browser.save_screenshot(os.path.join(shots, "serve_page.png"))
        finally:
            browser.quit()
