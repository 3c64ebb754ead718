"""Victim-guided text search: a language model proposes, the victim's cosine chooses.

The pieces of zero-shot inversion (ZSInvert, Zhang et al. 2025; Zero2Text, 2026) that any attack can
reuse:

* :class:`VictimScorer` - cosine of texts to one target vector through the victim's counted query
  interface. Each distinct text is asked once (a real attacker keeps the answers it paid for: a
  repeat is never sent, so it is never charged), in large batches, and never past the victim's
  remaining query budget (texts it could not afford score ``-inf``).
* :class:`GuidedDecoder` - token-level beam search with a causal LM: each beam proposes its top-k
  next tokens (LM log-prob plus an optional logit bias toward prior words), the victim scores every
  partial text, the best ``beam`` survive. The LM's key/value cache is reused across steps
  (reordered with the surviving beams), so each step feeds one token per beam.
* :func:`edit_search` - word-level local search: delete a word, or insert one of a pool of candidate
  words (e.g. a bag-of-words attacker's predictions), whichever raises ``cosine - penalty * words``
  the most, until nothing does (the penalty is the length control: a longer text covers more of the
  embedding, so without it the text keeps growing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


class VictimScorer:
    """Cosines of texts to ``target`` via ``query(texts) -> vectors``; each text is queried at most once.

    ``remaining()`` returns how many more texts may be asked (None: no limit); once it hits zero the
    scorer is ``exhausted`` and unseen texts score ``-inf``, so a search keeps its best so far.
    ``dedup=False`` and ``batch=1`` give the plain loop (for speed comparisons only).
    """

    def __init__(self, query: Callable[[list[str]], np.ndarray], target: np.ndarray,
                 remaining: Callable[[], int | None] = lambda: None, batch: int = 1024, dedup: bool = True):
        t = np.asarray(target, np.float32).ravel()
        self.target = t / max(float(np.linalg.norm(t)), 1e-12)
        self.query = query
        self.remaining = remaining
        self.batch = batch
        self.dedup = dedup
        self.memo: dict[str, float] = {}
        self.asked = 0  # texts sent to the victim
        self.exhausted = False

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        new = [t for t in dict.fromkeys(texts) if t not in self.memo] if self.dedup else list(texts)
        left = self.remaining()
        if left is not None and len(new) > left:
            new = new[: max(left, 0)]
            self.exhausted = True
        scores: dict[str, float] = {}
        for i in range(0, len(new), self.batch):
            chunk = new[i : i + self.batch]
            emb = np.asarray(self.query(chunk), np.float32)
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            self.asked += len(chunk)
            for t, c in zip(chunk, emb @ self.target):
                scores[t] = float(c)
        if self.dedup:
            self.memo.update(scores)
            scores = self.memo
        return np.array([scores.get(t, -np.inf) for t in texts], np.float64)

    def best(self) -> tuple[str, float]:
        """The highest-cosine text asked so far."""
        if not self.memo:
            return "", -np.inf
        text = max(self.memo, key=self.memo.get)
        return text, self.memo[text]


@dataclass
class Beam:
    ids: list[int]
    logp: float = 0.0


@dataclass
class DecodeResult:
    text: str  # best by the mixed score among every scored partial text
    cosine: float
    beams: list[str] = field(default_factory=list)  # the final beams


class GuidedDecoder:
    """Beam search over a causal LM's next tokens, ranked by victim cosine (+ ``lm_weight`` x mean log-prob)."""

    def __init__(self, model, tokenizer, device: str = "cpu", use_cache: bool = True):
        self.use_cache = use_cache  # False: re-run the whole sequence every step (the plain loop)
        self.model = model
        self.tok = tokenizer
        self.device = device
        vocab = len(tokenizer)
        self.vocab = max(vocab, int(getattr(model.config, "vocab_size", vocab)))
        self.banned = sorted({i for i in (tokenizer.all_special_ids or []) if i is not None and i < self.vocab})
        self._word_cache: dict[str, list[int]] = {}

    def word_tokens(self, word: str) -> list[int]:
        """First token ids of a word as it starts a text, follows a space, or is capitalised."""
        if word not in self._word_cache:
            ids = set()
            for form in (word, " " + word, word.capitalize(), " " + word.capitalize()):
                enc = self.tok.encode(form, add_special_tokens=False)
                if enc and enc[0] not in self.banned and enc[0] != self.tok.unk_token_id:
                    ids.add(enc[0])
            self._word_cache[word] = sorted(ids)
        return self._word_cache[word]

    def bias(self, weights: dict[str, float]):
        """A logit bias vector: each word's first tokens get its weight (the largest when shared)."""
        import torch

        b = torch.zeros(self.vocab)
        for w, v in weights.items():
            for i in self.word_tokens(w):
                b[i] = max(float(b[i]), float(v))
        return b

    def prompt_ids(self, instruction: str) -> list[int]:
        tok = self.tok
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True)
            return tok.encode(text, add_special_tokens=False)
        return tok.encode(instruction + "\n", add_special_tokens=True)

    def _forward(self, input_ids, past):
        import warnings

        import torch

        # transformers 5.x renames the argument (`cache`) but 4.40+, which we support, knows only this one
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
            out = self.model(input_ids=input_ids, past_key_values=past, use_cache=True)
        return out.logits[:, -1, :].float(), out.past_key_values

    def decode(self, instruction: str, scorer: Callable[[list[str]], np.ndarray], beam: int = 4, top_k: int = 8,
               max_tokens: int = 16, bias=None, lm_weight: float = 0.0, patience: int | None = 3,
               use_cache: bool | None = None) -> DecodeResult:
        """Victim-guided beam search from the LM's reply to ``instruction``.

        ``patience``: stop when the best cosine has not improved for this many steps (None: run to
        ``max_tokens``). ``use_cache`` False re-runs the whole sequence at every step (the plain loop;
        default: the decoder's setting).
        """
        import torch

        use_cache = self.use_cache if use_cache is None else use_cache
        prompt = self.prompt_ids(instruction)
        beams = [Beam([])]
        logits, past = self._forward(torch.tensor([prompt], device=self.device), None)
        best_text, best_cos, best_mix, since = "", -np.inf, -np.inf, 0
        banned = torch.tensor(self.banned, dtype=torch.long) if self.banned else None
        for _step in range(max_tokens):
            logp = torch.log_softmax(logits, dim=-1).cpu()[:, : self.vocab]
            proposal = logp + bias[: logp.shape[1]] if bias is not None else logp.clone()
            if banned is not None:
                proposal[:, banned] = -np.inf
            k = min(top_k, proposal.shape[1])
            top = torch.topk(proposal, k, dim=-1).indices
            cands, texts = [], []
            for b, bm in enumerate(beams):
                for t in top[b].tolist():
                    ids = bm.ids + [t]
                    cands.append((b, t, bm.logp + float(logp[b, t])))
                    texts.append(self.tok.decode(ids, skip_special_tokens=True).strip())
            cos = scorer(texts)
            if not np.isfinite(cos).any():
                break  # the query budget is spent
            mix = cos + lm_weight * np.array([lp / (len(beams[b].ids) + 1) for b, _, lp in cands])
            order = np.argsort(-mix, kind="stable")
            chosen, seen = [], set()
            for j in order:
                if not np.isfinite(cos[j]) or texts[j] in seen or not texts[j]:
                    continue
                seen.add(texts[j])
                chosen.append(int(j))
                if len(chosen) == beam:
                    break
            if not chosen:
                break
            j0 = chosen[0]
            if mix[j0] > best_mix + 1e-6:
                best_mix, best_text, best_cos, since = float(mix[j0]), texts[j0], float(cos[j0]), 0
            else:
                since += 1
                if patience is not None and since >= patience:
                    break
            parents = [cands[j][0] for j in chosen]
            new_tokens = [cands[j][1] for j in chosen]
            beams = [Beam(beams[cands[j][0]].ids + [cands[j][1]], cands[j][2]) for j in chosen]
            if use_cache:
                past.reorder_cache(torch.tensor(parents, device=self.device))
                logits, past = self._forward(torch.tensor(new_tokens, device=self.device).unsqueeze(1), past)
            else:
                full = torch.tensor([prompt + bm.ids for bm in beams], device=self.device)
                logits, past = self._forward(full, None)
        return DecodeResult(best_text, best_cos, [self.tok.decode(b.ids, skip_special_tokens=True).strip() for b in beams])


