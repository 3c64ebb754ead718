import json

import pandas as pd
import pytest

from bench import results
from bench.api import ThreatModel
from bench.cache import atomic_write_bytes
from bench.errors import BenchError
from bench.results import ComponentConfig, Provenance, ResultRecord


def _record(**kw):
    c = ComponentConfig(name="x")
    base = dict(cell_id="abc", attack=c, defense=c, embedder=c, dataset=c, seed=0, threat_model=ThreatModel(),
                provenance=Provenance(package_version="0"))
    return ResultRecord(**{**base, **kw})


def test_atomic_write_never_overwrites(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_bytes(p, b"1")
    with pytest.raises(FileExistsError):
        atomic_write_bytes(p, b"2")
    assert p.read_bytes() == b"1" and [f.name for f in tmp_path.iterdir()] == ["a.json"]
    atomic_write_bytes(p, b"3", overwrite=True)
    assert p.read_bytes() == b"3"


def test_record_roundtrip_and_no_overwrite(tmp_path):
    path = results.write_record(tmp_path, _record(), [{"id": 1}])
    assert results.load_record(path).samples_file.endswith(".samples.jsonl")
    with pytest.raises(FileExistsError):
        results.write_record(tmp_path, _record(), None)
    assert results.record_path(tmp_path, "abc") == path


def test_migration_and_future_versions(tmp_path, monkeypatch):
    data = json.loads(_record().model_dump_json())
    data["schema_version"] = 0
    data["queries"] = data["provenance"].pop("victim_queries")  # pretend v0 kept it at the top level

    def v0_to_v1(d, attacks):
        d["provenance"]["victim_queries"] = d.pop("queries")
        return d

    monkeypatch.setitem(results.MIGRATIONS, 0, v0_to_v1)
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert results.load_record(tmp_path / "old.json").provenance.victim_queries == 0
    data["schema_version"] = 99
    (tmp_path / "new.json").write_text(json.dumps(data))
    with pytest.raises(BenchError, match="new.json: record schema 99 is newer than this bench"):
        results.load_record(tmp_path / "new.json")


def test_schema_1_records_get_declared_directions_and_headline(tmp_path):
    from bench.api import Attack
    from bench.metrics import Metric

    class Declaring(Attack):
        name = "declaring"
        metrics = (Metric("nbr_f1", True, "a score"), Metric("nbr_f1_chance", None, "a chance level"))
        headline = ("nbr_f1@10", "bleu")

    data = json.loads(_record(attack=ComponentConfig(name="declaring")).model_dump_json())
    data["schema_version"] = 1
    data.pop("headline")
    value = {"value": 0.5, "higher_is_better": True, "n": 3}  # schema 1 stored every metric as higher-is-better
    data["metrics"] = {k: dict(value) for k in ("word_f1", "queries", "nbr_f1@10", "nbr_f1_chance@10", "unknown")}
    data["utility"] = {"ndcg@10": dict(value)}
    rec = results.load_record(data=json.loads(json.dumps(data)), attacks={"declaring": Declaring}.__getitem__)
    hib = {k: m.higher_is_better for k, m in rec.metrics.items()}
    assert hib == {"word_f1": True, "queries": False, "nbr_f1@10": True, "nbr_f1_chance@10": None, "unknown": True}
    assert rec.utility["ndcg@10"].higher_is_better is True and rec.headline == ["nbr_f1@10", "bleu"]
    assert rec.schema_version == results.SCHEMA_VERSION
    # the attack is not installed: shared declarations only, no headline (tables show every metric)
    data["attack"]["name"] = "gone"
    rec = results.load_record(data=json.loads(json.dumps(data)), attacks={"declaring": Declaring}.__getitem__)
    assert rec.metrics["queries"].higher_is_better is False and rec.metrics["nbr_f1_chance@10"].higher_is_better is True
    assert rec.headline is None


def test_schema_doc_documents_every_record_key():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "docs" / "schema.md").read_text()
    for model in (ResultRecord, Provenance, results.MetricValue, ThreatModel):
        for name in model.model_fields:
            assert f"`{name}`" in readme, f"docs/schema.md does not document result key {name!r}"


def test_leaderboard_rows_sort_numbers_by_value():
    from bench.leaderboard import _natural

    assert sorted(["pairs=1000", "pairs=5", "pairs=10", "pairs=1"], key=_natural) == ["pairs=1", "pairs=5", "pairs=10", "pairs=1000"]
    scales = ["noise(scale=0.1)", "noise(scale=0.001)", "noise(scale=0.03)"]
    assert sorted(scales, key=_natural) == ["noise(scale=0.001)", "noise(scale=0.03)", "noise(scale=0.1)"]


