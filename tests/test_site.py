"""The leaderboard site, opened from disk in headless Chromium (Debian's chromium + chromium-driver,
driven by selenium; nothing is downloaded). `make test` installs both; without them these tests skip,
unless BENCH_REQUIRE_BROWSER=1 (set by `make test`), where they fail."""

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.site import data as D

TOY = str(Path(__file__).parent / "toy_plugins")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SHOTS = os.environ.get("SITE_SCREENSHOTS")  # a folder: save a screenshot of every page checked


def run_cli(*args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
        raise SystemExit(0)
    return e.value.code or 0


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A toy board (nearest, naive + adaptive, vs none / two noise levels / rotation) and its site."""
    tmp = tmp_path_factory.mktemp("site")
    saved = os.environ.get("BENCH_CACHE_DIR")
    try:
        code = run_cli("--plugins-dir", TOY, "run", "-a", "nearest", "-d", "none", "-d", "noise:scale=0.05|0.5", "-d", "rotation",
                       "-e", "toy-hash", "-D", "toy", "--device", "cpu", "-q", "--out", str(tmp / "res"), "--cache-dir", str(tmp / "c"),
                       "--no-floor")
        assert code == 0
        assert run_cli("leaderboard", "add", str(tmp / "res"), "--board", "toy-board", "--boards", str(tmp / "boards"), "--verify", "0") == 0
        assert run_cli("leaderboard", "site", str(tmp / "boards"), "--out", str(tmp / "www")) == 0
    finally:
        os.environ.pop("BENCH_CACHE_DIR", None) if saved is None else os.environ.__setitem__("BENCH_CACHE_DIR", saved)
    return tmp / "www", tmp / "boards" / "toy-board"


def test_site_files_and_data(site):
    www, board_dir = site
    board = D.load_board(board_dir)
    assert len(board.cells) == 7
    for rel in ("index.html", "static/site.js", "static/vendor/tabulator.min.js", "static/vendor/plotly-basic.min.js",
                "boards/toy-board/index.html", "boards/toy-board/records.zip", "boards/toy-board/leaderboard.csv"):
        assert (www / rel).is_file(), rel
    for c in board.cells:
        assert (www / "boards" / "toy-board" / "cells" / f"{c.id}.html").is_file()
    html = (www / "boards" / "toy-board" / "index.html").read_text()
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)  # nothing from a CDN or any server
    axes = D.swept_axes(board)
    assert [a["key"] for a in axes] == ["noise:scale"]
    assert {s["name"] for s in axes[0]["series"]} == {"nearest naive", "nearest adaptive"}
    ranking = D.defense_ranking(board, "word_f1", "ndcg@10")
    assert len(ranking) == 4 and any(r["pareto"] for r in ranking)


def test_pareto_front_and_natural_order():
    pts = [(0.9, 0.5, "a"), (0.8, 0.2, "b"), (0.7, 0.3, "c"), (0.5, 0.1, "d")]
    assert D.pareto_front(pts) == ["a", "b", "d"]  # c: b has more utility and less leakage
    from bench.leaderboard import metric_order

    names = ["nbr_f1@50", "nbr_f1@10", "bleu", "nbr_f1@5", "nbr_f1@20"]
    assert metric_order(names, ["bleu"]) == ["bleu", "nbr_f1@5", "nbr_f1@10", "nbr_f1@20", "nbr_f1@50"]


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("BENCH_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required: apt-get install chromium chromium-driver")
        pytest.skip("needs Debian's chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, path, ready_js, timeout=30):
    driver.get(path.as_uri())
    end = time.time() + timeout
    while time.time() < end:
        if driver.execute_script(ready_js):
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not become ready ({ready_js})")


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shoot(driver, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1400, min(height + 40, 5000))
        driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))
        driver.set_window_size(1400, 1000)


def click(driver, css):
    """Scroll an element into view (wide tables scroll sideways) and click it."""
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.CSS_SELECTOR, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", el)
    time.sleep(0.2)
    el.click()


def rows(driver, table):
    return driver.execute_script(f"return document.querySelectorAll('{table} .tabulator-row').length")


def column(driver, table, field):
    return driver.execute_script(
        f"return Array.from(document.querySelectorAll('{table} .tabulator-row .tabulator-cell[tabulator-field=\"{field}\"]'))"
        ".map(c => c.innerText)")


def test_index_lists_the_board(site, browser):
    www, _ = site
    open_page(browser, www / "index.html", "return document.querySelectorAll('a.board-link').length > 0")
    text = browser.find_element("id", "boards").text
    assert "toy-board" in text and "nearest" in text and "toy-hash" in text and "7 not pretrained" in text
    shoot(browser, "index")
    assert console_errors(browser) == []


def test_board_table_sort_filter_and_plots(site, browser):
    from selenium.webdriver.common.by import By

    www, _ = site
    page = www / "boards" / "toy-board" / "index.html"
    open_page(browser, page, "return document.querySelectorAll('#cells-table .tabulator-row').length > 0 && "
                             "document.querySelectorAll('#plot-pu .scatterlayer .point').length > 0")
    shoot(browser, "board")
    assert rows(browser, "#cells-table") == 7  # every row rendered
    assert all("not pretrained" in a for a in column(browser, "#cells-table", "attack"))  # toy models are marked
    assert browser.execute_script("return document.querySelectorAll('#cells-table .row-not-pretrained').length") == 7

    # ranked by leakage: the first metric column is descending
    values = [float(v.split()[0]) for v in column(browser, "#cells-table", "m:word_f1")]
    assert values == sorted(values, reverse=True)
    # a click on a header sorts by it
    click(browser, '#cells-table .tabulator-col[tabulator-field="m:utility:ndcg@10"] .tabulator-col-title')
    time.sleep(0.3)
    ndcg = [float(v.split()[0]) for v in column(browser, "#cells-table", "m:utility:ndcg@10")]
    words = [float(v.split()[0]) for v in column(browser, "#cells-table", "m:word_f1")]
    assert words != values  # the rows were reordered
    assert ndcg == sorted(ndcg) or ndcg == sorted(ndcg, reverse=True)

    # a header filter hides rows; the search box too
    box = browser.find_element(By.CSS_SELECTOR, '#cells-table .tabulator-col[tabulator-field="defense"] input')
    box.send_keys("rotation")
    time.sleep(0.6)
    assert rows(browser, "#cells-table") == 2
    assert all(d == "rotation" for d in column(browser, "#cells-table", "defense"))
    box.clear()
    box.send_keys(" ")
    box.clear()
    time.sleep(0.6)
    search = browser.find_element(By.ID, "table-search")
    search.send_keys("adaptive")
    time.sleep(0.3)
    assert rows(browser, "#cells-table") == 3
    search.clear()
    search.send_keys(" ")
    time.sleep(0.3)

    # column chooser: a non-headline metric appears when ticked
    field = "m:word_precision"
    shown = lambda: browser.execute_script(
        f"return document.querySelectorAll('#cells-table .tabulator-col[tabulator-field=\"{field}\"]').length > 0 && "
        f"document.querySelector('#cells-table .tabulator-col[tabulator-field=\"{field}\"]').offsetParent !== null")
    before = shown()
    browser.find_element(By.CSS_SELECTOR, "#column-chooser summary").click()
    browser.find_element(By.CSS_SELECTOR, '#column-chooser input[data-col="word_precision"]').click()
    time.sleep(0.3)
    assert shown() != before

    # the privacy-utility plot draws one point per cell (plus the Pareto front), the sweep plot its points
    points = browser.execute_script("return document.querySelectorAll('#plot-pu .scatterlayer .trace .points .point').length")
    assert points >= 7
    legend = browser.execute_script("return Array.from(document.querySelectorAll('#plot-pu .legendtext')).map(t => t.textContent)")
    assert "defender's Pareto front" in legend and "noise · adaptive" in legend and "rotation · naive" in legend
    sweep = browser.execute_script("return document.querySelectorAll('#plot-axis-0 .scatterlayer .point').length")
    assert sweep >= 4
    assert console_errors(browser) == []


def test_cell_page_shows_reconstructions(site, browser):
    from selenium.webdriver.common.by import By

    www, board_dir = site
    page = www / "boards" / "toy-board" / "index.html"
    open_page(browser, page, "return document.querySelectorAll('#cells-table .tabulator-row').length > 0")
    browser.find_element(By.CSS_SELECTOR, "#cells-table .tabulator-row").click()  # a row opens its cell
    end = time.time() + 20
    while "/cells/" not in browser.current_url and time.time() < end:
        time.sleep(0.2)
    assert "/cells/" in browser.current_url
    open_page(browser, Path(browser.current_url.removeprefix("file://")),
              "return document.querySelectorAll('#samples-table .tabulator-row').length > 0")
    shoot(browser, "cell")
    cell_id = browser.current_url.rsplit("/", 1)[1].removesuffix(".html")
    board = D.load_board(board_dir)
    cell = next(c for c in board.cells if c.id == cell_id)
    samples = D.samples(cell)
    assert rows(browser, "#samples-table") == min(25, len(samples))
    targets = column(browser, "#samples-table", "target")
    recon = column(browser, "#samples-table", "reconstruction")
    assert all(targets) and set(targets) <= {s["target"] for s in samples}
    assert any(r for r in recon)
    # sorted by the first score, best first; a header click re-sorts
    f1 = [float(v) for v in column(browser, "#samples-table", "s:word_f1")]
    assert f1 == sorted(f1, reverse=True)
    assert f1[0] == round(max(s["scores"]["word_f1"] for s in samples), 3)
    click(browser, '#samples-table .tabulator-col[tabulator-field="s:word_f1"] .tabulator-col-title')
    time.sleep(0.3)
    asc = [float(v) for v in column(browser, "#samples-table", "s:word_f1")]
    assert asc == sorted(asc) and asc[0] == round(min(s["scores"]["word_f1"] for s in samples), 3)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Threat model" in text and "Provenance" in text and "not pretrained" in text and cell.record.digest in text
    metric_rows = browser.execute_script("return document.querySelectorAll('#metric-table tbody tr').length")
    assert metric_rows == len(cell.record.metrics) + len(cell.record.utility)
    assert console_errors(browser) == []
    assert json.loads((board_dir / "board.json").read_text())["version"] == 1
