"""file and hf-dataset: the user's own texts, split like wordnet, with one-line errors."""

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

from bench.errors import BenchError

TOY = str(Path(__file__).parent / "toy_plugins")
HAND_MADE = [
    "My sister moved to Lisbon last spring.", "The invoice for March is still unpaid.", "Dr. Chen will call you about the biopsy.",
    "Our wifi password is on the fridge.", "I left the spare key under the blue pot.", "The board meets on Thursday at nine.",
    "Please cancel my dentist appointment.", "The quarterly numbers look worse than expected.", "He was diagnosed with asthma as a child.",
    "We are closing the Denver office in June.", "Her flight lands at gate twelve.", "The contract renewal needs legal review.",
    "My bank changed the card PIN again.", "The kids have swimming lessons on Saturday.", "I am allergic to penicillin.",
    "Send the draft to Maria before lunch.", "The server outage lasted three hours.", "Grandma's recipe uses two cups of sugar.",
    "The landlord raised the rent by ten percent.", "Our team lost the final in overtime.", "The new hire starts on Monday.",
    "I sold the old car to a neighbour.", "The package was left at the wrong door.", "Tom failed his driving test twice.",
    "The lab results came back negative.", "She is pregnant with her second child.", "We booked a cabin near the lake.",
    "The audit found missing receipts.", "My passport expires next year.", "The dog needs his vaccine booster.",
]



