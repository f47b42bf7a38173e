"""The page at / in a real browser: Debian's headless Chromium driven by selenium, against the daemon as a subprocess.

The daemon classifies the looped sample video with its HTTP interface on a free port and a real mosquitto; the
page must show the live preview changing and the label, classify an uploaded photo as `edge-classifier classify`
does, show the server's error for a file that is no image, and keep its controls on a phone's screen.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from screenshot_page import (
    WAIT_S,
    browser_missing,
    chrome,
    live_label_shown,
    predict_finished,
    preview_loaded,
    set_viewport,
    start_daemon,
    stop_daemon,
    text_of,
    wait,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from helpers import ROOT, Broker, Daemon, free_port, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

PHOTO = ROOT / "tests" / "data" / "real-photos" / "skirt" / "4d5d201a-11cb-4e5c-b291-9b8c833c4ddf.jpg"


@dataclass
class Page:
    daemon: Daemon
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Iterator[Page]:
    broker = Broker(tmp_path_factory.mktemp("browser-broker")).start()
    port = free_port()
    daemon = start_daemon(broker.port, port)
    try:
        daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        yield Page(daemon, port)
    finally:
        stop_daemon(daemon)
        broker.stop()
    assert "Traceback" not in daemon.log, daemon.log


@pytest.fixture
def driver() -> Iterator[WebDriver]:
    browser = chrome()
    try:
        yield browser
    finally:
        browser.quit()


def predict_error(port: int, filename: str, data: bytes) -> tuple[int, str]:
    """What /api/predict answers to this file sent as the page sends it (multipart field `image`)."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        connection.request("POST", "/api/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())["error"]
    finally:
        connection.close()


