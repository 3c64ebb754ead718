"""Tiny randomly initialised models for tests (marked not pretrained, saved as safetensors)."""

import json
from pathlib import Path

TOY_WORDS = (
    "the a cat dog bird fish runs eats sleeps sings swims red blue green small big old young "
    "house tree river road park city quickly slowly happily under over near far with"
).split()


def tiny_llama(folder: Path, seed: int = 0, extra_words: tuple[str, ...] = (), max_positions: int = 256) -> Path:
    """A 2-layer random Llama (hidden 32), a word-level tokenizer over the toy words, a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(specials + TOY_WORDS + list(extra_words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins word tokens with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=max_positions, pad_token_id=1, bos_token_id=2, eos_token_id=3,
    )
    model = LlamaForCausalLM(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    (folder / "bench_random_init.json").write_text(json.dumps({"seed": seed}))
    return folder
