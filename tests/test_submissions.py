"""`bench leaderboard validate` / `add` and `bench reproduce`: one clear line per problem."""

import json
import os
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli

from bench.results import content_digest

TOY = str(Path(__file__).parent / "toy_plugins")
GRID = ["-a", "nearest", "-d", "none", "-d", "rotation", "-e", "toy-hash", "-D", "toy", "--device", "cpu", "-q", "--no-floor"]



@pytest.fixture(scope="module")
def made_once(tmp_path_factory):
    """The toy grid run once per module (a run costs seconds; the tests only read or edit copies)."""
    from bench.cli import main

    base = tmp_path_factory.mktemp("submission")
    args = ["--plugins-dir", TOY, "run", *GRID, "--out", str(base / "sub"), "--cache-dir", str(base / "c")]
    try:
        main(args)
    except SystemExit as done:
        assert not done.code, f"the toy grid failed: exit {done.code}"
    return base


@pytest.fixture
def submission(made_once, tmp_path):
    """A folder of three toy records (nearest naive/adaptive vs none/rotation), with samples: a fresh
    copy for each test, beside the cache that made it (``tmp_path / "c"``)."""
    shutil.copytree(made_once / "c", tmp_path / "c")
    return Path(shutil.copytree(made_once / "sub", tmp_path / "sub"))


def records(folder):
    return sorted(p for p in Path(folder).glob("*.json"))


def reseal(path, edit):
    """Edit a record and recompute its digest, as a lab's own (buggy) harness would write it."""
    data = json.loads(path.read_text())
    edit(data)
    data["digest"] = content_digest(data)
    path.write_text(json.dumps(data, indent=2))


def validate(capsys, folder, boards):
    return run_cli(capsys, "leaderboard", "validate", str(folder), "--boards", str(boards))


def test_a_clean_submission_validates(capsys, submission, tmp_path):
    code, out, err = validate(capsys, submission, tmp_path / "boards")
    assert code == 0 and out == "" and "3 record(s) valid" in err


@pytest.mark.parametrize(
    "case, expected",
    [
        ("tampered", "record content does not match its digest (edited after it was written)"),
        ("future", "record schema 99 is newer than this bench"),
        ("no-version", "attack 'nearest' (plugin toy) has no plugin version"),
        ("no-plugin", "defense 'none' names no plugin"),
        ("pretrained", "all_pretrained is True but the models say otherwise (toy-hash)"),
        ("samples", "samples file does not match its record's digest"),
        ("no-samples", ".samples.jsonl is missing: send each record with its .samples.jsonl"),
        ("not-json", "not a readable result record"),
    ],
)
def test_each_bad_record_is_one_line(capsys, submission, tmp_path, case, expected):
    path = records(submission)[0]
    data = json.loads(path.read_text())
    if case == "tampered":  # one metric value edited by hand
        path.write_text(path.read_text().replace(json.dumps(data["metrics"]["word_f1"]["value"]), "0.999", 1))
    elif case == "future":
        reseal(path, lambda d: d.update(schema_version=99))
    elif case == "no-version":
        reseal(path, lambda d: d["attack"].update(plugin="toy", version=""))
    elif case == "no-plugin":
        reseal(path, lambda d: d["defense"].update(plugin=""))
    elif case == "pretrained":
        reseal(path, lambda d: d.update(all_pretrained=True))
    elif case == "samples":
        samples = submission / data["samples_file"]
        samples.write_text(samples.read_text().replace("0.", "1.", 1))
    elif case == "no-samples":
        (submission / data["samples_file"]).unlink()
    elif case == "not-json":
        path.write_text(path.read_text()[:40])
    code, out, _ = validate(capsys, submission, tmp_path / "boards")
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == 1, lines
    where = data["samples_file"] if case == "samples" else path.name
    assert where in lines[0] and expected in lines[0], lines[0]


def test_an_edit_that_drops_the_plugin_version_says_both(capsys, submission, tmp_path):
    path = records(submission)[0]
    data = json.loads(path.read_text())
    del data["embedder"]["version"]  # edited by hand, digest not recomputed
    path.write_text(json.dumps(data, indent=2))
    code, out, _ = validate(capsys, submission, tmp_path / "boards")
    lines = out.splitlines()
    assert code == 1 and len(lines) == 2
    assert "record content does not match its digest" in lines[0]
    assert "embedder 'toy-hash' (plugin toy) has no plugin version" in lines[1]


