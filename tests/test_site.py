"""The leaderboard site, opened from disk in headless Chromium (Debian's chromium + chromium-driver,
driven by selenium; nothing is downloaded). `make test` installs both; without them these tests skip,
unless BENCH_REQUIRE_BROWSER=1 (set by `make test`), where they fail.

Two sites: a toy board built here (tables, sorting, samples, schema-4 keys written into its records)
and the published boards of `leaderboards/` at phone (390 px) and desktop (1280 px) widths."""

import json
import os
import re
import shlex
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.results import content_digest
from bench.site import data as D
from bench.site.render import build_site

TOY = str(Path(__file__).parent / "toy_plugins")
PUBLISHED = Path(__file__).parent.parent / "leaderboards"
LEGACY = "wordnet-minilm-bow-scaling-2026-11-23"  # a board of records kept without samples files
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
    for r in ranking:  # each setting's worst case is the highest value of its cells, inside its own CI
        values = [c.record.metrics["word_f1"].value for c in board.cells if D.defense_label(c.record) == r["defense"]]
        assert r["leakage"] == max(values) and r["ci"][0] <= r["leakage"] <= r["ci"][1]


def test_dominance_needs_both_intervals_separate():
    """noise 0.001 "beating" no defense inside the CIs (issue 16, item 7) is no dominance."""
    none, tiny = pt("none", 0.210, 0.45, 0.01, 0.02), pt("noise 0.001", 0.211, 0.44, 0.01, 0.02)
    assert D.pareto_front([none, tiny]) == ["noise 0.001", "none"]  # both stay: the CIs overlap
    clear = pt("clear", 0.5, 0.1, 0.01, 0.02)
    assert D.pareto_front([none, tiny, clear]) == ["clear"]  # separate on both axes: dominated
    only_utility = pt("util", 0.5, 0.445, 0.01, 0.02)  # better utility beyond its CI, same leakage
    assert set(D.pareto_front([none, only_utility])) == {"none", "util"}


def test_staircase_passes_only_through_attainable_points():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = [pt(str(i), float(u), float(leak)) for i, (u, leak) in enumerate(rng.random((8, 2)))]
        stair = D.staircase(pts)
        assert stair[0] == (max(p.u for p in pts), min(p.leak for p in pts if p.u == max(q.u for q in pts)))
        for u, leak in stair:  # some measured point has at least this utility and at most this leakage
            assert any(p.u >= u and p.leak <= leak for p in pts)
        for (u1, l1), (u2, l2) in zip(stair, stair[1:]):
            assert u2 <= u1 and l2 <= l1 and (u1 == u2 or l1 == l2)  # axis-parallel steps, leftwards and down
        assert stair[-1][1] == min(p.leak for p in pts)


def test_picker_offers_leakage_only():
    board = D.load_board(PUBLISHED / "wordnet-minilm-zsinvert")
    picks = D.picker_metrics(board)
    assert "token_f1" in picks and "bleu" in picks
    assert "queries" not in picks and not [m for m in picks if "@round" in m]
    assert D.cost_metrics(board) == ["queries"]
    slime = D.load_board(PUBLISHED / "wordnet-minilm-slime")
    assert not [m for m in D.picker_metrics(slime) if "chance" in m]  # reference levels rank nothing


def pt(pid, u, leak, half=0.0, u_half=0.0):
    return D.Point(pid, u, u - u_half, u + u_half, leak, leak - half, leak + half)


def test_pareto_front_and_natural_order():
    pts = [pt("a", 0.9, 0.5), pt("b", 0.8, 0.2), pt("c", 0.7, 0.3), pt("d", 0.5, 0.1)]
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


@pytest.mark.slow
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
    assert "★ Pareto front (CIs separate)" in legend and "noise · adaptive" in legend and "rotation · naive" in legend
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
    end = time.time() + 20
    while not browser.execute_script("return document.querySelectorAll('#samples-table .tabulator-row').length > 0") and time.time() < end:
        time.sleep(0.2)
    shoot(browser, "cell")
    cell_id = browser.current_url.split("#")[0].rsplit("/", 1)[1].removesuffix(".html")
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