def join(words: Sequence[str]) -> str:
    return " ".join(words)


def edit_search(start: Sequence[str], pool: Sequence[str], scorer: Callable[[list[str]], np.ndarray],
                penalty: float = 0.0, max_steps: int = 20, max_words: int = 32,
                on_step: Callable[[list[str], float], None] | None = None) -> tuple[list[str], float]:
    """Greedy word edits (delete any word; insert a pool word at the start or end, or after any word
    when ``max_words`` allows) maximising ``cosine - penalty * len(words)``.

    Returns the final words and their cosine. Stops when no edit helps, after ``max_steps``, or when
    the scorer's budget is spent (then the best so far is kept).
    """
    cur = list(start)
    cur_cos = float(scorer([join(cur)])[0]) if cur else -1.0
    if not np.isfinite(cur_cos):
        cur_cos = -1.0
    for _ in range(max_steps):
        moves = [cur[:i] + cur[i + 1 :] for i in range(len(cur))] if len(cur) > 1 else []
        if len(cur) < max_words:
            present = set(cur)
            for w in pool:
                if w in present:
                    continue
                moves.append([w] + cur)
                moves.append(cur + [w])
        if not moves:
            break
        cos = scorer([join(m) for m in moves])
        gain = cos - penalty * np.array([len(m) for m in moves]) - (cur_cos - penalty * len(cur))
        j = int(np.argmax(gain))
        if not np.isfinite(cos[j]) or gain[j] <= 1e-6:
            break
        cur, cur_cos = moves[j], float(cos[j])
        if on_step:
            on_step(cur, cur_cos)
        if getattr(scorer, "exhausted", False):
            break
    return cur, cur_cos