def test_duplicate_cells_and_published_cells(capsys, submission, tmp_path):
    boards = tmp_path / "boards"
    first = records(submission)[0]
    shutil.copytree(submission, tmp_path / "twice")
    (tmp_path / "twice" / "more").mkdir()
    shutil.copy(first, tmp_path / "twice" / "more" / first.name)
    samples = json.loads(first.read_text())["samples_file"]
    shutil.copy(submission / samples, tmp_path / "twice" / "more" / samples)
    code, out, _ = validate(capsys, tmp_path / "twice", boards)
    assert code == 1 and len(out.splitlines()) == 1 and f"duplicate cell {json.loads(first.read_text())['cell_id']}" in out

    code, _, err = run_cli(capsys, "leaderboard", "add", str(submission), "--board", "toy", "--boards", str(boards), "--note", "first cells")
    assert code == 0, err
    assert "board toy is now version 1 (3 cell(s) added): first cells" in err
    meta = json.loads((boards / "toy" / "board.json").read_text())
    assert meta["version"] == 1 and len(meta["changelog"][0]["added"]) == 3
    assert len(list((boards / "toy" / "records").glob("*.samples.jsonl"))) == 3
    assert (boards / "toy" / "leaderboard.md").exists()

    # the same records again: already published; an edited (re-sealed) one: a change to a published cell
    reseal(first, lambda d: d["metrics"]["word_f1"].update(value=0.5))
    code, out, _ = validate(capsys, submission, boards)
    lines = out.splitlines()
    assert code == 1 and len(lines) == 5  # the edit is also not what its samples say, nor inside its CI
    assert sum("word_f1 = 0.5 is not the mean of its samples file's scores" in line for line in lines) == 1
    assert sum("is already published in board toy" in line for line in lines) == 2
    assert sum("would change a cell already published in board toy" in line for line in lines) == 1
    code, out, err = run_cli(capsys, "leaderboard", "add", str(submission), "--board", "toy", "--boards", str(boards))
    assert code == 1 and "nothing was added" in err
    assert json.loads((boards / "toy" / "board.json").read_text())["version"] == 1


@pytest.mark.slow
def test_add_bumps_the_version(capsys, tmp_path):
    boards = tmp_path / "boards"
    for i, seed in enumerate(("0", "1"), 1):
        out = tmp_path / f"s{seed}"
        code, _, err = run_cli(capsys, "--plugins-dir", TOY, "run", *GRID, "--seed", seed, "--out", str(out), "--cache-dir", str(tmp_path / "c"))
        assert code == 0, err
        code, _, err = run_cli(capsys, "leaderboard", "add", str(out), "--board", "toy", "--boards", str(boards))
        assert code == 0 and f"version {i}" in err
    board = json.loads((boards / "toy" / "leaderboard.json").read_text())
    assert len([r for r in board["rows"] if r["cell_id"]]) == 6
    assert [(r["attack"], r["seed"]) for r in board["rows"] if not r["cell_id"]] == [("chance", 0), ("chance", 1)]  # floors
    assert [e["version"] for e in json.loads((boards / "toy" / "board.json").read_text())["changelog"]] == [1, 2]


def test_retire_moves_cells_off_a_board_and_keeps_them(capsys, submission, tmp_path):
    boards = tmp_path / "boards"
    assert run_cli(capsys, "leaderboard", "add", str(submission), "--board", "toy", "--boards", str(boards), "--verify", "0")[0] == 0
    rec = json.loads(next(p for p in records(submission) if "rotation" in p.name).read_text())
    board = boards / "toy"
    before = {p.name for p in (board / "records").iterdir()}
    # bad input: one line, exit 2, nothing moved
    for args, why in ((["nope"], "no cell nope on board toy"), ([rec["cell_id"], "--note", " "], "say why")):
        code, _, err = run_cli(capsys, "leaderboard", "retire", str(board), *args, *(["--note", "x"] if "--note" not in args else []))
        assert code == 2 and why in err and {p.name for p in (board / "records").iterdir()} == before
    code, out, err = run_cli(capsys, "leaderboard", "retire", str(board), rec["cell_id"], "--note", "made with a public key")
    assert code == 0 and "version 2" in out, err
    assert {p.name for p in (board / "retired").iterdir()} == {f for f in before if rec["cell_id"] in f} != set()
    rows = json.loads((board / "leaderboard.json").read_text())["rows"]
    assert len([r for r in rows if r["cell_id"]]) == 2  # and the chance floor's row, drawn from the records
    assert [r["attack"] for r in rows if not r["cell_id"]] == ["chance"]
    meta = json.loads((board / "board.json").read_text())
    entry = meta["changelog"][-1]
    assert entry["retired"] == [rec["cell_id"]] and entry["note"] == "made with a public key"
    assert meta["verification"] == "self-reported"  # version 1's other cells are still on the board, unverified


