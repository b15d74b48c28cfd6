"""The pages a person opens, in a real headless Chromium: the listening page and the `serve` page.

Skips, with the reason, only where Debian's chromium and chromium-driver are not installed
(`.ci/run` installs them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from builders import LiveServer
from trackrank.coldstart.recommend import Recommender
from trackrank.coldstart.service import PAGE, create_app

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (test extras)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.workflow,  # the pages are the finished run's
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
    ),
]

#: Waits for the first player's metadata: [readyState, duration], or [-1, error code] when it fails to load.
AUDIO_METADATA = """
const done = arguments[arguments.length - 1];
const player = document.querySelector(arguments[0]);
const report = () => done([player.readyState, player.duration]);
if (player.readyState >= 1) { report(); return; }
player.addEventListener("loadedmetadata", report);
player.addEventListener("error", () => done([-1, player.error ? player.error.code : null]));
player.load();
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # no background connections: this machine's closed network refuses them, many at a time
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def audio_metadata(browser, selector: str) -> tuple[float, float]:
    return tuple(browser.execute_async_script(AUDIO_METADATA, selector))


def test_the_listening_page_plays_its_audio_in_chromium(browser, finished_run, tmp_path):
    page = finished_run / "results" / "report" / "listen.html"
    browser.get(page.as_uri())
    sections = browser.find_elements(By.TAG_NAME, "section")
    players = browser.find_elements(By.TAG_NAME, "audio")
    test_tracks = (pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet").split == "test").sum()
    assert len(sections) == min(10, test_tracks)
    assert len(players) >= len(sections) * 2 and browser.find_elements(By.CSS_SELECTOR, "tr")
    state, duration = audio_metadata(browser, "audio")
    browser.save_screenshot(str(tmp_path / "listen.png"))
    assert state >= 1, f"the first player did not load (media error {duration})"
    assert duration == pytest.approx(13.0, abs=0.1)  # tests/config/tiny.yaml: demo tracks last 13 s


@pytest.fixture(scope="module")
def live_service(finished_run):
    service = LiveServer(create_app(Recommender(finished_run / "results" / "index" / "tl_online")))
    yield service.url
    service.stop()


def test_the_serve_page_recommends_a_chosen_file_with_players_that_load(browser, live_service, finished_run, tmp_path):
    song = pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet").iloc[5]
    browser.get(live_service)
    browser.find_element(By.ID, "file").send_keys(str(Path(song.path).resolve()))
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "tr.neighbour")) == 10)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.neighbour")
    assert rows[0].find_elements(By.TAG_NAME, "td")[1].text == song.track_id
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.neighbour audio")) == 10
    state, duration = audio_metadata(browser, "tr.neighbour audio")
    browser.save_screenshot(str(tmp_path / "serve.png"))
    assert state >= 1, f"the first player did not load (media error {duration})"
    assert duration == pytest.approx(13.0, abs=0.1)


def test_the_serve_page_shows_why_a_file_was_refused(browser, live_service, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    browser.get(live_service)
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 30).until(lambda b: "error" in b.find_element(By.ID, "status").get_attribute("class"))
    assert "notes.wav" in browser.find_element(By.ID, "status").text
    assert not browser.find_elements(By.CSS_SELECTOR, "tr.neighbour")


def test_the_serve_page_shows_the_query_its_tags_and_each_neighbours_shared_tags(browser, live_service, finished_run):
    song = pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet").iloc[3]
    browser.get(live_service)
    browser.find_element(By.ID, "file").send_keys(str(Path(song.path).resolve()))
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "tr.neighbour")) == 10)
    assert browser.find_element(By.ID, "query-player").get_attribute("src").startswith("blob:")
    assert browser.find_element(By.ID, "query-tags").text.startswith("Its tags (estimated by at_baseline): ")
    first = browser.find_elements(By.CSS_SELECTOR, "tr.neighbour")[0].find_elements(By.TAG_NAME, "td")[4]
    strong = pd.read_parquet(finished_run / "results" / "catalog" / "tags.parquet").set_index("track_id")
    expected = strong.loc[song.track_id][strong.loc[song.track_id] >= 0.5].index
    assert set(first.text.split(", ")) == set(expected)


def test_the_serve_page_survives_a_service_that_went_away_and_lets_the_user_retry(browser, finished_run):
    service = LiveServer(create_app(Recommender(finished_run / "results" / "index" / "tl_online")))
    song = pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet").iloc[2]
    browser.get(service.url)
    service.stop()
    browser.find_element(By.ID, "file").send_keys(str(Path(song.path).resolve()))
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "status").get_attribute("class") == "error")
    assert "could not be reached" in browser.find_element(By.ID, "status").text
    assert browser.find_element(By.ID, "retry").is_displayed()
    assert "busy" not in browser.find_element(By.ID, "drop").get_attribute("class")


def test_the_serve_page_fits_a_phone_screen(browser, live_service, finished_run):
    song = pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet").iloc[1]
    browser.set_window_size(390, 844)
    try:
        browser.get(live_service)
        browser.find_element(By.ID, "file").send_keys(str(Path(song.path).resolve()))
        WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "tr.neighbour")) == 10)
        width = browser.execute_script("return document.documentElement.clientWidth")
        players = browser.find_elements(By.CSS_SELECTOR, "tr.neighbour audio")
        assert all(p.rect["x"] + p.rect["width"] <= width for p in players), "a player is cut off"
    finally:
        browser.set_window_size(1200, 900)


def test_the_serve_page_reports_a_proxys_non_json_reply_and_lets_the_user_retry(browser, finished_run):
    """A proxy in front of the service answers 502 with an HTML page: the page says so, not 'Listening'."""
    proxy = FastAPI()
    proxy.get("/", response_class=HTMLResponse)(lambda: PAGE.read_text(encoding="utf-8"))
    proxy.post("/recommend")(lambda: HTMLResponse("<html><body>502 Bad Gateway</body></html>", status_code=502))
    server = LiveServer(proxy)
    try:
        song = pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet").iloc[0]
        browser.get(server.url)
        browser.find_element(By.ID, "file").send_keys(str(Path(song.path).resolve()))
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "status").get_attribute("class") == "error")
        assert "answered 502" in browser.find_element(By.ID, "status").text
        assert browser.find_element(By.ID, "retry").is_displayed()
    finally:
        server.stop()
