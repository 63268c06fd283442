"""Generation backends behind one small interface: the ``fast`` engine (`frugalthink.generation.decoding`, the default, CPU/GPU),
Hugging Face ``generate`` (``hf``, CPU/GPU) and vLLM (GPU, optional).

Token accounting, the same everywhere in frugalthink: ``tokens`` = generated tokens up to and including the first
EOS (the prompt is not counted); ``truncated`` = no EOS within ``max_new_tokens`` (then ``tokens`` =
``max_new_tokens``).

Sampling, the same everywhere: ``softmax(logits / T)`` (argmax at ``T == 0``), restricted to the nucleus when
``top_p < 1`` (the smallest set of most probable tokens whose probability reaches ``top_p``,
`frugalthink.generation.decoding.nucleus`; ``generate`` and vLLM apply their own top-p with the same rule); no top-k.
``top_p`` is a keyword with default 1.0, and wrappers pass it on only when it is below 1, so callers and generators
written before it existed keep working unchanged.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass


@dataclass
class Generation:
    text: str
    tokens: int
    truncated: bool


def _split_at_eos(ids: list[int], eos_ids: set[int], pad_id: int | None) -> tuple[list[int], bool]:
    for i, t in enumerate(ids):
        if t in eos_ids:
            return ids[: i + 1], False
    # no EOS: strip right padding that generate() adds after other rows finished (never a real token here)
    while ids and pad_id is not None and ids[-1] == pad_id and pad_id not in eos_ids:
        ids = ids[:-1]
    return ids, True


ENGINES = ("fast", "generate")


class HFGenerator:
    """Batched sampling with a Hugging Face causal LM: KV cache, left padding, stop at EOS. ``engine="fast"`` runs
    `frugalthink.generation.decoding.sample` (backend name ``fast``), ``engine="generate"`` the library's ``generate``
    (backend name ``hf``); both take the same prompt ids and return the same records."""

    def __init__(self, model_path: str, device: str | None = None, dtype: str | None = None, threads: int | None = None,
                 engine: str = "fast"):
        import torch

        from frugalthink.generation.model_files import load_causal_lm, load_tokenizer

        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.engine = engine
        self.name = "fast" if engine == "fast" else "hf"

        if threads:
            torch.set_num_threads(threads)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(dtype or "")
        if torch_dtype is None:
            torch_dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tokenizer = load_tokenizer(model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.eos_token_id is None:
            from frugalthink.util.errors import UserError

            raise UserError(f"{model_path}: the tokenizer has no EOS token, so no completion could ever end")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = load_causal_lm(model_path, dtype=torch_dtype)
        self.model = model.to(self.device).eval()
        self.context_length = getattr(model.config, "max_position_embeddings", None)
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos if eos is not None else self.tokenizer.eos_token_id]
        self.eos_ids = {int(e) for e in eos} | {int(self.tokenizer.eos_token_id)}
        if engine == "fast":
            from frugalthink.generation.decoding import check_supported

            check_supported(self.model)

    def encode(self, prompts: list[str]) -> dict:
        """Left-padded ``input_ids``/``attention_mask`` from `frugalthink.tasks.prompts.encode_prompt` (training's ids)."""
        import torch

        from frugalthink.tasks.prompts import encode_prompt

        rows = [encode_prompt(self.tokenizer, p) for p in prompts]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def generate(self, prompts: list[str], max_new_tokens: int, temperature: float, seed: int,
                 top_p: float = 1.0) -> list[Generation]:
        import torch

        from frugalthink.tasks.prompts import decode_completion, encode_prompt

        torch.manual_seed(seed)
        if self.device == "cuda":
            torch.cuda.manual_seed_all(seed)
        if self.engine == "fast":
            from frugalthink.generation.decoding import sample

            rows = sample(self.model, [encode_prompt(self.tokenizer, p) for p in prompts], max_new_tokens,
                          temperature, self.eos_ids, self.tokenizer.pad_token_id, top_p=top_p)
            return [Generation(decode_completion(self.tokenizer, ids, self.eos_ids), len(ids),
                               not ids or ids[-1] not in self.eos_ids) for ids in rows]
        enc = self.encode(prompts)
        sample = temperature > 0
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=top_p if sample else None,
                top_k=0 if sample else None,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=sorted(self.eos_ids),
            )
        gens = []
        width = enc["input_ids"].shape[1]
        for row in out[:, width:].tolist():
            ids, truncated = _split_at_eos(row, self.eos_ids, self.tokenizer.pad_token_id)
            gens.append(Generation(decode_completion(self.tokenizer, ids, self.eos_ids), len(ids), truncated))
        return gens

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def timed(self, prompt: str, max_new_tokens: int, temperature: float, seed: int,
              top_p: float = 1.0) -> tuple[Generation, float]:
        return time_one_request(self, prompt, max_new_tokens, temperature, seed, top_p)