# ------------------------------------------------------------------ records of schema 4 (keys other parts add)

def reseal(path: Path, **keys) -> dict:
    """Add keys to a record file and seal it again, as a schema-4 writer would."""
    data = json.loads(path.read_text())
    data.update(keys)
    data["digest"] = content_digest(data)
    path.write_text(json.dumps(data, indent=2))
    return data


@pytest.fixture(scope="module")
def keyed(site, tmp_path_factory):
    """The toy board with floor / at_chance / queries / command written into its records (and a
    verified board.json), its site built; the rotation-naive cell is the one at chance."""
    _, board_dir = site
    tmp = tmp_path_factory.mktemp("keyed")
    board = tmp / "leaderboards" / "keyed-board"
    shutil.copytree(board_dir, board)
    meta = json.loads((board / "board.json").read_text())
    (board / "board.json").write_text(json.dumps(meta | {"name": "keyed-board", "verification": "verified"}))
    chance = None
    for f in sorted((board / "records").glob("*.json")):
        data = json.loads(f.read_text())
        keys = {"floor": {"word_f1": {"value": 0.05, "ci_low": 0.04, "ci_high": 0.06}},
                "queries": {"fit": 120, "alignment": 0, "inference": 30, "inference_per_target_mean": 1.5,
                            "inference_per_target_max": 3}}
        if data["defense"]["name"] == "rotation" and not data["attack"]["params"].get("adaptive"):
            keys["at_chance"], chance = ["word_f1"], data["cell_id"]
            keys["command"] = "bench run -a nearest -d rotation -e toy-hash -D toy --seed 0"
            keys["threat_model"] = data["threat_model"] | {"fit_budget": 500, "query_budget": 4}
        reseal(f, **keys)
    out = tmp / "www"
    build_site([board], out)
    return out, board, chance


def test_schema4_keys_on_the_cell_page(keyed):
    out, board_dir, chance = keyed
    board = D.load_board(board_dir)
    cell = next(c for c in board.cells if c.id == chance)
    assert D.floor(cell) == {"word_f1": {"value": 0.05, "ci_low": 0.04, "ci_high": 0.06}}
    assert D.at_chance(cell) == ["word_f1"] and D.verification(board) == "verified"
    ledger = D.queries(cell)
    assert [q["phase"] for q in ledger] == list(D.QUERY_PHASES)
    assert [q["budget"] for q in ledger] == [500, None, None, 4, 4]  # fit in total, inference per target
    assert D.run_command(cell) == {"text": "bench run -a nearest -d rotation -e toy-hash -D toy --seed 0", "recorded": True}
    html = (out / "boards" / "keyed-board" / "cells" / f"{chance}.html").read_text()
    assert "chance floor" in html and "0.050" in html and "[0.040, 0.060]" in html
    marked = re.findall(r'<tr class="[^"]*at-chance"><td class="pin">([a-z_0-9@]+)', html)
    assert marked == ["word_f1"]  # that metric's row only
    assert 'id="query-table"' in html and "inference per target max" in html
    assert "the command that made this cell" in html and "bench run -a nearest -d rotation" in html
    assert "bench reproduce leaderboards/keyed-board/records/" in html
    row = next(r for r in D.rows(board) if r["cell"] == chance)
    assert row["at_chance"] == ["word_f1"]
    assert D.board_floors(board) == {"word_f1": [{"value": 0.05, "ci_low": 0.04, "ci_high": 0.06}]}
    index = (out / "index.html").read_text()
    assert "verified</span>" in index and "chance floor" in index and "at chance" in index


