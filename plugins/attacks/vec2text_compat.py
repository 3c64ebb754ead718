"""The ``vec2text`` package (Morris et al. 2023) run offline under transformers 5: the patches the
``vec2text`` attack's pretrained mode applies while loading the published checkpoints (hub-only
metric loading, the embedder the package would load itself, the T5 backbone built from its
config, ``post_init``, ``length_penalty``, dynamo logging) and the hook that re-embeds every
hypothesis through the counted victim oracle. Its own module, so the attack keeps only the science.
"""

from __future__ import annotations

import numpy as np

from bench.errors import BenchError
from bench.models import describe


def import_vec2text():
    """``import vec2text`` with its import-time side effects undone; a BenchError when missing.

    * ``vec2text.experiments`` calls ``torch._logging.set_logs(dynamo=logging.INFO)`` at import,
      which floods every later torch.compile with INFO logs: set back to WARNING here.
    * Its wheel also installs a top-level ``tests`` package into site-packages; nothing here
      imports ``tests`` (our test folder has no ``__init__.py`` and pytest imports it by path),
      but a project that does ``import tests`` after installing vec2text gets theirs.
    * The import takes ~10 s (datasets, evaluate, sentence-transformers): done lazily, only in
      pretrained mode.
    """
    import importlib.util
    import logging

    if importlib.util.find_spec("vec2text") is None:
        raise BenchError("pretrained_corrector needs the vec2text package: pip install vec2text (or leave pretrained_corrector unset to train)")
    try:
        import vec2text
    except Exception as e:  # noqa: BLE001
        raise BenchError(f"import vec2text failed ({describe(e, 160)}): pip install vec2text and its dependencies") from None
    try:
        import torch._logging

        torch._logging.set_logs(dynamo=logging.WARNING)
    except (ImportError, AttributeError):
        pass
    return vec2text


def no_embedder(dim: int):
    """Stands in for the embedder vec2text's InversionModel would load itself (GTR from the hub):
    ``vec2text_modules.NoEmbedder``, imported on first use."""
    from bench_plugins.attacks.vec2text_modules import NoEmbedder

    return NoEmbedder(dim)


def load_vec2text_corrector(hyp_ref: str, corr_ref: str, backbone: str | None, device: str, victim_dim: int):
    """(vec2text module, Corrector, dims) for published (or local) vec2text checkpoints, offline.

    What is bypassed, and why:

    * ``BaseTrainer.__init__`` calls ``evaluate.load("accuracy"|"sacrebleu"|"rouge")``, which
      downloads metric scripts from the hub: patched to a no-op during construction (the bench
      computes its own metrics; the trainers' metric objects are only used in their eval loops).
    * ``InversionModel.__init__`` loads its embedder (e.g. GTR-base) from the hub: replaced by
      :func:`no_embedder` of the victim's dimension; every hypothesis is re-embedded by the victim.
    * The checkpoints name their T5 as ``t5-base`` (hub): ``pretrained_backbone`` (a local folder)
      replaces ``model_name_or_path`` in both configs.
    * Both model classes call ``AutoModelForSeq2SeqLM.from_pretrained`` (the T5 backbone) inside
      their ``__init__``, which transformers 5 refuses under ``from_pretrained``'s meta-device init
      and which would download t5-base: during loading the backbone is built from its *config* only
      (``from_config``); its weights come from the vec2text checkpoint, which holds them all.
    * Neither calls ``post_init()`` (transformers 5 needs it): added while loading.
    * ``CorrectorEncoderModel`` hard-codes a 768-d embedder (1536 with an API embedder): a victim of
      another dimension is refused with a clear error (train one with the default trained mode).
    * Under transformers 5 the T5 generation config's ``length_penalty`` is None, and
      ``Corrector._generate_with_beam`` raises a TypeError on ``length ** None``: set to 1.0.
    """
    import contextlib
    from unittest import mock

    import torch
    import transformers

    from bench.models import check_no_pickle_only, model_dir

    for ref in (hyp_ref, corr_ref, backbone):  # safetensors only: a pickle-only folder is refused before loading
        if ref:
            check_no_pickle_only(ref, model_dir(ref))
    v2t = import_vec2text()
    overrides = {"model_name_or_path": backbone} if backbone else {}
    patches = [
        mock.patch.object(v2t.models.inversion, "load_embedder_and_tokenizer", lambda *a, **k: (no_embedder(victim_dim), None)),
        mock.patch.object(v2t.trainers.base.evaluate, "load", lambda *a, **k: None),
        mock.patch.object(transformers.AutoModelForSeq2SeqLM, "from_pretrained", seq2seq_from_config),
    ]
    for cls in (v2t.models.InversionModel, v2t.models.CorrectorEncoderModel):
        patches.append(mock.patch.object(cls, "__init__", with_post_init(cls.__init__)))
    try:
        with contextlib.ExitStack() as stack:
            for pt in patches:
                stack.enter_context(pt)
            inversion = v2t.models.InversionModel.from_pretrained(hyp_ref, use_safetensors=True, **overrides)
            corr_model = v2t.models.CorrectorEncoderModel.from_pretrained(corr_ref, use_safetensors=True, **overrides)
            if corr_model.embedder_dim != victim_dim or inversion.embedder_dim != victim_dim:
                raise BenchError(
                    f"vec2text corrector {corr_ref!r} takes {corr_model.embedder_dim}-d embeddings but the victim gives {victim_dim}-d: "
                    f"the published correctors invert GTR-base (768) or ada-002 (1536); for this victim train one (leave pretrained_corrector unset)"
                )
            for m in (corr_model.encoder_decoder, inversion.encoder_decoder):
                gc = getattr(m, "generation_config", None)
                if gc is not None and getattr(gc, "length_penalty", None) is None:
                    gc.length_penalty = 1.0  # transformers 5: None breaks Corrector._generate_with_beam
            corrector = v2t.load_corrector(inversion, corr_model)
    except BenchError:
        raise
    except Exception as e:  # noqa: BLE001
        raise BenchError(
            f"cannot load vec2text models {hyp_ref!r} / {corr_ref!r}: {describe(e)} "
            f"(offline: pass local folders, and pretrained_backbone=<local t5-base folder>)"
        ) from None
    dev = torch.device(device)
    inversion.to(dev).eval()
    corr_model.to(dev).eval()
    return v2t, corrector, (inversion.embedder_dim, corr_model.embedder_dim)


def with_post_init(init):
    """vec2text's models never call ``post_init()``, which transformers 5's ``from_pretrained`` needs
    (it sets ``all_tied_weights_keys``): call it after their ``__init__`` while loading."""

    def __init__(self, config, *a, **k):
        init(self, config, *a, **k)
        if not hasattr(self, "all_tied_weights_keys"):
            self.post_init()

    return __init__


def seq2seq_from_config(name, *args, **kwargs):
    """Stand-in for ``AutoModelForSeq2SeqLM.from_pretrained`` while vec2text models are loaded."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(name))


def route_embeddings_through_victim(corrector, victim) -> None:
    """Make the package re-embed every hypothesis with counted ``victim.query`` calls."""
    import torch

    def embed_generated_hypothesis(input_ids: torch.Tensor) -> torch.Tensor:
        texts = corrector.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        vecs = victim.query([" ".join(t.split()) for t in texts], split="vec2text-corrections")
        return torch.from_numpy(np.asarray(vecs, np.float32)).to(input_ids.device)

    corrector.embed_generated_hypothesis = embed_generated_hypothesis
