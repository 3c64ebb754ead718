"""Built-in plugins, loaded through the same hooks as third-party ones.

``PLUGINS`` lists the modules that hold a hook implementation; the host registers each of them.
The other modules are what those plugins are made of: the victim families that ``embedders``
registers (``st_embedders``, ``hf_embedder``, ``api_embedder``, ``clip``), the model backends
(``llm``, ``vlm``, ``diffusion``), ``tags``, and the attacks' parts (``attacks.textinv``,
``attacks.slime_*``, ``attacks.vec2text_compat``).
"""

PLUGINS = (
    "bench_plugins.datasets.wordnet",
    "bench_plugins.datasets.pii_notes",
    "bench_plugins.datasets.coco",
    "bench_plugins.datasets.wikipedia",
    "bench_plugins.datasets.brown",
    "bench_plugins.userdata",
    "bench_plugins.embedders",
    "bench_plugins.mpnet",
    "bench_plugins.embeddinggemma",
    "bench_plugins.defenses",
    "bench_plugins.dp",
    "bench_plugins.compression",
    "bench_plugins.attacks.bow",
    "bench_plugins.attacks.nearest",
    "bench_plugins.attacks.chance",
    "bench_plugins.attacks.slime",
    "bench_plugins.attacks.slime_adaptive",
    "bench_plugins.attacks.vec2text",
    "bench_plugins.attacks.geia",
    "bench_plugins.attacks.zsinvert",
)