def test_reproduce_a_toy_record(capsys, submission, tmp_path):
    rec = next(p for p in records(submission) if "__none__" in p.name)
    args = ["--plugins-dir", TOY, "reproduce", str(rec), "--device", "cpu", "-q"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "word_f1" in out and "utility:ndcg@10" in out and "OUTSIDE" not in out
    assert table_verdicts(out) == {"equal"}  # a deterministic cell re-runs to the published values
    assert "metrics exactly" in err
    # a record whose number is not what its samples say (re-sealed, so it loads): refused before any re-run
    reseal(rec, lambda d: d["metrics"]["word_f1"].update(value=0.99, ci_low=0.98, ci_high=0.995))
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and "word_f1 = 0.99 is not the mean of its samples file's scores" in err


def table_verdicts(out):
    return {line.rsplit("  ", 1)[-1].strip() for line in out.splitlines()[1:] if line.strip()}


def reseal_samples(rec_path, metric, delta):
    """Shift one metric's per-sample scores by ``delta`` and the record's value with them (samples
    digest and record digest recomputed): a record consistent with its samples but not with its cell."""
    import hashlib

    data = json.loads(rec_path.read_text())
    samples = rec_path.parent / data["samples_file"]
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    for r in rows:
        r["scores"][metric] += delta
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    samples.write_bytes(body)

    def edit(d):
        d["samples_sha256"] = hashlib.sha256(body).hexdigest()
        d["metrics"][metric]["value"] += delta

    reseal(rec_path, edit)


def test_reproduce_compares_with_the_published_value_not_only_its_ci(capsys, submission):
    rec = next(p for p in records(submission) if "__none__" in p.name)
    lo, hi, v = (json.loads(rec.read_text())["metrics"]["word_f1"][k] for k in ("ci_low", "ci_high", "value"))
    reseal_samples(rec, "word_f1", (hi - v) / 2)  # still inside its CI, but not what the cell gives
    args = ["--plugins-dir", TOY, "reproduce", str(rec), "--device", "cpu", "-q"]
    code, out, err = run_cli(capsys, *args)
    assert code == 1, err
    assert [line.split()[0] for line in out.splitlines() if line.rstrip().endswith("within CI")] == ["word_f1"]
    assert "not reproduced: word_f1" in err
    code, out, err = run_cli(capsys, *args, "--allow-ci")  # a nondeterministic cell may ask only for its CI
    assert code == 0, err


def test_key_interval_is_a_t_prediction_interval():
    from bench.reproduce import KeyCheck, key_interval

    lo, hi = key_interval([0.1, 0.2, 0.3])
    assert abs((hi - lo) / 2 - 9.9248 * 0.1 * (4 / 3) ** 0.5) < 1e-3 and abs((hi + lo) / 2 - 0.2) < 1e-12
    assert KeyCheck("m", 0.5, [0.5, 0.5, 0.5]).ok and not KeyCheck("m", 0.5001, [0.5, 0.5, 0.5]).ok  # no spread: equal
    assert not KeyCheck("m", 0.5, [0.5, None, 0.5]).ok and KeyCheck("m", 0.5, [0.5, None]).verdict == "missing"


@pytest.mark.slow
def test_reproduce_holds_a_secret_key_cell_against_fresh_keys(capsys, submission):
    """Rotation's per-run key is in no record: the cell is re-run under 3 fresh keys and each published
    value must lie in their 99% prediction interval; a value moved beyond the keys' spread fails."""
    rec = next(p for p in records(submission) if "__rotation__" in p.name and "adaptive" not in p.name)
    args = ["--plugins-dir", TOY, "reproduce", str(rec), "--device", "cpu", "-q"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    rows = [line for line in out.splitlines()[1:] if line.strip()]
    assert rows and all(line.rstrip().endswith("inside the keys' interval") for line in rows)
    assert len(rows[0].split()) == 1 + 1 + 3 + 2 + 4  # metric, published, 3 re-runs, [lo, hi], verdict
    code, _, err = run_cli(capsys, *args, "--keys", "2", "--out", str(submission.parent / "o"))
    assert code == 2 and "drop --out" in err
    data = json.loads(rec.read_text())
    m = data["metrics"]["word_f1"]
    delta = 0.25 if m["value"] < 0.5 else -0.25
    reseal_samples(rec, "word_f1", delta)  # scores, value and (below) CI moved together: a consistent forgery
    reseal(rec, lambda d: d["metrics"]["word_f1"].update(ci_low=m["ci_low"] + delta, ci_high=m["ci_high"] + delta))
    code, out, err = run_cli(capsys, *args, "--keys", "2")
    assert code == 1 and "not reproduced: word_f1" in err
    assert [line.split()[0] for line in out.splitlines() if "OUTSIDE" in line] == ["word_f1"]
    plain = next(p for p in records(submission) if "__none__" in p.name)
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "reproduce", str(plain), "--keys", "3", "-q")
    assert code == 2 and "drop --keys" in err


@pytest.mark.slow
def test_verify_reruns_secret_key_cells_under_fresh_keys(submission):
    from bench.plugins import Host
    from bench.submissions import validate, verify

    problems, valid = validate(submission, submission.parent / "boards")
    assert not problems
    out = verify(Host(plugins_dir=Path(TOY)), valid, cache_dir=submission.parent / "c")
    secret = sorted(json.loads(p.read_text())["cell_id"] for p in records(submission) if "__rotation__" in p.name)
    assert out["status"] == "verified", out
    assert sorted(out["key_runs"]) == secret and set(out["key_runs"].values()) == {3}
    assert all(len(v["word_f1"]["reruns"]) == 3 for v in out["key_values"].values())
    assert "prediction interval" in out["rule"]


@pytest.mark.slow
def test_a_board_version_is_verified_again_by_a_later_rerun(capsys, submission, tmp_path):
    from bench.submissions import board_status

    boards = tmp_path / "boards"
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "add", str(submission), "--board", "toy",
                           "--boards", str(boards), "--verify", "0")
    assert code == 0 and "the board is self-reported" in err
    code, out, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "verify", str(boards / "toy"), "--version", "1",
                             "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    assert "version 2 re-ran version 1's cells: verified; the board is verified" in out
    meta = json.loads((boards / "toy" / "board.json").read_text())
    last = meta["changelog"][-1]
    assert last["reverifies"] == 1 and len(last["verification"]["rerun"]) == 3 and len(last["verification"]["key_runs"]) == 2
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "verify", str(boards / "toy"), "--version", "2")
    assert code == 2 and "no version 2 that added cells: pass one of [1]" in err
    # the rule: a failed version stays failed unless a later re-run of it passed
    v = lambda n, ok, **k: {"version": n, "verification": {"status": "verified" if ok else "self-reported"}, **k}  # noqa: E731
    assert board_status([v(1, False, added=["a"]), v(2, True, added=["b"])]) == "self-reported"
    assert board_status([v(1, False, added=["a"]), v(2, False, reverifies=1), v(3, True, reverifies=1)]) == "verified"