class VLLMGenerator:
    """vLLM backend (``pip install frugalthink[gpu]``, GPU only); same records as `HFGenerator`."""

    name = "vllm"

    def __init__(self, model_path: str, dtype: str | None = None, gpu_memory_utilization: float = 0.85, llm=None):
        if llm is None:
            try:
                from vllm import LLM
            except ImportError as exc:
                from frugalthink.util.errors import UserError

                raise UserError("--backend vllm needs vLLM: pip install 'frugalthink[gpu]' on a GPU machine") from exc
            llm = LLM(model=model_path, dtype=dtype or "bfloat16", gpu_memory_utilization=gpu_memory_utilization)
        self.llm = llm
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_ids = {int(self.tokenizer.eos_token_id)}
        try:
            self.context_length = int(self.llm.llm_engine.model_config.max_model_len)
        except (AttributeError, TypeError, ValueError):
            self.context_length = None

    def requests(self, prompts: list[str]) -> list[dict]:
        """What is sent to vLLM: token ids from `frugalthink.tasks.prompts.encode_prompt`, never raw strings (vLLM would
        tokenize them with special tokens added, a second BOS for templates that write their own)."""
        from frugalthink.tasks.prompts import encode_prompt

        return [{"prompt_token_ids": encode_prompt(self.tokenizer, p)} for p in prompts]

    def completion(self, token_ids, finish_reason: str | None) -> Generation:
        """A vLLM output as a `Generation`, decoded as every other backend and the reward decode."""
        from frugalthink.tasks.prompts import decode_completion

        ids = list(token_ids)
        return Generation(decode_completion(self.tokenizer, ids, self.eos_ids), len(ids), finish_reason == "length")

    def generate(self, prompts: list[str], max_new_tokens: int, temperature: float, seed: int,
                 top_p: float = 1.0) -> list[Generation]:
        from vllm import SamplingParams

        params = [SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=s)
                  for s in request_seeds(seed, len(prompts))]
        outs = self.llm.generate(self.requests(prompts), params, use_tqdm=False)
        return [self.completion(o.outputs[0].token_ids, o.outputs[0].finish_reason) for o in outs]

    def sync(self) -> None:
        """vLLM's generate returns after its work is done."""

    def timed(self, prompt: str, max_new_tokens: int, temperature: float, seed: int,
              top_p: float = 1.0) -> tuple[Generation, float]:
        return time_one_request(self, prompt, max_new_tokens, temperature, seed, top_p)


class BudgetForcedGenerator:
    """The generation-cutoff baseline ("budget forcing") around any backend: total tokens never exceed ``budget``.

    The model thinks for at most ``budget - len(force_text) - answer_tokens`` tokens. A completion that finished by
    then is kept as it is. One that did not gets ``force_text`` appended (the task's "stop thinking, answer now",
    e.g. ``</think>\\boxed{``; if the model had already closed its thinking, only the part after ``</think>``) and
    the model continues for at most ``answer_tokens``. Its token count is thinking + forced + answer tokens, all
    counted, so it is at most ``budget``.
    """

    def __init__(self, inner, budget: int, force_text: str, answer_tokens: int, think_close: str = "</think>") -> None:
        from frugalthink.util.errors import UserError

        self.inner, self.tokenizer, self.budget = inner, inner.tokenizer, budget
        self.context_length = getattr(inner, "context_length", None)
        self.name = f"{inner.name}+cutoff{budget}"
        self.force_text, self.answer_tokens, self.think_close = force_text, answer_tokens, think_close
        self.think_budget = budget - self._count(force_text) - answer_tokens
        if self.think_budget < 1:
            raise UserError(f"budget {budget} leaves no room to think: the forced answer alone takes "
                            f"{self._count(force_text)} + {answer_tokens} tokens")

    def _count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _forced(self, text: str) -> str:
        if self.think_close in text and self.think_close in self.force_text:
            return self.force_text.split(self.think_close, 1)[1]
        return self.force_text

    def generate(self, prompts: list[str], max_new_tokens: int, temperature: float, seed: int,
                 top_p: float = 1.0) -> list[Generation]:
        nucleus = top_p_kwargs(top_p)
        first = self.inner.generate(prompts, min(max_new_tokens, self.think_budget), temperature, seed, **nucleus)
        cut = [i for i, g in enumerate(first) if g.truncated]
        if not cut:
            return first
        forced = {i: self._forced(first[i].text) for i in cut}
        second = self.inner.generate([prompts[i] + first[i].text + forced[i] for i in cut], self.answer_tokens,
                                     temperature, seed + 7919, **nucleus)
        out = list(first)
        for i, g in zip(cut, second, strict=True):
            out[i] = Generation(first[i].text + forced[i] + g.text, first[i].tokens + self._count(forced[i]) + g.tokens,
                                g.truncated)
        return out

    def sync(self) -> None:
        self.inner.sync()

    def timed(self, prompt: str, max_new_tokens: int, temperature: float, seed: int,
              top_p: float = 1.0) -> tuple[Generation, float]:
        return time_one_request(self, prompt, max_new_tokens, temperature, seed, top_p)


def request_seeds(seed: int, n: int) -> list[int]:
    """One sampling seed per request of a batch, derived from (batch seed, position). ``seed + i`` would repeat
    across batches, whose seeds are consecutive, and give identical samples of the same prompt."""
    return [random.Random(f"{seed}-{i}").getrandbits(31) for i in range(n)]


def top_p_kwargs(top_p: float) -> dict:
    """``{"top_p": top_p}`` below 1, else ``{}``: how a wrapper passes top-p on, so that at 1 the inner generator is
    called exactly as before top-p existed."""
    return {"top_p": top_p} if top_p < 1.0 else {}


def time_one_request(gen, prompt: str, max_new_tokens: int, temperature: float, seed: int,
                     top_p: float = 1.0) -> tuple[Generation, float]:
    """One request alone on ``gen``; returns the generation and its wall-clock latency in ms."""
    gen.sync()
    t0 = time.perf_counter()
    (out,) = gen.generate([prompt], max_new_tokens, temperature, seed, **top_p_kwargs(top_p))
    gen.sync()
    return out, 1000 * (time.perf_counter() - t0)


BACKENDS = ("fast", "hf", "vllm")


def make_generator(backend: str, model_path: str, **kwargs):
    if backend in ("fast", "hf"):
        return HFGenerator(model_path, engine="fast" if backend == "fast" else "generate", **kwargs)
    if backend == "vllm":
        return VLLMGenerator(model_path, **{k: v for k, v in kwargs.items() if k == "dtype"})
    from frugalthink.util.errors import UserError

    raise UserError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
