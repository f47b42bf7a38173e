"""Headless Chromium for the page's tests, and the README's screenshot of the page (deploy/preview.png).

The browser is Debian's `chromium` driven by its `chromium-driver`, both named explicitly, so Selenium Manager is
never asked to find (or download) anything. As a script it builds a catalogue of the committed real photos (one
item each) with `edge-classifier catalogue build`, starts mosquitto and `edge-classifier run` on the looped sample
video, opens the page, classifies one bundled example (its similar items listed) and saves the screenshot:

    .venv/bin/python tests/screenshot_page.py [deploy/preview.png]
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

# tests/ is on sys.path as the script's folder
from helpers import ROOT, SAMPLE_VIDEO, Broker, Daemon, free_port, run_cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30.0
SCREENSHOT = ROOT / "deploy" / "preview.png"
SCREENSHOT_MAX_BYTES = 140 * 1024  # the README's image stays under 150 KB
REAL_PHOTOS = ROOT / "tests" / "data" / "real-photos"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    return f"{' and '.join(missing)} missing (apt install chromium chromium-driver)" if missing else None


def chrome(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-first-run", "--disable-extensions", "--hide-scrollbars", f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for driver.get_log("browser")
    # A driver path in the Service means Selenium Manager is skipped (it would look for, or fetch, a driver).
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def set_viewport(driver: webdriver.Chrome, width: int, height: int, phone: bool = False) -> None:
    """Exactly this viewport in CSS pixels (the window's own size leaves less); a phone's has touch and 3x pixels."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 3 if phone else 1, "mobile": phone}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": phone})


def wait(driver: webdriver.Chrome, timeout: float = WAIT_S) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def text_of(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def live_label_shown(driver: webdriver.Chrome) -> str | bool:
    text = text_of(driver, "live-label")
    return text if text and text != "–" else False


def preview_loaded(driver: webdriver.Chrome) -> bool:
    script = "const i = document.getElementById('preview'); return i.complete && i.naturalWidth > 0;"
    return bool(driver.execute_script(script))


def predict_finished(driver: webdriver.Chrome) -> str | bool:
    state = driver.find_element(By.ID, "classify").get_attribute("data-state")
    return state if state in ("done", "error") else False


def start_daemon(broker_port: int, port: int, *extra: str) -> Daemon:
    return Daemon(
        "--source", str(SAMPLE_VIDEO), "--device-id", "browser", "--set", "source.loop=true",
        "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={broker_port}",
        "--set", "http.enabled=true", "--set", f"http.port={port}", *extra,
    )  # fmt: skip


def stop_daemon(daemon: Daemon) -> None:
    if daemon.poll() is None:
        try:
            daemon.stop(signal.SIGTERM, 15)
        except Exception:
            daemon.stop(signal.SIGKILL)


def small_png(png: bytes, limit: int = SCREENSHOT_MAX_BYTES) -> bytes:
    """The screenshot in at most `limit` bytes: palette-quantised with Pillow where it is installed."""
    try:
        from PIL import Image
    except ImportError:
        return png
    image: Any = Image.open(io.BytesIO(png)).convert("RGB")
    for colours in (256, 128, 64):
        out = io.BytesIO()
        image.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            out, "PNG", optimize=True
        )
        if out.tell() <= limit:
            break
    return out.getvalue()


def build_catalogue(workdir: Path) -> Path:
    """A state directory whose catalogue has every committed real photo as an item (`<class> <n>`, a made-up price)."""
    items = workdir / "items"
    for kind in sorted(p for p in REAL_PHOTOS.iterdir() if p.is_dir()):
        for n, photo in enumerate(sorted(kind.glob("*.jpg")), 1):
            folder = items / f"{kind.name}-{n:02d}"
            folder.mkdir(parents=True)
            shutil.copy(photo, folder / photo.name)
            item = {"id": folder.name, "name": f"{kind.name.capitalize()} {n}", "price": 9.9 + 5 * (n % 8)}
            (folder / "item.json").write_text(json.dumps(item))
    state = workdir / "state"
    out = run_cli("catalogue", "build", str(items), "--set", f"state_dir={state}", "--set", "model.selftest=false")
    if out.returncode != 0:
        raise RuntimeError(f"catalogue build failed: {out.stderr.strip()}")
    return state


def take_screenshot(url: str, target: Path) -> int:
    driver = chrome()
    try:
        set_viewport(driver, 1100, 920)
        driver.get(url)
        wait(driver).until(live_label_shown)
        wait(driver).until(preview_loaded)
        wait(driver).until(lambda d: float(text_of(d, "fps")) > 0)
        driver.find_element(By.CSS_SELECTOR, '#examples button[data-src$="/shoes.jpg"]').click()
        assert "done" == wait(driver).until(predict_finished), text_of(driver, "predict-error")
        wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#live-topk li")) > 0)
        loaded = "return [...document.querySelectorAll('.similar img')].every((i) => i.complete && i.naturalWidth > 0)"
        wait(driver).until(lambda d: d.execute_script(loaded))
        wait(driver).until(lambda d: d.execute_script("window.scrollTo(0, 0); return window.scrollY === 0"))
        png = small_png(driver.get_screenshot_as_png())
    finally:
        driver.quit()
    target.write_bytes(png)
    return len(png)


def main(argv: list[str]) -> int:
    if reason := browser_missing():
        print(reason, file=sys.stderr)
        return 2
    target = Path(argv[0]) if argv else SCREENSHOT
    with tempfile.TemporaryDirectory() as workdir:
        state = build_catalogue(Path(workdir))
        broker = Broker(Path(workdir)).start()
        port = free_port()
        daemon = start_daemon(broker.port, port, "--set", f"state_dir={state}")
        try:
            daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
            size = take_screenshot(f"http://127.0.0.1:{port}/", target)
        finally:
            stop_daemon(daemon)
            broker.stop()
    print(f"{target}: {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