def test_retired_cells_no_longer_decide_whether_a_board_is_verified():
    """Only versions whose cells are still on the board count; a cell retired and added again belongs
    to the version that re-added it."""
    from bench.submissions import board_status

    v = lambda n, ok, **k: {"version": n, "verification": {"status": "verified" if ok else "self-reported"}, **k}  # noqa: E731
    unverified_then_replaced = [v(1, False, added=["a", "b"]), v(2, True, added=["c"]), v(3, False, retired=["a", "b"])]
    assert board_status(unverified_then_replaced) == "verified"
    assert board_status(unverified_then_replaced[:2]) == "self-reported"
    readded = [*unverified_then_replaced, v(4, True, added=["a", "b"])]
    assert board_status(readded) == "verified"
    assert board_status([*readded, v(5, False, added=["d"])]) == "self-reported"
    partly = [v(1, False, added=["a", "b"]), v(2, False, retired=["a"])]  # "b" is still version 1's
    assert board_status(partly) == "self-reported"


def test_validate_refuses_a_resealed_edit_of_word_f1(capsys, submission, tmp_path):
    """The issue's forgery: word_f1 edited to 0.999 and the digest recomputed passes the digest check,
    but not the check against the samples file (nor its own CI)."""
    rec = records(submission)[0]
    reseal(rec, lambda d: d["metrics"]["word_f1"].update(value=0.999))
    code, out, err = validate(capsys, submission, tmp_path / "boards")
    assert code == 1
    assert f"{rec}: word_f1 = 0.999 is not the mean of its samples file's scores" in out
    assert f"{rec}: word_f1 = 0.999 lies outside its own 95% CI" in out
    assert "2 problem(s); 2 record(s) valid" in err


