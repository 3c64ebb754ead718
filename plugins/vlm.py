"""Local vision-language models for attacks: a transformers image-text-to-text model behind the
same ``chat(conversations)`` as the LLM backends of ``bench_plugins.llm`` (OpenAI-style messages
whose image parts are base64 data URLs), greedy, safetensors only, no remote code."""

from __future__ import annotations

import base64
import io
from typing import Any

from bench.errors import BenchError
from bench.models import describe


def data_url_image(url: str):
    from PIL import Image

    head, _, data = url.partition(",")
    if not head.startswith("data:image/") or ";base64" not in head:
        raise BenchError(f"the local VLM reads images from base64 data URLs only, got {url[:40]!r}")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


class LocalVLM:
    """A transformers image-text-to-text model (AutoProcessor + AutoModelForImageTextToText) with
    ``chat(conversations)`` over OpenAI-style messages, like ``bench_plugins.llm.LocalLM``."""

    def __init__(self, ref: str, device: str = "cpu"):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from bench.models import quiet_loading
        from bench_plugins.llm import resolve

        source, self.identity = resolve(ref)
        self.ref, self.device = ref, device
        try:
            with quiet_loading():
                self.processor = AutoProcessor.from_pretrained(str(source), trust_remote_code=False)
                self.model = AutoModelForImageTextToText.from_pretrained(str(source), trust_remote_code=False, use_safetensors=True, dtype=torch.float32)
        except Exception as e:  # noqa: BLE001 - any load failure is one line
            raise BenchError(f"cannot load VLM {ref!r} from {source} (a transformers image-text-to-text model with safetensors weights): {describe(e)}") from None
        self.model.eval().to(device)
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise BenchError(f"VLM {ref!r}: its processor has no tokenizer")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def info(self) -> dict[str, Any]:
        return {k: v for k, v in self.identity.items() if k != "path"}

    def _prompt(self, messages: list[dict[str, Any]]) -> tuple[str, list]:
        images, msgs = [], []
        for m in messages:
            content = m["content"]
            if isinstance(content, str):
                msgs.append({"role": m["role"], "content": [{"type": "text", "text": content}]})
                continue
            parts = []
            for part in content:
                if part["type"] == "image_url":
                    images.append(data_url_image(part["image_url"]["url"]))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            msgs.append({"role": m["role"], "content": parts})
        if getattr(self.processor, "chat_template", None):
            prompt = self.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        else:
            token = getattr(self.processor, "image_token", "<image>")
            prompt = "\n".join(token if p["type"] == "image" else p["text"] for m in msgs for p in m["content"]) + "\n"
        return prompt, images

    def chat(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int = 64, batch_size: int = 4) -> list[str]:
        import torch

        out = []
        self.tokenizer.padding_side = "left"
        with torch.inference_mode():
            for s in range(0, len(conversations), batch_size):
                prompts, images = zip(*(self._prompt(c) for c in conversations[s : s + batch_size]))
                flat = [im for ims in images for im in ims]
                enc = self.processor(images=flat or None, text=list(prompts), return_tensors="pt", padding=True).to(self.device)
                gen = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
                new = gen if self.model.config.is_encoder_decoder else gen[:, enc["input_ids"].shape[1] :]
                out += self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return out