def test_record_digest_refuses_edits(tmp_path):
    """An edited number, a removed digest or an edited samples file: refused, one line naming the file."""
    rec = _record(metrics={"word_f1": results.MetricValue(value=0.4, ci_low=0.38, ci_high=0.42)})
    path = results.write_record(tmp_path, rec, [{"id": 1, "target": "a b", "reconstruction": ["a"], "scores": {"word_f1": 0.4}}])
    data = json.loads(path.read_text())
    assert data["digest"] == results.content_digest(data) and len(data["samples_sha256"]) == 64
    assert results.load_record(path).metrics["word_f1"].value == 0.4
    original = path.read_text()
    path.write_text(original.replace('"value": 0.4', '"value": 0.999'))
    with pytest.raises(BenchError, match=f"{path.name}: record content does not match its digest"):
        results.load_record(path)
    with pytest.raises(BenchError, match="does not match its digest"):
        results.load_records([tmp_path])
    del data["digest"]
    path.write_text(json.dumps(data))
    with pytest.raises(BenchError, match="record has no content digest"):
        results.load_record(path)
    path.write_text(original)
    samples = tmp_path / data["samples_file"]
    samples.write_text(samples.read_text().replace('"a b"', '"a c"'))
    with pytest.raises(BenchError, match=r"samples\.jsonl: samples file does not match"):
        results.load_record(path)


def test_duplicate_cells_load_once(tmp_path):
    for sub in ("a", "b"):
        results.write_record(tmp_path / sub, _record(), None)
    assert len(results.load_records([tmp_path / "a", tmp_path / "b"])) == 1


def test_truncated_record_names_the_file(tmp_path):
    path = results.write_record(tmp_path, _record(), None)
    path.write_text(path.read_text()[:50])
    with pytest.raises(BenchError, match=f"{path.name}: not a readable result record"):
        results.load_record(path)


def test_a_board_with_several_seeds_gets_the_mean_and_the_spread_between_seeds(tmp_path):
    import statistics

    from bench import leaderboard
    from bench.results import MetricValue

    def rec(seed, defense, f1, at_chance=()):
        return _record(cell_id=f"c{seed}{defense}", seed=seed, defense=ComponentConfig(name=defense),
                       metrics={"word_f1": MetricValue(value=f1, ci_low=f1 - 0.01, ci_high=f1 + 0.01, n=10)},
                       at_chance=list(at_chance))

    one = [rec(0, "none", 0.5), rec(0, "noise", 0.2)]
    assert "Across seeds" not in leaderboard.to_markdown(leaderboard.frame(one))
    many = one + [rec(1, "none", 0.4), rec(2, "none", 0.45), rec(1, "noise", 0.1, ["word_f1"])]
    md = leaderboard.to_markdown(leaderboard.frame(many))
    sd = statistics.stdev([0.5, 0.4, 0.45])
    assert f"| none      | 0,1,2   | 0.450 ±{sd:.3f}" in md, md
    assert "| noise     | 0,1     | 0.150 ±0.071 ≈" in md, md  # at chance in one of its seeds
    leaderboard.write(many, tmp_path, "b")
    rows = json.loads((tmp_path / "b" / "leaderboard.json").read_text())["across_seeds"]
    assert [(r["defense"], r["seeds"], round(r["word_f1"], 6)) for r in rows] == [("none", 3, 0.45), ("noise", 2, 0.15)]


def test_a_board_of_error_records_only_builds():
    from bench import leaderboard

    md = leaderboard.to_markdown(leaderboard.frame([_record(status="error", error="boom")]))
    assert "Across seeds" not in md and "| x        | naive  | x         |" in md


def test_a_board_without_a_chance_cell_gets_the_floor_row_its_records_carry():
    from bench import leaderboard
    from bench.results import MetricValue

    def mv(v):
        return MetricValue(value=v, ci_low=v - 0.02, ci_high=v + 0.02, n=50)

    def rec(cid, attack, floor, f1=0.4):
        return _record(cell_id=cid, attack=ComponentConfig(name=attack), metrics={"word_f1": mv(f1), "bleu": mv(9.0)},
                       floor=floor)

    same = {"word_f1": mv(0.15), "bleu": mv(6.5)}
    df = leaderboard.frame([rec("a", "bow", same), rec("b", "geia", {**same, "bleu": mv(3.0)})])
    (chance,) = df[df["attack"] == "chance"].to_dict("records")
    assert chance["word_f1"] == 0.15 and chance["word_f1_lo"] == pytest.approx(0.13) and pd.isna(chance["cell_id"])
    assert pd.isna(chance["bleu"])  # the records disagree on this floor: blank, never one of them picked
    assert "| chance   | naive  |" in leaderboard.to_markdown(df)
    # a board with its chance cell keeps that row only; records without a floor add none
    with_cell = leaderboard.frame([rec("a", "bow", same), rec("c", "chance", {}, f1=0.15)])
    assert list(with_cell["attack"]).count("chance") == 1 and with_cell["cell_id"].notna().all()
    assert "chance" not in set(leaderboard.frame([rec("a", "bow", {})])["attack"])