def test_records_without_the_new_keys(site, tmp_path):
    """Records of schema 3 (no floor, at_chance, queries, command) still render: no floor column, no
    query ledger, and a `bench run` built from the configuration."""
    _, board_dir = site
    bare = tmp_path / "leaderboards" / "toy-board"
    shutil.copytree(board_dir, bare)
    for f in sorted((bare / "records").glob("*.json")):
        data = json.loads(f.read_text())
        for key in ("floor", "at_chance", "queries", "command"):
            data.pop(key, None)
        data["digest"] = content_digest(data)
        f.write_text(json.dumps(data, indent=2))
    www = tmp_path / "www"
    build_site([bare], www)
    board = D.load_board(bare)
    cell = board.cells[0]
    assert D.floor(cell) == {} and D.at_chance(cell) == [] and D.queries(cell) == []
    assert D.verification(board) == "self-reported" and not D.run_command(cell)["recorded"]
    html = (www / "boards" / "toy-board" / "cells" / f"{cell.id}.html").read_text()
    assert "chance floor" not in html and 'id="query-table"' not in html
    assert "built from the record&#39;s configuration" in html and "bench reproduce" in html


@pytest.mark.slow
def test_built_command_reruns_the_same_cell(site, tmp_path):
    """The `bench run` built from a record's configuration makes a cell with the same id."""
    _, board_dir = site
    board = D.load_board(board_dir)
    cell = next(c for c in board.cells if c.record.defense.name == "noise" and c.record.attack.params.get("adaptive"))
    args = shlex.split(D.run_command(cell)["text"])  # the record's own command (the fixture's run keeps it)
    if args[1:2] == ["--plugins-dir"]:
        del args[1:3]
    assert args[:2] == ["bench", "run"]
    code = run_cli("--plugins-dir", TOY, *args[1:], "--device", "cpu", "-q", "--out", str(tmp_path / "res"),
                   "--cache-dir", str(tmp_path / "c"))
    assert code == 0
    made = {m["cell_id"]: m for f in (tmp_path / "res").glob("*.json") if (m := json.loads(f.read_text()))}
    assert cell.id in made  # the recorded command re-makes its grid, this cell among them
    assert made[cell.id]["metrics"]["word_f1"]["value"] == cell.record.metrics["word_f1"].value


def test_overview_matrix_and_rankings(site):
    www, board_dir = site
    board = D.load_board(board_dir)
    [group] = D.overview([board])
    assert (group["victim"], group["dataset"]) == ("toy-hash", "toy")
    metric = group["metrics"][0]
    matrix = group["matrices"][metric]
    assert matrix["attacks"] == ["nearest"]
    assert [c["family"] for c in group["columns"]][0] == "none"  # the undefended column first
    for col in group["columns"]:
        slot = matrix["cells"]["nearest"][col["label"]]
        values = [c.record.metrics[metric].value for c in board.cells if D.defense_label(c.record) == col["label"]]
        assert slot["best"]["value"] == max(values)  # naive or adaptive, whichever is higher
        assert slot["best"]["mode"] in ("naive", "adaptive") and (www / slot["best"]["href"]).is_file()
        assert not slot["best"]["verified"]
    ranked = matrix["ranking"]["defenses"]
    assert sum(s["wins"] for s in ranked) == sum(s["losses"] for s in ranked)
    assert all(0 <= s["win_rate"] <= 1 for s in ranked)
    assert {s["name"] for s in ranked} == {c["label"] for c in group["columns"]}
    assert matrix["ranking"]["attacks"] == []  # one attack: nothing to compare


def test_win_rate_rule():
    cols = [{"label": "none", "utility": None}, {"label": "noise", "utility": None}]
    e = lambda v, h=0.01: {"value": v, "lo": v - h, "hi": v + h}  # noqa: E731
    cells = {"a": {"none": {"best": e(0.5)}, "noise": {"best": e(0.3)}},
             "b": {"none": {"best": e(0.2)}, "noise": {"best": e(0.305)}}}
    attacks = D.rank_attacks(cells, cols)
    assert [(s["name"], s["wins"], s["ties"], s["losses"]) for s in attacks] == [("a", 1, 1, 0), ("b", 0, 1, 1)]
    assert attacks[0]["win_rate"] == 0.75
    defenses = D.rank_defenses(cells, cols)
    assert [(s["name"], s["wins"], s["losses"]) for s in defenses] == [("noise", 1, 1), ("none", 1, 1)]


