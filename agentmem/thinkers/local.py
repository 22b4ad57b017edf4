"""LocalThinker: a chat model run in-process with torch + transformers.

`LocalThinker()` runs the offline default model (Qwen2.5-Coder-1.5B-Instruct, shipped as GGUF parts on PyPI);
`LocalThinker("smollm2")` the tiny SmolLM2-135M test model; `LocalThinker("<hf id or path>")` anything transformers
can load. GGUF files are dequantized once and cached as safetensors (see model_files), so only the very first load
is slow. torch and transformers are imported on first use, never at import time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from agentmem.thinkers._thinking import THINK_CLOSE, THINK_OPEN, plain_message, split_thinking
from agentmem.thinkers.base import ThinkerError, ThinkerStats, ThinkRequest, ThinkResult

__all__ = ["SMOLLM2", "LocalThinker"]

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
_DEFAULT_ALIASES = {None, "", "default", "local"}
# Chat end markers that GGUF-derived generation configs sometimes leave out of eos_token_id.
_EXTRA_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def _dequantize_kw() -> dict:
    """Ask transformers (>=5 with the packed-GGUF loader) for a plain dense model: same weights on every load,
    serializable, and loadable back from the safetensors cache."""
    try:
        from transformers import GgufConfig  # type: ignore[attr-defined]
    except ImportError:  # older transformers always dequantize GGUF
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _converted_key(sha256: str, dtype: Any) -> str:
    return f"{sha256[:32]}-{str(dtype).removeprefix('torch.')}"


def _strip_gguf_quantizer(mdl: Any) -> None:
    """A dequantized GGUF model is a plain model; drop the quantizer so save_pretrained accepts it."""
    q = getattr(mdl, "hf_quantizer", None)
    if q is None:
        return
    cfg = getattr(q, "quantization_config", None)
    method = getattr(getattr(cfg, "quant_method", None), "value", getattr(cfg, "quant_method", None))
    if str(method) == "gguf" and getattr(cfg, "dequantize", True) and not getattr(q, "packed_modules", None):
        q.remove_quantization_config(mdl)


class LocalThinker:
    """A Thinker backed by a local transformers model. Loads lazily (thread-safe) on the first call.

    Args:
        model: HF model id or local path (a model dir or a `.gguf` file); None = the offline default model;
            "smollm2" = the small test model.
        gguf_file: GGUF file name inside `model` (a local dir or a hub repo), as in transformers' from_pretrained.
        device: "cuda", "cpu", ...; default CUDA when available, else CPU.
        dtype: torch dtype or its name; default bfloat16 on CUDA, float32 on CPU.
        enable_thinking: passed to the chat template (Qwen3-style thinking switch); None = template default.
            When the output carries a `<think>` block, `text` is the trace and `answer` what follows.
        cache_converted: save dequantized GGUF weights as safetensors in the cache and reload from there.
        cache_dir: overrides $AGENTMEM_CACHE_DIR / the platform cache dir.
        repetition_penalty: optional, applied on top of greedy decoding (None = plain greedy).
        num_threads: if given (or $AGENTMEM_TORCH_THREADS), torch.set_num_threads at load (process-wide). On a
            box whose cores are busy with other work, 1 thread can be several times faster than the default.
        trust_remote_code, revision: passed to from_pretrained for hub/dir models.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        gguf_file: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        enable_thinking: bool | None = None,
        cache_converted: bool = True,
        cache_dir: str | os.PathLike | None = None,
        repetition_penalty: float | None = None,
        num_threads: int | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        name: str | None = None,
    ) -> None:
        self.model_spec = None if model is None else str(model)
        self.gguf_file = gguf_file
        self._device_arg = device
        self._dtype_arg = dtype
        self.enable_thinking = enable_thinking
        self.cache_converted = cache_converted
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.repetition_penalty = repetition_penalty
        self.num_threads = num_threads
        self.trust_remote_code = trust_remote_code
        self.revision = revision
        self.label = self._label()
        self.name = name or f"local:{self.label}"
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.device: str | None = None
        self.dtype: Any = None
        self.loaded_from: str | None = None  # "gguf", "converted-cache" or "pretrained", after load
        self.load_seconds: float | None = None
        self.last_timing: dict = {}  # prefill_s (time to first token) and decode_s of the latest call
        self.backend = "transformers"
        self.stats = ThinkerStats()

    # ------------------------------------------------------------------------------------------------- loading

    def _label(self) -> str:
        from agentmem.thinkers import model_files

        spec = self.model_spec
        if spec in _DEFAULT_ALIASES:
            return model_files.DEFAULT_GGUF_NAME.removesuffix(".gguf")
        if spec == SMOLLM2:
            return "smollm2-135m-instruct-q4_1"
        if self.gguf_file:
            return f"{spec}/{self.gguf_file}"
        return spec  # type: ignore[return-value]

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _resolve(self) -> tuple[str, str | None, Path | None, str | None]:
        """(from_pretrained path/id, gguf file name, local gguf path, known sha256) for this spec."""
        from agentmem.thinkers import model_files

        spec = self.model_spec
        if spec in _DEFAULT_ALIASES and not self.gguf_file:
            path = model_files.default_gguf_path(self.cache_dir)
            return str(path.parent), path.name, path, model_files.DEFAULT_GGUF_SHA256
        if spec == SMOLLM2 and not self.gguf_file:
            path = model_files.smollm2_gguf_path()
            return str(path.parent), path.name, path, None
        assert spec is not None
        p = Path(spec).expanduser()
        if self.gguf_file:
            g = Path(self.gguf_file).expanduser()
            cand = g if g.is_absolute() else p / g
            if cand.is_file():
                return str(cand.parent), cand.name, cand, None
            return spec, self.gguf_file, None, None  # a GGUF inside a hub repo
        if p.is_file() and p.suffix.lower() == ".gguf":
            return str(p.parent), p.name, p, None
        return spec, None, None, None

    def _gguf_sha(self, gguf_path: Path) -> str:
        from agentmem.thinkers import model_files

        cache = self.cache_dir if self.cache_dir is not None else model_files.cache_dir()
        return model_files.verified_sha256(gguf_path, marker_dir=cache / "hashes")

    def converted_path(self) -> Path | None:
        """Where this thinker's dequantized-weights cache lives (whether or not it exists yet); None when the
        model is not a local GGUF. Resolving the default model joins its parts if needed."""
        from agentmem.thinkers import model_files

        _, _, gguf_path, sha = self._resolve()
        if gguf_path is None:
            return None
        _, _, dtype = self._torch_setup()
        return model_files.converted_dir(_converted_key(sha or self._gguf_sha(gguf_path), dtype), self.cache_dir)

    def _torch_setup(self) -> tuple[Any, str, Any]:
        import torch

        threads = self.num_threads or int(os.environ.get("AGENTMEM_TORCH_THREADS", "0") or 0)
        if threads > 0 and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        device = self._device_arg or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self._dtype_arg
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype.removeprefix("torch."))
        if dtype is None:
            dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
        return torch, device, dtype

    @staticmethod
    def _dtype_kw(dtype: Any) -> dict:
        import transformers

        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from agentmem.thinkers import model_files

        torch, device, dtype = self._torch_setup()
        source, gguf_name, gguf_path, sha = self._resolve()
        dtype_kw = self._dtype_kw(dtype)
        dtype_name = str(dtype).removeprefix("torch.")

        if gguf_path is not None:
            sha = sha or self._gguf_sha(gguf_path)
            key = _converted_key(sha, dtype)
            conv = model_files.find_converted(key, self.cache_dir) if self.cache_converted else None
            if conv is not None:
                try:
                    tok = AutoTokenizer.from_pretrained(conv, local_files_only=True)
                    mdl = AutoModelForCausalLM.from_pretrained(conv, local_files_only=True, **dtype_kw)
                    self._finish_load(mdl, tok, device, dtype, "converted-cache")
                    return
                except Exception as e:  # a damaged cache must not make the model unusable
                    log.warning("agentmem: converted cache %s unusable (%s); rebuilding it from the GGUF", conv, e)
                    model_files.discard_converted(key, self.cache_dir)
            tok = AutoTokenizer.from_pretrained(source, gguf_file=gguf_name, local_files_only=True)
            mdl = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_name, local_files_only=True,
                                                       **_dequantize_kw(), **dtype_kw)
            _strip_gguf_quantizer(mdl)
            if self.cache_converted:
                try:
                    def write(tmp: Path) -> None:
                        mdl.save_pretrained(tmp)
                        tok.save_pretrained(tmp)

                    model_files.save_converted(key, write, self.cache_dir,
                                               info={"gguf": str(gguf_path), "sha256": sha, "dtype": dtype_name})
                except Exception as e:
                    log.warning("agentmem: could not cache dequantized weights (%s); next load re-reads GGUF", e)
            self._finish_load(mdl, tok, device, dtype, "gguf")
            return

        kw: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision:
            kw["revision"] = self.revision
        if gguf_name:
            kw["gguf_file"] = gguf_name
        tok = AutoTokenizer.from_pretrained(source, **kw)
        mdl = AutoModelForCausalLM.from_pretrained(source, **kw, **dtype_kw)
        self._finish_load(mdl, tok, device, dtype, "pretrained")

    def _finish_load(self, mdl: Any, tok: Any, device: str, dtype: Any, how: str) -> None:
        mdl = mdl.to(device=device, dtype=dtype)
        mdl.eval()
        stop_ids: list[int] = []
        for cand in (mdl.generation_config.eos_token_id, tok.eos_token_id):
            if isinstance(cand, int):
                stop_ids.append(cand)
            elif cand:
                stop_ids.extend(int(c) for c in cand)
        vocab = tok.get_vocab()
        for t in _EXTRA_STOP_TOKENS:
            if t in vocab and t in set(tok.all_special_tokens) | {str(x) for x in tok.added_tokens_decoder.values()}:
                stop_ids.append(int(vocab[t]))
        self._stop_ids = sorted(set(stop_ids))
        pad = tok.pad_token_id if tok.pad_token_id is not None else mdl.generation_config.pad_token_id
        self._pad_id = pad if pad is not None else (self._stop_ids[0] if self._stop_ids else 0)
        think_ids = {tok.convert_tokens_to_ids(t) for t in (THINK_OPEN, THINK_CLOSE) if t in vocab}
        self._drop_ids = set(tok.all_special_ids) - think_ids
        self._model, self._tokenizer = mdl, tok
        self.device, self.dtype, self.loaded_from = device, dtype, how

    def load(self) -> float:
        """Load now (normally done by the first call). Returns seconds spent loading by this call (0 if loaded)."""
        if self._model is not None:
            return 0.0
        with self._load_lock:
            if self._model is not None:
                return 0.0
            t0 = time.perf_counter()
            try:
                self._load()
            except ThinkerError:
                raise
            except Exception as e:
                raise ThinkerError(f"{self.name}: failed to load model: {type(e).__name__}: {e}") from e
            self.load_seconds = time.perf_counter() - t0
            return self.load_seconds

    def unload(self) -> None:
        """Drop the model and tokenizer (frees memory; the next call loads again)."""
        with self._load_lock, self._gen_lock:
            self._model = self._tokenizer = None

    # ------------------------------------------------------------------------------------------------- calling

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The exact token ids fed to the model for `messages` (chat template + generation prompt)."""
        self.load()
        tok = self._tokenizer
        messages = [plain_message(m) for m in messages]
        if getattr(tok, "chat_template", None):
            extra = {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
        else:  # plain LM without a template
            text = "".join(f"{m.get('role', 'user')}: {m.get('content', '')}\n" for m in messages) + "assistant:"
        return list(tok(text, add_special_tokens=False)["input_ids"])

    def think(self, request: ThinkRequest) -> ThinkResult:
        load_s = self.load()
        t0 = time.perf_counter()
        try:
            ids = self.prompt_ids(request.messages)
        except Exception as e:
            raise ThinkerError(f"{self.name}: could not build the prompt: {type(e).__name__}: {e}") from e
        if not ids:
            raise ThinkerError(f"{self.name}: empty prompt")
        with self._gen_lock:
            try:
                gen, timed_out = self._generate(ids, request.max_new_tokens, request.timeout_s, t0)
            except ThinkerError:
                self.stats.record_failure()
                raise
            timing = dict(self.last_timing)
        seconds = time.perf_counter() - t0
        raw = self._tokenizer.decode([i for i in gen if i not in self._drop_ids], skip_special_tokens=False)
        parts = None if self.enable_thinking is False else split_thinking(raw)
        if parts is not None:
            thinking, answer = parts
            text = thinking or answer
        else:
            text, answer = raw.strip(), ""
        if not text.strip():
            self.stats.record_failure()
            why = f"timed out after {seconds:.1f}s (timeout_s={request.timeout_s})" if timed_out else "empty output"
            raise ThinkerError(f"{self.name}: {why}; {len(gen)} token(s) generated")
        result = ThinkResult(
            text=text,
            answer=answer if parts is not None else "",
            model=self.label,
            tokens_in=len(ids),
            tokens_out=len(gen),
            seconds=seconds,
            load_seconds=load_s,
            prefill_seconds=timing.get("prefill_s", 0.0),
            decode_seconds=timing.get("decode_s", 0.0),
        )
        self.stats.record(result)
        return result

    def _generate(self, ids: list[int], max_new_tokens: int, timeout_s: float | None, t0: float
                  ) -> tuple[list[int], bool]:
        import torch
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        class _Clock(StoppingCriteria):
            """Called after every new token: notes when the first one came (end of prefill), enforces timeout_s."""

            def __init__(self) -> None:
                self.hit = False
                self.first: float | None = None

            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001, ANN003
                now = time.perf_counter()
                if self.first is None:
                    self.first = now
                done = timeout_s is not None and now - t0 > timeout_s
                self.hit = self.hit or done
                return torch.full((input_ids.shape[0],), done, device=input_ids.device, dtype=torch.bool)

        cfg = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=self._stop_ids or None,
            pad_token_id=self._pad_id,
            repetition_penalty=self.repetition_penalty or 1.0,
        )
        clock = _Clock()
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        t_start = time.perf_counter()
        try:
            with torch.inference_mode():
                out = self._model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    generation_config=cfg,
                    stopping_criteria=StoppingCriteriaList([clock]),
                )
        except Exception as e:
            raise ThinkerError(f"{self.name}: generation failed: {type(e).__name__}: {e}") from e
        t_end = time.perf_counter()
        gen = out[0, input_ids.shape[1]:].tolist()
        while gen and gen[-1] == self._pad_id and self._pad_id not in self._stop_ids:
            gen.pop()
        first = clock.first if clock.first is not None else t_end
        self.last_timing = {
            "tokens_in": len(ids),
            "tokens_out": len(gen),
            "prefill_s": first - t_start,  # time to first token
            "decode_s": t_end - first,  # the remaining len(gen) - 1 tokens
        }
        return gen, clock.hit

    async def athink(self, request: ThinkRequest) -> ThinkResult:
        return await asyncio.to_thread(self.think, request)

    def __repr__(self) -> str:
        return f"LocalThinker({self.model_spec!r}, loaded={self.loaded}, device={self.device})"