@pytest.mark.slow
def test_add_reruns_cells_and_marks_the_board(capsys, tmp_path):
    # a public defense (noise): its cells re-run to equal values; a secret one's key is in no record
    grid = [x if x != "rotation" else "noise:scale=0.05" for x in GRID]
    submission = tmp_path / "sub"
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "run", *grid, "--out", str(submission), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    boards = tmp_path / "boards"
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "add", str(submission), "--board", "toy", "--boards", str(boards))
    assert code == 0, err
    meta = json.loads((boards / "toy" / "board.json").read_text())
    v = meta["changelog"][-1]["verification"]
    assert meta["verification"] == "verified" and v["status"] == "verified" and v["sample"] == "all" and len(v["rerun"]) == 3
    # more cells than --verify: a stated, seeded sample of them is re-run
    out = tmp_path / "s1"
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "run", *grid, "--seed", "1", "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "add", str(out), "--board", "toy", "--boards", str(boards),
                           "--verify", "2", "--verify-seed", "3")
    assert code == 0, err
    v = json.loads((boards / "toy" / "board.json").read_text())["changelog"][-1]["verification"]
    assert v["sample"] == "2 of 3, drawn with seed 3" and len(v["rerun"]) == 2 and v["status"] == "verified"
    # a submission whose values its cells do not give: added, but the board is self-reported from then on
    out = tmp_path / "s2"
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "run", *grid, "--seed", "2", "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    rec = next(p for p in records(out) if "__none__" in p.name)
    reseal_samples(rec, "word_f1", 0.001)
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "add", str(out), "--board", "toy", "--boards", str(boards))
    assert code == 0, err
    meta = json.loads((boards / "toy" / "board.json").read_text())
    v = meta["changelog"][-1]["verification"]
    cid = json.loads(rec.read_text())["cell_id"]
    assert v["status"] == "self-reported" and v["mismatches"] == {cid: ["word_f1"]}
    assert meta["verification"] == "self-reported" and "the board is self-reported" in err


def test_reproduce_refuses_an_edited_record(capsys, submission, tmp_path):
    rec = records(submission)[0]
    rec.write_text(rec.read_text().replace('"seed": 0', '"seed": 1'))
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "reproduce", str(rec), "--device", "cpu")
    assert code == 2 and "does not match its digest" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/usr/share/wordnet/data.noun"), reason="needs Debian wordnet-base")
def test_reproduce_a_real_bow_record(capsys, tmp_path):
    """Real all-MiniLM-L6-v2 on WordNet, a small attacker split: the re-run gives the published values."""
    out = tmp_path / "res"
    code, _, err = run_cli(capsys, "run", "-a", "bow:adaptive=false,holdout=200", "-d", "noise:scale=0.03",
                           "-D", "wordnet:attacker=1500,leaked=100,target=300,distractors=300", "--no-baseline",
                           "--device", "cpu", "--out", str(out), "--cache-dir", str(tmp_path / "c"), "-q")
    assert code == 0, err
    (rec,) = [p for p in records(out) if p.name.startswith("bow__")]  # beside it, the chance floor's cell
    code, table, err = run_cli(capsys, "reproduce", str(rec), "--device", "cpu", "-q")  # a fresh cache: all recomputed
    assert code == 0, table + err
    # word P/R/F1, ndcg@10, recall@10 and the floor's word P/R/F1: the same values, not only inside the CIs
    assert table_verdicts(table) == {"equal"} and table.count("equal") == 8
    assert "reproduced 8/8 metrics exactly" in err


def test_run_and_build_refuse_an_edited_record(capsys, submission, tmp_path):
    """`bench run` (finding the cell done) and `leaderboard build` refuse an edited record in one line."""
    rec = records(submission)[0]
    rec.write_text(rec.read_text().replace('"n": 80', '"n": 81', 1))
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "run", *GRID, "--out", str(submission), "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and f"{rec.name}: record content does not match its digest" in err
    code, _, err = run_cli(capsys, "leaderboard", "build", str(submission), "--name", "x", "--out", str(tmp_path / "b"))
    assert code == 2 and f"{rec.name}: record content does not match its digest" in err
    assert not (tmp_path / "b").exists()