def test_target_pages(site):
    www, board_dir = site
    board = D.load_board(board_dir)
    targets = D.targets(board)
    assert targets and all(len(t["rows"]) == len(board.cells) for t in targets)
    assert len({t["slug"] for t in targets}) == len(targets)  # one page per target
    t = targets[0]
    page = (www / "boards" / "toy-board" / "targets" / f"{t['slug']}.html").read_text()
    assert t["target"] in page and page.count('href="../cells/') == len(board.cells)
    assert (www / "boards" / "toy-board" / "targets" / "index.html").is_file()


# ------------------------------------------------------------------ the published boards in a browser

WIDTHS = (390, 1280)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    boards = sorted(p for p in PUBLISHED.iterdir() if (p / "records").is_dir())
    # every published cell keeps its samples file now; the retired records of 2026-11-23 kept none,
    # so a board of them shows the page of a cell without samples
    legacy = tmp_path_factory.mktemp("legacy") / "leaderboards" / LEGACY
    (legacy / "records").mkdir(parents=True)
    for f in (PUBLISHED / "wordnet-minilm-bow-scaling" / "retired").glob("*.json"):
        shutil.copy(f, legacy / "records")
    boards.append(legacy)
    out = tmp_path_factory.mktemp("published")
    build_site(boards, out)
    return out, {D.slug(D.load_board(b).name): D.load_board(b) for b in boards}


def viewport(driver, width):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500})


def page_width(driver):
    return driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")


BOARD_READY = ("return document.querySelectorAll('#cells-table .tabulator-row').length > 0 && "
               "Array.from(document.querySelectorAll('.js-plotly-plot')).every(p => p.querySelector('.g-xtitle'))")


def published_pages(www, boards):
    """Every page kind: the overview, each board, a cell with and one without samples, a target page."""
    pages = [(www / "index.html", "return document.querySelectorAll('table.matrix').length > 0")]
    for slug in boards:
        pages.append((www / "boards" / slug / "index.html", BOARD_READY))
    with_samples = next((s, c) for s, b in boards.items() for c in b.cells if c.samples_path)
    without = next((s, c) for s, b in boards.items() for c in b.cells if not c.samples_path)
    pages.append((www / "boards" / with_samples[0] / "cells" / f"{with_samples[1].id}.html",
                  "return document.querySelectorAll('#samples-table .tabulator-row').length > 0"))
    pages.append((www / "boards" / without[0] / "cells" / f"{without[1].id}.html", "return !!document.getElementById('no-samples')"))
    target = next(iter(sorted((www / "boards" / with_samples[0] / "targets").glob("*.html"))))
    pages.append((target, "return document.readyState === 'complete'"))
    return pages


@pytest.mark.parametrize("width", WIDTHS)
def test_published_pages_fit_the_screen_without_console_errors(published, browser, width):
    www, boards = published
    viewport(browser, width)
    browser.get_log("browser")
    for path, ready in published_pages(www, boards):
        open_page(browser, path, ready)
        scroll, inner = page_width(browser)
        assert scroll <= inner, f"{path.relative_to(www)} scrolls sideways at {width} px ({scroll} > {inner})"
        assert console_errors(browser) == [], path
        shoot(browser, f"published-{width}-{path.relative_to(www).as_posix().replace('/', '_')}")
    viewport(browser, 1400)


@pytest.mark.parametrize("width", WIDTHS)
def test_published_plots_have_axis_titles_and_points_open_cells(published, browser, width):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    www, boards = published
    viewport(browser, width)
    page = www / "boards" / "wordnet-minilm-bow" / "index.html"
    open_page(browser, page, BOARD_READY)
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => "
        "[p.id, (p.querySelector('.g-xtitle') || {}).textContent, (p.querySelector('.g-ytitle') || {}).textContent])")
    assert len(titles) >= 3
    for pid, x, y in titles:
        assert x and y, f"{pid} lacks an axis title"
    labels = browser.execute_script("return document.querySelectorAll('#plot-pu .annotation-text').length")
    assert labels >= 3  # points carry labels (and the defender's corner note)
    ticks = browser.execute_script("return Array.from(document.querySelectorAll('#plot-pu .xtick text, #plot-pu .ytick text')).map(t => t.textContent)")
    assert ticks and all(len(t.split(".")[-1]) <= 2 for t in ticks)  # round ticks, no 0.2062
    point = browser.find_elements(By.CSS_SELECTOR, "#plot-pu .scatterlayer .trace .points path.point")[-1]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", point)
    time.sleep(0.3)
    ActionChains(browser).move_to_element(point).pause(0.4).click().perform()
    end = time.time() + 15
    while "/cells/" not in browser.current_url and time.time() < end:
        time.sleep(0.2)
    assert "/cells/" in browser.current_url
    cell_id = browser.current_url.split("#")[0].rsplit("/", 1)[1].removesuffix(".html")
    assert cell_id in {c.id for c in boards["wordnet-minilm-bow"].cells}
    viewport(browser, 1400)