def _jsonl(tmp_path, rows, name="mine.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_hand_made_jsonl_runs_through_bow_from_the_cli(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _jsonl(tmp_path, [{"text": t} for t in HAND_MADE])
    code, out, err = run_cli(capsys, "--plugins-dir", TOY, "run", "-a", "bow:adaptive=false,features=32", "-e", "toy-hash",
                             "-D", f"file:path={path}", "--cache-dir", str(tmp_path / "cache"))
    assert code == 0, err
    recs = {r["attack"]["name"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json"))}
    assert sorted(recs) == ["bow", "chance"]  # the chance floor's cell runs beside it
    rec = recs["bow"]
    assert rec["status"] == "ok" and rec["dataset"]["name"] == "file" and "word_f1" in rec["floor"]
    info = rec["dataset_info"]
    assert info["counts"] == {"target": 6, "defender": 0, "leaked": 3, "attacker": 21} and len(info["sha256"]) == 64
    assert rec["metrics"]["word_f1"]["n"] == 6 and "| bow" in out


def test_splits_are_deterministic_disjoint_grouped_and_sized(host, tmp_path):
    rows = [{"id": f"r{i}", "body": f"sentence number {i} about topic {i % 7}", "doc": f"d{i // 3}"} for i in range(300)]
    path = _jsonl(tmp_path, rows)
    spec = {"path": str(path), "column": "body", "group_column": "doc", "target": 30, "leaked": 20, "attacker": 100, "defender": 10}
    a, b = host.make("datasets", "file", spec).load(), host.make("datasets", "file", spec).load()
    assert a.target.ids == b.target.ids and a.attacker.ids == b.attacker.ids
    parts = [a.target, a.defender, a.leaked, a.attacker]
    assert [len(p) for p in parts] == [30, 10, 20, 100]
    ids = [i for p in parts for i in p.ids]
    assert len(ids) == len(set(ids))
    doc_of = {r["id"]: r["doc"] for r in rows}
    # whole groups: only the group cut at a split's end may lose texts, never share them with another split
    assert not ({doc_of[i] for i in a.target.ids} & {doc_of[i] for i in a.attacker.ids})
    other = host.make("datasets", "file", {**spec, "split_seed": 1}).load()
    assert other.target.ids != a.target.ids
    bigger = host.make("datasets", "file", {**spec, "attacker": 150}).load()
    assert bigger.target.ids == a.target.ids  # the target split is filled first


@pytest.mark.parametrize("fmt", ["csv", "tsv", "txt", "json"])
def test_other_formats(host, tmp_path, fmt):
    texts = [f"line {i} of the file" for i in range(40)]
    if fmt == "txt":
        (tmp_path / "t.txt").write_text("\n".join(texts) + "\n\n")
    elif fmt == "json":
        (tmp_path / "t.json").write_text(json.dumps([{"text": t} for t in texts]))
    else:
        sep = "," if fmt == "csv" else "\t"
        (tmp_path / f"t.{fmt}").write_text(f"id{sep}text\n" + "".join(f"x{i}{sep}{t}\n" for i, t in enumerate(texts)))
    data = host.make("datasets", "file", {"path": str(tmp_path / f"t.{fmt}")}).load()
    assert sorted(data.target.texts + data.leaked.texts + data.attacker.texts) == sorted(texts)
    assert data.info["format"] == fmt and (data.target.ids[0].startswith("x") if fmt in ("csv", "tsv") else True)


def test_retrieval_corpus_and_qrels_give_utility(host, tmp_path):
    texts = [f"question {i} about item {i}" for i in range(50)]
    path = _jsonl(tmp_path, [{"id": f"q{i}", "text": t} for i, t in enumerate(texts)])
    corpus = _jsonl(tmp_path, [{"id": f"d{i}", "text": f"answer for item {i}"} for i in range(50)], "corpus.jsonl")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(50)))
    data = host.make("datasets", "file", {"path": str(path), "corpus": str(corpus), "qrels": str(qrels)}).load()
    assert all(data.retrieval.qrels[t] == {"d" + t[1:]} for t in data.target.ids)
    assert data.info["n_corpus"] == 50 and len(data.info["qrels_sha256"]) == 64


@pytest.mark.parametrize(
    "setup, params, message",
    [
        (None, {"path": "/nonexistent/x.jsonl"}, "data file /nonexistent/x.jsonl does not exist"),
        ("rows", {"column": "body"}, "row 1 has no field 'body' (it has id, text): pass column="),
        ("badjson", {}, "is not a JSON line"),
        ("rows", {"corpus": "/nonexistent/c.jsonl"}, "needs both corpus=FILE and qrels=FILE"),
        ("rows", {"corpus": "/nonexistent/c.jsonl", "qrels": "/nonexistent/q.tsv"}, "corpus file /nonexistent/c.jsonl does not exist"),
        ("rows", {"target": 500}, "does not fit"),
        ("dupes", {}, "ids repeat"),
        ("nulltext", {}, "row 31 has 'text': null: give every row a value there"),
        ("numtext", {}, "row 31 has 'text': 5 (a number), not a string: write it as one (e.g. \"5\")"),
        ("listid", {}, "row 31 has 'id': [1] (a list), not a string or an integer"),
    ],
)
def test_user_data_errors_are_one_line(host, tmp_path, setup, params, message):
    path = tmp_path / "d.jsonl"
    if setup == "rows":
        _jsonl(tmp_path, [{"id": str(i), "text": f"text {i}"} for i in range(30)], "d.jsonl")
    elif setup == "badjson":
        path.write_text('{"text": "ok"}\n{"text": broken\n')
    elif setup == "dupes":
        _jsonl(tmp_path, [{"id": "same", "text": f"text {i}"} for i in range(30)], "d.jsonl")
    elif setup in ("nulltext", "numtext", "listid"):  # 30 good rows, then a bad 31st
        bad = {"nulltext": {"id": "x", "text": None}, "numtext": {"id": "x", "text": 5}, "listid": {"id": [1], "text": "t"}}[setup]
        _jsonl(tmp_path, [{"id": i, "text": f"text {i}"} for i in range(30)] + [bad], "d.jsonl")
    with pytest.raises(BenchError) as e:
        host.make("datasets", "file", {"path": str(path), **params}).load()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_column_from_the_cli_exits_2_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _jsonl(tmp_path, [{"body": t} for t in HAND_MADE])
    code, _, err = run_cli(capsys, "run", "-a", "bow", "-D", f"file:path={path}")
    assert code == 2 and "has no field 'text'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_hf_dataset_from_a_local_folder(host, tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"sentence": [f"hf sentence {i}" for i in range(60)], "uid": [f"u{i}" for i in range(60)]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    spec = {"path": str(tmp_path / "ds"), "column": "sentence", "id_column": "uid"}
    data = host.make("datasets", "hf-dataset", spec).load()
    assert len(data.target) == 12 and data.target.ids[0].startswith("u")
    assert data.info["texts_sha256"] == host.make("datasets", "hf-dataset", spec).load().info["texts_sha256"]
    with pytest.raises(BenchError, match="has no column 'text' .* pass column="):
        host.make("datasets", "hf-dataset", {"path": str(tmp_path / "ds")}).load()
    with pytest.raises(BenchError, match="does not exist"):
        host.make("datasets", "hf-dataset", {"path": str(tmp_path / "missing")}).load()
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(BenchError, match="has splits \\['train'\\], not 'test'"):
        host.make("datasets", "hf-dataset", {**spec, "path": str(tmp_path / "dd"), "split": "test"}).load()
