"""pca and pq: fitted on the defender's data (never the targets), cached, and run through the runner."""

import numpy as np
import pytest

from bench.cache import load_arrays
from bench.errors import BenchError
from bench.runner import Runner, build_grid


def _run(host, tmp_path, attacks, defenses, dataset="toy", embedder="toy-hash"):
    cells = build_grid(host, attacks, defenses, [embedder], [dataset], [0], baseline=False)
    runner = Runner(host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    return runner, runner.run(cells)


def _texts_file(tmp_path, n=400, seed=0, name="texts.jsonl"):
    """A JSONL of random toy sentences (the toy embedder's vocabulary)."""
    import json

    from toy_plugins.toy import WORDS

    rng = np.random.default_rng(seed)
    path = tmp_path / name
    path.write_text("".join(json.dumps({"text": " ".join(rng.choice(WORDS, size=5, replace=False))}) + "\n" for _ in range(n)))
    return path


@pytest.mark.parametrize("split", ["defender", "corpus"])
def test_pca_is_fitted_on_the_defenders_data_not_the_targets(toy_host, tmp_path, split):
    import json

    path = _texts_file(tmp_path)
    spec = f"file:path={path},target=50,leaked=20"
    if split == "defender":
        spec += ",defender=100"
    else:  # a retrieval corpus of other sentences, each relevant to one target
        corpus = _texts_file(tmp_path, n=120, seed=1, name="corpus.jsonl")
        rows = [json.loads(x) for x in corpus.read_text().splitlines()]
        corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": r["text"]}) + "\n" for i, r in enumerate(rows)))
        qrels = tmp_path / "qrels.tsv"
        qrels.write_text("query-id\tcorpus-id\n" + "".join(f"{i}\td{i % 120}\n" for i in range(1, 401)))
        spec += f",corpus={corpus},qrels={qrels}"
    runner, recs = _run(toy_host, tmp_path, ["nearest:adaptive=false"], ["pca:k=8"], dataset=spec)
    rec = recs[0]
    assert rec.status == "ok", rec.error
    data = runner.splits(toy_host.make("datasets", "file", dict(kv.split("=", 1) for kv in spec.split(":", 1)[1].split(","))))
    fit_texts = data.defender.texts if split == "defender" else data.retrieval.corpus_texts
    assert rec.defense_info["fitted_on"] == {"split": split, "n": len(fit_texts)}
    assert not set(fit_texts) & set(data.target.texts)
    emb = toy_host.make("embedders", "toy-hash")
    fit, targets = emb.embed(fit_texts), emb.embed(data.target.texts)
    (state_file,) = (tmp_path / "cache" / "defenses").glob("pca-*.safetensors")
    state = load_arrays(state_file)
    assert np.allclose(state["mean"], fit.mean(0), atol=1e-5)
    assert not np.allclose(state["mean"], targets.mean(0), atol=1e-3)
    _, _, vt = np.linalg.svd(fit - fit.mean(0), full_matrices=False)
    assert np.allclose(np.abs(state["basis"] @ vt[:8].T), np.eye(8), atol=1e-3)  # the defender data's top-8 axes


def test_pca_keeps_dimension_and_projects(host):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((300, 32)).astype(np.float32)
    pca = host.make("defenses", "pca", {"k": 4})
    state = pca.fit(data, rng)
    out = pca.defend(data[:10], rng, state)
    assert out.shape == (10, 32)
    centred = out - state["mean"]
    assert np.linalg.matrix_rank(centred, tol=1e-4) == 4
    assert np.allclose(pca.defend(out, rng, state), out, atol=1e-5)  # a projection


def test_pq_replaces_vectors_by_their_reconstruction(host):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((600, 32)).astype(np.float32)
    errors = []
    for m in (2, 8, 16):
        pq = host.make("defenses", "pq", {"m": m, "nbits": 4})
        state = pq.fit(data, np.random.default_rng(1))
        assert state["centroids"].shape == (m, 16, 32 // m)
        out = pq.defend(data, rng, state)
        assert out.shape == data.shape
        for j in range(m):  # every sub-vector is one of that sub-space's centroids
            sub = out[:, j * (32 // m) : (j + 1) * (32 // m)]
            d = ((sub[:, None, :] - state["centroids"][j][None]) ** 2).sum(-1).min(1)
            assert d.max() < 1e-8
        assert np.allclose(pq.defend(out, rng, state), out, atol=1e-6)  # decoding a code gives the same code
        errors.append(float(((out - data) ** 2).sum(1).mean()))
        assert pq.privacy(32)["code_bits"] == m * 4
    assert errors[0] > errors[1] > errors[2]  # more bits, closer reconstruction


def test_bad_fitted_parameters_fail_before_any_cell(toy_host, tmp_path):
    for spec, msg in [("pq:m=7,nbits=4", "must divide the victim's dimension 64"),
                      ("pq:m=8,nbits=8", "needs at least 256 defender embeddings"),
                      ("pca:k=65", "exceeds the victim's dimension 64")]:
        cells = build_grid(toy_host, ["nearest:adaptive=false"], [spec], ["toy-hash"], ["toy"], [0], baseline=False)
        runner = Runner(toy_host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
        with pytest.raises(BenchError, match=msg):
            runner.prepare(cells)
        assert not (tmp_path / "out").exists()


def test_fitted_defense_needs_defender_data(toy_host, tmp_path):
    from bench.api import DatasetSplits, Split
    from bench.defender import defender_data

    empty = DatasetSplits(attacker=Split([], []), leaked=Split([], []), target=Split(["a"], ["x"]))
    with pytest.raises(BenchError, match="neither a defender split nor a retrieval corpus"):
        defender_data(empty, "mine", "pca")
    mine = DatasetSplits(attacker=Split([], []), leaked=Split([], []), target=Split(["a"], ["x"]), defender=Split(["d"], ["y"]))
    assert defender_data(mine, "mine", "pca") == ("defender", ["y"])


def test_every_new_defense_runs_with_adaptive_attacker_and_records_its_parameter(toy_host, tmp_path):
    specs = ["dp:epsilon=1000", "ldp:epsilon=3", "pca:k=16", "pq:m=8,nbits=4"]
    _, recs = _run(toy_host, tmp_path, ["bow:features=64,holdout=100"], specs)
    assert len(recs) == 8 and all(r.status == "ok" for r in recs), [r.error for r in recs]
    by = {(r.defense.name, r.attack.params["adaptive"]): r for r in recs}
    assert by[("dp", False)].defense_info["sigma"] > 0 and by[("ldp", True)].defense_info["epsilon_total"] == 3 * 64
    assert by[("pq", True)].defense_info["code_bits"] == 32 and by[("pca", False)].defense_info["fitted_on"]["split"] == "corpus"
    for r in recs:
        assert "ndcg@10" in r.utility