def test_published_links_and_view_state(published, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    www, boards = published
    viewport(browser, 1280)
    page = www / "boards" / "wordnet-minilm-zsinvert" / "index.html"
    open_page(browser, page, BOARD_READY)
    links = browser.execute_script("return Array.from(document.querySelectorAll('#cells-table a.cell-link')).map(a => a.getAttribute('href'))")
    assert len(links) == len(boards["wordnet-minilm-zsinvert"].cells)
    assert all((page.parent / h).is_file() for h in links)  # rows are real links
    papers = browser.execute_script("return Array.from(document.querySelectorAll('.papers a')).map(a => a.href)")
    assert any("arxiv.org" in h for h in papers)
    options = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "metric-picker")).options]
    assert "queries" not in options and not [o for o in options if "@round" in o]
    assert browser.find_element(By.ID, "plot-cost")  # the cost gets its own axis
    harness = browser.find_element(By.CSS_SELECTOR, ".facts").text
    assert re.search(r"harness .*[0-9a-f]{12}", harness, re.I)  # the commit, not only the version

    Select(browser.find_element(By.ID, "metric-picker")).select_by_value("bleu")
    click(browser, '#cells-table .tabulator-col[tabulator-field="m:utility:ndcg@10"] .tabulator-col-title')
    time.sleep(0.4)
    url = browser.current_url
    assert "metric=bleu" in url and "sort=m%3Autility%3Andcg%4010" in url
    order = browser.execute_script("return Array.from(document.querySelectorAll('#cells-table a.cell-link')).map(a => a.getAttribute('href'))")
    browser.get("about:blank")
    browser.get(url)  # the address alone restores the view
    end = time.time() + 20
    while not browser.execute_script(BOARD_READY) and time.time() < end:
        time.sleep(0.2)
    assert Select(browser.find_element(By.ID, "metric-picker")).first_selected_option.get_attribute("value") == "bleu"
    again = browser.execute_script("return Array.from(document.querySelectorAll('#cells-table a.cell-link')).map(a => a.getAttribute('href'))")
    assert again == order
    ytitle = browser.execute_script("return document.querySelector('#plot-pu .g-ytitle').textContent")
    assert ytitle.startswith("bleu")
    assert console_errors(browser) == []


def test_published_cell_page_copy_command_without_samples(published, browser):
    from selenium.webdriver.common.by import By

    www, boards = published
    viewport(browser, 390)
    board = boards[LEGACY]
    cell = board.cells[0]
    assert cell.samples_path is None
    open_page(browser, www / "boards" / LEGACY / "cells" / f"{cell.id}.html",
              "return !!document.getElementById('no-samples')")
    commands = [b.get_attribute("data-copy") for b in browser.find_elements(By.CSS_SELECTOR, "#commands button.copy")]
    assert commands[0].startswith("bench run -a bow:") and commands[1].startswith(f"bench reproduce leaderboards/{LEGACY}/records/")
    assert (board.folder.parent.parent / shlex.split(commands[1])[2]).is_file()  # the path exists under the boards' root
    button = browser.find_elements(By.CSS_SELECTOR, "#commands button.copy")[1]
    button.click()
    time.sleep(0.3)
    assert button.text in ("copied", "select and copy")
    assert page_width(browser)[0] <= 390 and console_errors(browser) == []
    viewport(browser, 1400)
