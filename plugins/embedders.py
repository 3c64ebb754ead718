"""Built-in victim embedders, registered here and kept by family in their own modules:
all-MiniLM-L6-v2 and sentence-transformers (``bench_plugins.st_embedders``), Hugging Face AutoModel
(``bench_plugins.hf_embedder``), OpenAI-compatible APIs (``bench_plugins.api_embedder``), and the
image towers of CLIP / open_clip models (``clip``, ``open_clip``: ``modality = "image"``;
``bench_plugins.clip``). This module stays the one plugin that registers them, so every record's
``plugin`` (``bench_plugins.embedders``) is what it was.

Conventions shared by the victim embedders:

* ``load(device)`` takes ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; calling it again with another device
  moves the loaded model. ``embed`` returns ``np.float32`` of shape ``[n, dim]`` on the CPU, in the
  order of the input texts.
* ``fingerprint()`` lists everything that changes the vectors. It loads the model (on the CPU) if
  ``load`` was not called, so it is always computable. ``weights_sha256`` is the SHA-256 of the
  model's weight files (``bench.models.weights_sha256``), memoised under the cache root's
  ``fingerprints/`` so a 90 MB model is hashed once.
* ``pretrained`` says whether the weights are trained. A local model directory (or hub snapshot)
  that contains a file named ``bench_random_init.json`` (``bench.models.RANDOM_INIT_MARKER``) is taken to be
  randomly initialised and gives ``pretrained = False``; tests and tiny toy models write that
  marker, and results from such victims must say they are not from a pretrained model.
* Weights are loaded from safetensors only; pickled ``*.bin`` checkpoints are refused.
* Heavy libraries (torch, transformers, sentence-transformers) are imported on ``load``, so listing
  plugins stays fast.
"""

from __future__ import annotations

from bench.hookspecs import hookimpl
from bench.models import (  # noqa: F401 - RANDOM_INIT_MARKER and the hashing helpers: importable from here, as before
    RANDOM_INIT_MARKER,
    cuda_dtype,
    file_sha256,
    gpu_batch_size,
    state_dict_sha256,
    weights_digest,
    weights_sha256,
)
from bench_plugins.api_embedder import PROBE_TEXTS, OpenAIEmbedder  # noqa: F401 - importable from here, as before
from bench_plugins.clip import CLIPEmbedder, OpenCLIPEmbedder
from bench_plugins.hf_embedder import HFEmbedder
from bench_plugins.st_embedders import MINILM_ID, MiniLM, SentenceTransformerEmbedder  # noqa: F401 - importable from here, as before


@hookimpl
def register_embedders(register):
    register(MiniLM)
    register(SentenceTransformerEmbedder)
    register(HFEmbedder)
    register(OpenAIEmbedder)
    register(CLIPEmbedder)
    register(OpenCLIPEmbedder)