def test_published_boards_are_sealed():
    """Every published board loads, digest-checked, with its version and changelog."""
    from bench.results import DIGEST_SINCE
    from bench.site.data import load_board

    root = Path(__file__).parents[1] / "leaderboards"
    boards = sorted(d for d in root.iterdir() if (d / "records").is_dir())
    assert len(boards) >= 4
    for folder in boards:
        board = load_board(folder)
        assert all(c.record.schema_version >= DIGEST_SINCE and c.record.digest for c in board.cells), folder
        meta = json.loads((folder / "board.json").read_text())
        assert meta["version"] >= 1 and meta["changelog"], folder


def test_rescore_a_board_from_its_samples(capsys, submission, tmp_path):
    """Re-scoring rewrites what the samples support under today's metrics: a record with an old-style
    bleu (per-sample scores and mean) gets Vec2Text's back, a new version and a changelog entry."""
    boards = tmp_path / "boards"
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "add", str(submission), "--board", "toy", "--boards", str(boards),
                           "--verify", "0")
    assert code == 0, err
    rec = next(p for p in (boards / "toy" / "records").glob("*__none__*.json"))
    before = json.loads(rec.read_text())
    reseal_samples(rec, "bleu", 5.0)  # as if scored with another BLEU
    digest = json.loads(rec.read_text())["digest"]
    code, out, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "rescore", str(boards / "toy"),
                             "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    assert "toy: version 2, 3 cell(s) re-scored" in out
    after = json.loads(rec.read_text())
    assert after["metrics"]["bleu"]["value"] == pytest.approx(before["metrics"]["bleu"]["value"])
    assert after["metrics"]["word_f1"] == before["metrics"]["word_f1"]
    assert after["floor"] == before["floor"] and after["at_chance"] == before["at_chance"]
    entry = json.loads((boards / "toy" / "board.json").read_text())["changelog"][-1]
    assert entry["version"] == 2 and entry["rescored"][after["cell_id"]]["previous_digest"] == digest
    code, out, err = validate(capsys, boards / "toy" / "records", tmp_path / "none")
    assert code == 0, out


def test_rescore_adds_fluency_to_chosen_cells(capsys, submission, tmp_path, monkeypatch):
    """`rescore --fluency --cell ID` adds perplexity and target_perplexity (the judge LM stubbed here:
    tests/test_fluency.py runs the real one) to that cell only, names the judge among its models, and
    the record still validates against its samples."""
    import numpy as np

    import bench.fluency

    monkeypatch.setattr(bench.fluency, "perplexities", lambda texts, device="cpu", **kw: np.array([10.0 + len(t) for t in texts]))
    boards = tmp_path / "boards"
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "leaderboard", "add", str(submission), "--board", "toy", "--boards", str(boards),
                           "--verify", "0")
    assert code == 0, err
    rec = next(p for p in (boards / "toy" / "records").glob("*__none__*.json"))
    cid = json.loads(rec.read_text())["cell_id"]
    args = ["--plugins-dir", TOY, "leaderboard", "rescore", str(boards / "toy"), "--cache-dir", str(tmp_path / "c"), "--fluency"]
    code, _, err = run_cli(capsys, *args, "--cell", "nope")
    assert code == 2 and "no cell nope on board toy" in err
    code, out, err = run_cli(capsys, *args, "--cell", cid)
    assert code == 0 and "1 cell(s) re-scored" in out, err
    after = json.loads(rec.read_text())
    samples = [json.loads(x) for x in (rec.parent / after["samples_file"]).read_text().splitlines()]
    assert after["metrics"]["perplexity"]["value"] == pytest.approx(np.mean([10.0 + len(s["reconstruction"]) for s in samples]))
    assert after["metrics"]["target_perplexity"]["value"] == pytest.approx(np.mean([10.0 + len(s["target"]) for s in samples]))
    assert [m["role"] for m in after["models"]].count("fluency-judge") == 1
    others = [json.loads(p.read_text()) for p in (boards / "toy" / "records").glob("*.json") if p != rec]
    assert all("perplexity" not in o["metrics"] for o in others)
    entry = json.loads((boards / "toy" / "board.json").read_text())["changelog"][-1]
    assert entry["command"].endswith(f"--fluency --cell {cid}") and entry["note"].startswith("added fluency")
    code, out, err = validate(capsys, boards / "toy" / "records", tmp_path / "none")
    assert code == 0, out