def page_policy(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return str(response.getheader("Content-Security-Policy"))
    finally:
        connection.close()


def latest_label(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        connection.request("GET", "/api/latest")
        return str(json.loads(connection.getresponse().read())["label"])
    finally:
        connection.close()


def test_page_shows_the_live_preview_changing_and_the_label(page, driver):
    driver.get(page.url)
    wait(driver).until(live_label_shown)
    wait(driver).until(preview_loaded)
    preview = driver.find_element(By.ID, "preview")
    first = preview.screenshot_as_png
    # The video and the overlay's figures move on: the <img> shows another frame without a reload.
    wait(driver).until(lambda d: preview.screenshot_as_png != first)
    # The label shown is the daemon's stable label (polled ~2/s; the video changes garments every few seconds).
    wait(driver).until(lambda d: text_of(d, "live-label") == latest_label(page.port))
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#live-topk li")) > 0)
    # The figures update without a reload: the frame counter moves on.
    frames = int(text_of(driver, "frames"))
    wait(driver).until(lambda d: int(text_of(d, "frames")) > frames)
    # Nothing went wrong in the page: no script error, no request the Content-Security-Policy blocked.
    problems = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert (True, True, "running", "", [], True) == (
        (preview.get_attribute("src") or "").endswith("/stream.mjpg"), frames > 0,
        text_of(driver, "camera"), text_of(driver, "live-error"), problems,
        page_policy(page.port).startswith("default-src 'self'; img-src 'self' blob: data:"),
    )  # fmt: skip


def test_uploaded_photo_gets_the_label_classify_gives(page, driver):
    out = run_cli("classify", "--json", str(PHOTO))
    assert 0 == out.returncode, out.stderr
    expected = json.loads(out.stdout.splitlines()[0])["label"]
    driver.get(page.url)
    driver.find_element(By.ID, "file-input").send_keys(str(PHOTO))
    state = wait(driver).until(predict_finished)
    bars = driver.find_elements(By.CSS_SELECTOR, "#answer-topk li .name")
    timings = driver.find_elements(By.CSS_SELECTOR, "#answer-timings dt")
    assert ("done", expected, expected, "", True) == (
        state, text_of(driver, "answer-label"), bars[0].text, text_of(driver, "predict-error"),
        {"decode", "inference", "total"} <= {t.text for t in timings},
    )  # fmt: skip


def test_bundled_example_is_classified_with_one_click(page, driver):
    driver.get(page.url)
    driver.find_element(By.CSS_SELECTOR, '#examples button[data-src$="/shoes.jpg"]').click()
    assert ("done", "Shoes") == (wait(driver).until(predict_finished), text_of(driver, "answer-label"))


def test_a_file_that_is_no_image_shows_the_servers_error(page, driver, tmp_path: Path):
    fake = tmp_path / "notes.jpg"
    fake.write_bytes(b"these are my shopping notes, not a photo\n" * 20)
    status, message = predict_error(page.port, fake.name, fake.read_bytes())
    driver.get(page.url)
    driver.find_element(By.ID, "file-input").send_keys(str(fake))
    state = wait(driver).until(predict_finished)
    assert (True, "error", f"{message} (HTTP {status})", False) == (
        400 <= status < 500, state, text_of(driver, "predict-error"),
        driver.find_element(By.ID, "answer").is_displayed(),
    )  # fmt: skip


def taught_on_page(driver: WebDriver) -> list[str]:
    return [row.get_attribute("data-label") for row in driver.find_elements(By.CSS_SELECTOR, "#taught-list li")]


def test_a_class_taught_on_the_page_labels_the_next_photo_until_it_is_forgotten(page, driver):
    """Five shoe photos taught as Sneakers from the page: another shoe photo is Sneakers; forgotten, it is Shoes."""
    shoes = sorted((PHOTO.parent.parent / "shoes").glob("*.jpg"))
    driver.get(page.url)
    wait(driver).until(lambda d: d.find_element(By.ID, "taught-none").is_displayed())
    driver.find_element(By.ID, "teach-label").send_keys("Sneakers")
    driver.find_element(By.ID, "teach-files").send_keys("\n".join(str(photo) for photo in shoes[:5]))
    chosen = text_of(driver, "teach-chosen")
    driver.find_element(By.ID, "teach-submit").click()
    done = wait(driver).until(lambda d: text_of(d, "teach-done").startswith("taught") and text_of(d, "teach-done"))
    listed = taught_on_page(driver)
    driver.find_element(By.ID, "file-input").send_keys(str(shoes[6]))
    taught_label = (wait(driver).until(predict_finished), text_of(driver, "answer-label"))
    driver.find_element(By.CSS_SELECTOR, '#taught-list li[data-label="Sneakers"] button').click()
    wait(driver).until(lambda d: d.find_element(By.ID, "taught-none").is_displayed())
    driver.find_element(By.ID, "file-input").send_keys(str(shoes[7]))
    wait(driver).until(lambda d: text_of(d, "answer-label") != "Sneakers" and predict_finished(d))
    assert (True, "taught Sneakers from 5 photos", ["Sneakers"], ("done", "Sneakers"), "", "Shoes") == (
        chosen.startswith("5 of 8: "), done, listed, taught_label, text_of(driver, "teach-error"),
        text_of(driver, "answer-label"),
    )  # fmt: skip


def test_phone_width_keeps_the_controls_visible(page, driver):
    """390x844 CSS pixels: one column, nothing wider than the screen, every control shown and big enough to tap."""
    set_viewport(driver, 390, 844, phone=True)
    driver.get(page.url)
    wait(driver).until(live_label_shown)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    buttons = [
        driver.find_element(By.CSS_SELECTOR, 'label[for="camera-input"]'),
        driver.find_element(By.CSS_SELECTOR, 'label[for="file-input"]'),
        *driver.find_elements(By.CSS_SELECTOR, "#examples button"),
        driver.find_element(By.CSS_SELECTOR, 'label[for="teach-camera"]'),
        driver.find_element(By.CSS_SELECTOR, 'label[for="teach-files"]'),
        driver.find_element(By.ID, "teach-label"),
        driver.find_element(By.ID, "teach-submit"),
    ]
    shown = [driver.find_element(By.ID, "preview"), driver.find_element(By.ID, "live-label")]
    outside = []
    for element in buttons + shown:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        rect = element.rect
        fits = element.is_displayed() and rect["x"] >= 0 and rect["x"] + rect["width"] <= 390
        if not fits or (element in buttons and rect["height"] < 40):  # a finger needs ~40 CSS px
            outside.append((element.get_attribute("id") or element.text or element.tag_name, rect))
    live = driver.find_element(By.ID, "live").rect
    classify = driver.find_element(By.ID, "classify").rect
    assert (390, [], True, 6) == (
        width, outside, classify["y"] >= live["y"] + live["height"],
        len(driver.find_elements(By.CSS_SELECTOR, "#examples button")),
    )  # fmt: skip
    # Still works there: an example is classified.
    driver.find_element(By.CSS_SELECTOR, '#examples button[data-src$="/hat.jpg"]').click()
    assert "done" == wait(driver).until(predict_finished)


def held_stream(port: int) -> http.client.HTTPResponse | bool:
    """A /stream.mjpg kept open (its slot taken), or False while the daemon refuses it (a slot not yet freed).

    The response holds the socket (http.client hands it over for a body without a length): keep it referenced.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    connection.request("GET", "/stream.mjpg")
    response = connection.getresponse()
    if response.status == 200:
        return response
    response.read()
    connection.close()
    return False


def test_with_every_stream_slot_taken_the_preview_polls_single_frames(page, driver):
    """http.max_streams (2) streams already watched: the page's stream is refused (503) and it shows
    /api/latest.jpg frames instead, still changing."""
    held = [wait(driver).until(lambda d: held_stream(page.port)) for _ in range(2)]
    try:
        driver.get(page.url)
        wait(driver).until(lambda d: (d.find_element(By.ID, "preview").get_attribute("src") or "").startswith("blob:"))
        wait(driver).until(preview_loaded)
        preview = driver.find_element(By.ID, "preview")
        first = preview.get_attribute("src")
        wait(driver).until(lambda d: preview.get_attribute("src") != first and preview_loaded(d))
        assert "" == text_of(driver, "live-error")
    finally:
        for response in held:
            assert isinstance(response, http.client.HTTPResponse)
            response.close()


TOKEN = "browser-token-4b8e1f0a9c3d7265"


def test_with_a_token_the_page_asks_once_and_polls_frames_with_it(broker, tmp_path, driver):
    """http.auth: token: the page asks for the token (a wrong one is refused with the server's words), keeps it in
    sessionStorage, and fetches /api/latest.jpg with it (an <img> cannot send a header); uploads carry it too."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    port = free_port()
    daemon = start_daemon(
        broker.port, port, "--set", "http.auth=token", "--set", f"http.token_file={tmp_path / 'token'}"
    )
    try:
        daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        driver.get(f"http://127.0.0.1:{port}/")
        form = driver.find_element(By.ID, "token-form")
        wait(driver).until(lambda d: form.is_displayed())
        field = driver.find_element(By.ID, "token-input")
        field.send_keys("not-the-token-000000000")
        field.submit()
        refused = wait(driver).until(lambda d: text_of(d, "token-error"))
        field.clear()
        field.send_keys(TOKEN)
        field.submit()
        wait(driver).until(live_label_shown)
        wait(driver).until(preview_loaded)
        preview = driver.find_element(By.ID, "preview")
        first = preview.get_attribute("src")
        wait(driver).until(lambda d: preview.get_attribute("src") != first and preview_loaded(d))
        driver.find_element(By.CSS_SELECTOR, '#examples button[data-src$="/pants.jpg"]').click()
        answer = (wait(driver).until(predict_finished), text_of(driver, "answer-label"))
        driver.refresh()  # asked once: the tab keeps the token
        wait(driver).until(live_label_shown)
        assert ("wrong bearer token (HTTP 401)", True, ("done", "Pants"), False) == (
            refused, (first or "").startswith("blob:"), answer, driver.find_element(By.ID, "token-form").is_displayed(),
        )  # fmt: skip
    finally:
        stop_daemon(daemon)
    assert TOKEN not in daemon.log


# Visual search: a daemon with a catalogue (built with `edge-classifier catalogue build`) and a token.

SEARCH_TOKEN = "browser-search-token-7d2c9e41"
SHOP_URL = "https://shop.example/the-hat"


@dataclass
class Shop:
    daemon: Daemon
    port: int
    items: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Iterator[Shop]:
    """The daemon classifying, in a loop, the photos of catalogue item shoes-1, with http.auth: token."""
    from test_catalogue import make_catalogue, make_item, photos_of

    root = tmp_path_factory.mktemp("browser-shop")
    items = make_catalogue(root / "items")
    make_item(items / "the-hat", "the-hat", photos_of("hat")[-1:], name="The hat", price=24.5, url=SHOP_URL)
    state = root / "state"
    built = run_cli("catalogue", "build", str(items), "--set", f"state_dir={state}", "--set", "model.selftest=false")
    assert 0 == built.returncode, built.stderr
    (root / "token").write_text(SEARCH_TOKEN + "\n")
    broker = Broker(tmp_path_factory.mktemp("browser-shop-broker")).start()
    port = free_port()
    daemon = Daemon(
        "--source", str(items / "shoes-1"), "--device-id", "browser-shop", "--set", "source.loop=true",
        "--set", "source.fps=10", "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={broker.port}",
        "--set", "http.enabled=true", "--set", f"http.port={port}", "--set", "http.auth=token",
        "--set", f"http.token_file={root / 'token'}", "--set", f"state_dir={state}",
    )  # fmt: skip
    try:
        daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        yield Shop(daemon, port, items)
    finally:
        stop_daemon(daemon)
        broker.stop()
    assert "Traceback" not in daemon.log, daemon.log


def open_with_token(driver: WebDriver, url: str) -> None:
    driver.get(url)
    form = driver.find_element(By.ID, "token-form")
    wait(driver).until(lambda d: form.is_displayed())
    driver.get_log("browser")  # drained: the 401 that asked for the token is expected
    field = driver.find_element(By.ID, "token-input")
    field.send_keys(SEARCH_TOKEN)
    field.submit()
    wait(driver).until(live_label_shown)


def similar_items(driver: WebDriver, list_id: str) -> list[dict[str, str]]:
    """The items the list shows: id, text, thumbnail src and whether it has loaded, link, target and rel."""
    script = """return [...document.querySelectorAll('#' + arguments[0] + ' li')].map((li) => {
        const img = li.querySelector('img'), a = li.querySelector('a');
        return {id: li.dataset.id, text: li.innerText.replace(/\\s+/g, ' ').trim(), src: img.getAttribute('src') || '',
                loaded: String(img.complete && img.naturalWidth > 0), href: a ? a.href : '',
                target: a ? a.target : '', rel: a ? a.rel : ''};
    });"""
    return list(driver.execute_script(script, list_id))


def thumbnails_loaded(list_id: str):
    def check(driver: WebDriver) -> list[dict[str, str]] | bool:
        items = similar_items(driver, list_id)
        return items if items and all(item["loaded"] == "true" for item in items) else False

    return check


def thumbnail_status(port: int, item_id: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        connection.request("GET", f"/api/catalogue/thumbnail/{item_id}")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_live_frame_shows_its_similar_catalogue_items(shop, driver):
    """The live frame (a photo of item shoes-1) lists shoes-1 first, its thumbnail fetched with the token."""
    open_with_token(driver, shop.url)
    items = wait(driver).until(thumbnails_loaded("live-similar-list"))
    problems = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert ("shoes-1", "Item shoes-1 11.00 100.0%", True, [], 401, False) == (
        items[0]["id"], items[0]["text"], all(item["src"].startswith("blob:") for item in items), problems,
        thumbnail_status(shop.port, "shoes-1"), driver.find_element(By.ID, "answer-similar").is_displayed(),
    )  # fmt: skip


def test_uploaded_photo_shows_its_item_first_among_similar_items(shop, driver):
    """An uploaded photo of item the-hat is sent to /api/search: the-hat first, with its price and shop link."""
    set_viewport(driver, 390, 844, phone=True)
    open_with_token(driver, shop.url)
    photo = sorted((shop.items / "the-hat").glob("*.jpg"))[0]
    driver.find_element(By.ID, "file-input").send_keys(str(photo))
    state = wait(driver).until(predict_finished)
    items = wait(driver).until(thumbnails_loaded("answer-similar-list"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#answer-similar-list li")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", rows[0])
    one_column = {row.rect["x"] for row in rows}
    assert ("done", "", "the-hat", "The hat 24.50 100.0%", (SHOP_URL, "_blank", "noopener"), True, 1, 390) == (
        state, text_of(driver, "predict-error"), items[0]["id"], items[0]["text"],
        (items[0]["href"], items[0]["target"], items[0]["rel"]), items[0]["src"].startswith("blob:"),
        len(one_column), driver.execute_script("return document.documentElement.scrollWidth"),
    )  # fmt: skip
