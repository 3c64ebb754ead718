"""Fluency: perplexity of each text reconstruction (and its target) under a judge LM no attack uses."""

import math

import numpy as np
import pytest

import bench.fluency as fl
from bench import fetch
from bench.metrics import directions
from bench.settings import Settings
from tests.tiny_models import tiny_llama


def _manual_ppl(folder, text):
    """exp(mean NLL of the tokens after BOS), one text at a time, no padding."""
    import torch

    tok, model = fl.load_judge(str(folder))
    ids = torch.tensor([[tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1]
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:])
    return math.exp(float(nll))


def test_perplexity_is_per_text_whatever_the_batch(tmp_path, monkeypatch, one_thread):
    folder = tiny_llama(tmp_path / "judge")
    monkeypatch.setattr(fl, "judge_dir", lambda cache_dir=None: folder)
    texts = ["the cat runs", "a big old dog sleeps under the tree", "", "red"]
    got = fl.perplexities(texts, batch=3, cache_dir=tmp_path / "c1")
    one = fl.perplexities(texts, batch=1, cache_dir=tmp_path / "c2")
    assert np.isnan(got[2]) and np.isnan(one[2])
    for i in (0, 1, 3):
        assert got[i] == pytest.approx(_manual_ppl(folder, texts[i]), rel=1e-4)
        assert one[i] == pytest.approx(got[i], rel=1e-4)
    monkeypatch.setattr(fl, "load_judge", lambda *a: pytest.fail("recomputed instead of read from the cache"))
    assert np.allclose(fl.perplexities(texts, batch=3, cache_dir=tmp_path / "c1"), got, equal_nan=True)


def test_declared_once_with_directions():
    assert directions(["perplexity", "target_perplexity"]) == {"perplexity": False, "target_perplexity": None}


def test_runner_reports_fluency_for_text_attacks_only_when_asked(toy_host, tmp_path, monkeypatch, one_thread):
    from bench.runner import Runner, build_grid

    folder = tiny_llama(tmp_path / "judge")
    monkeypatch.setattr(fl, "judge_dir", lambda cache_dir=None: folder)
    cells = build_grid(toy_host, ["nearest:adaptive=false", "bow"], ["none"], ["toy-hash"], ["toy:target=6,attacker=200,leaked=10"], [0])
    runner = Runner(toy_host, tmp_path / "out", settings=Settings(cache_dir=tmp_path / "cache", progress=False, fluency=True))
    runner.prepare(cells)
    recs = {r.attack.name: r for r in runner.run(cells)}
    near, bow = recs["nearest"], recs["bow"]
    assert near.status == "ok" and bow.status == "ok", (near.error, bow.error)
    assert near.metrics["perplexity"].higher_is_better is False and near.metrics["perplexity"].n == 6
    assert near.metrics["target_perplexity"].higher_is_better is None and near.metrics["perplexity"].value > 1
    assert any(m.role == "fluency-judge" for m in near.models)
    assert "perplexity" not in bow.metrics  # a bag of words has no reading order to judge
    plain = Runner(toy_host, tmp_path / "out2", settings=Settings(cache_dir=tmp_path / "cache", progress=False))
    plain.prepare(cells[:1])
    assert "perplexity" not in plain.run(cells[:1])[0].metrics


def test_cli_fluency_flag_and_config_key(tmp_path, capsys):
    from tests.cli_helpers import run_cli

    cfg = tmp_path / "grid.toml"
    cfg.write_text('attacks = ["bow"]\nfluency = "yes"\n')
    code, _, err = run_cli(capsys, "run", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 2 and "fluency" in err and "Traceback" not in err


@pytest.mark.slow
def test_real_judge_prefers_the_sentence_to_its_word_salad(tmp_path):
    """Gemma 3 270M from its PyPI part wheels (in the wheelhouse after `make fluency`)."""
    names = [fetch.wheel_name(f"{fl.GGUF_PACKAGE}-part{i}", fl.GGUF_VERSION) for i in range(1, fl.GGUF_PARTS + 1)]
    if not all((fetch.wheelhouse() / n).is_file() for n in names):
        pytest.skip(f"Gemma 3 270M's GGUF parts are not in {fetch.wheelhouse()}: run `make fluency`")
    sentence = "Cusco is a city in southeastern Peru, near the Sacred Valley of the Andes mountain range."
    salad = "Peru the Andes city Valley mountain of is near range, southeastern a Sacred in Cusco the."
    ppl = fl.perplexities([sentence, salad], cache_dir=tmp_path / "cache")
    assert fl.gguf_path(tmp_path / "cache").is_file()
    assert 1 < ppl[0] < 100 and ppl[1] > 5 * ppl[0]
