"""LlamaCppThinker: a GGUF model run in-process by llama.cpp (the `xllamacpp` binding, prebuilt wheels).

Why: the offline default model ships as a Q4 GGUF. llama.cpp runs it as it is (no de-quantized copy): seconds to
load, ~1.5 GB resident, and on 2 CPU cores 5–10x the prefill/decode speed of transformers fp32 over the same file.

One engine per (model file, settings) per process, shared by every session and thread: xllamacpp's `Server` is
llama.cpp's own server loop without HTTP in between — `n_parallel` slots with continuous batching, requests queued
when all slots are busy, the GIL released while the model runs (so `athink` is a thread hop, and a background
fold does not stall the agent's thread). Each slot keeps its KV cache and `cache_prompt` reuses the longest common
prefix, so repeated calls on a session's (append-only) view pay prefill only for what is new; the server picks
the slot whose cached prompt is most similar. `json_schema` in a ThinkRequest becomes a llama.cpp grammar, so
policy decisions come back as JSON of that schema.

GPU: a CUDA/Metal build of xllamacpp offloads `n_gpu_layers` layers (-1 = all, the default); the CPU wheel runs
on the CPU whatever n_gpu_layers says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from agentmem.thinkers._thinking import field, openai_text, plain_message
from agentmem.thinkers.base import ThinkerError, ThinkerStats, ThinkRequest, ThinkResult

__all__ = ["LlamaCppThinker", "llamacpp_available", "shared_engine_count"]

log = logging.getLogger(__name__)

_DEFAULT_ALIASES = {None, "", "default", "local"}
SMOLLM2 = "smollm2"


def llamacpp_available() -> bool:
    """True when the xllamacpp binding is importable (found without importing it)."""
    import importlib.util

    return importlib.util.find_spec("xllamacpp") is not None


def gpu_offload_available() -> bool:
    """True when the installed llama.cpp build sees a GPU device (a CUDA/Metal/Vulkan wheel on such a machine)."""
    try:
        import xllamacpp

        return any("GPU" in getattr(d.get("type"), "name", str(d.get("type"))) for d in xllamacpp.get_device_info())
    except Exception:  # noqa: BLE001 - no binding, or a build without device info: no offload
        return False


class _Engine:
    """One loaded llama.cpp model: its server loop, and the settings it was loaded with."""

    def __init__(self, path: Path, *, n_ctx_per_slot: int, n_parallel: int, n_threads: int, n_threads_batch: int,
                 n_gpu_layers: int, n_batch: int, flash_attn: bool | None, use_jinja: bool = False) -> None:
        try:
            import xllamacpp
        except ImportError as e:
            raise ThinkerError("the llama.cpp backend is not installed: pip install 'agentmem[local]' "
                               "(or: pip install xllamacpp)") from e
        p = xllamacpp.CommonParams()
        p.model.path = str(path)
        p.n_parallel = n_parallel
        p.n_ctx = n_ctx_per_slot * n_parallel  # the KV cache is split evenly between slots
        p.n_batch = n_batch
        p.n_ubatch = min(n_batch, 512)
        p.cpuparams.n_threads = n_threads
        p.cpuparams_batch.n_threads = n_threads_batch
        p.n_gpu_layers = n_gpu_layers
        p.cache_prompt = True
        p.use_jinja = use_jinja  # the model's own chat template: tools in the prompt, tool calls parsed back
        p.warmup = False  # the first real call warms up; a warm-up pass costs ~1 s of load time for nothing
        p.verbosity = -1  # llama.cpp logs every slot event to stderr otherwise
        p.api_keys = [secrets.token_hex(16)]  # the server's loopback HTTP listener is unusable without the key
        if flash_attn is not None:
            p.flash_attn_type = (xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
                                 else xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        t0 = time.perf_counter()
        try:
            self.server = xllamacpp.Server(p)
        except Exception as e:
            raise ThinkerError(f"llama.cpp could not load {path}: {type(e).__name__}: {e}") from e
        self.load_seconds = time.perf_counter() - t0
        self.path = path
        self.n_ctx_per_slot = n_ctx_per_slot
        self.n_parallel = n_parallel

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.server.handle_chat_completions(body)


def _compact_json_grammar(schema: dict[str, Any]) -> str | None:
    """A llama.cpp grammar for JSON of `schema` without optional whitespace.

    response_format lets the model pretty-print, and a small model does: a third of a decision's tokens were
    newlines and indentation, each one a decode step. llguidance (llama.cpp's grammar engine in xllamacpp) takes
    the separators from the schema's "x-guidance" options. None when the binding cannot convert the schema.
    """
    try:
        import json

        import xllamacpp

        compact = {**schema, "x-guidance": {"whitespace_flexible": False, "item_separator": ",",
                                            "key_separator": ":"}}
        return str(xllamacpp.json_schema_to_grammar(json.dumps(compact)))
    except Exception:  # noqa: BLE001 - an older binding: the server's own response_format path
        return None


_ENGINES: dict[tuple, _Engine] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine_count() -> int:
    """How many llama.cpp models this process holds (one per model file and settings)."""
    return len(_ENGINES)


def _engine(key: tuple, make: Any) -> tuple[_Engine, bool]:
    """The process-wide engine for `key`, loading it once under a lock; (engine, loaded by this call)."""
    with _ENGINES_LOCK:
        eng = _ENGINES.get(key)
        if eng is not None:
            return eng, False
        eng = make()
        _ENGINES[key] = eng
        return eng, True


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _default_threads() -> tuple[int, int]:
    """(decode threads, prompt threads). $AGENTMEM_LLAMACPP_THREADS sets both.

    Decoding synchronises all its threads once per token, so one thread descheduled by another process stalls
    them all: measured here on 2 busy cores, 2 decode threads fell to 1-3 tok/s while 1 thread kept 8-19; on the
    same 2 cores idle, 2 threads decode at 17.7 tok/s against 11.1 for one. So a small machine that is already
    busy when the model loads (1-minute load average near its core count) leaves one core to the agent and
    everything else; an idle one decodes on every core. Prompt evaluation (large batches, far less
    synchronisation) uses every core.
    """
    env = os.environ.get("AGENTMEM_LLAMACPP_THREADS")
    if env:
        return max(1, int(env)), max(1, int(env))
    n = _cpus()
    try:
        busy = os.getloadavg()[0] >= n - 0.5
    except OSError:  # pragma: no cover - no load average on this platform
        busy = True
    return (max(1, n - 1) if n <= 4 and busy else n), n


class LlamaCppThinker:
    """A Thinker backed by llama.cpp over a GGUF file. Loads lazily (thread-safe) on the first call.

    Args:
        model: None / "local" = the offline default model (joined from its installed parts); "smollm2" = the
            small test model; or a path to a `.gguf` file.
        n_ctx_per_slot: context of one slot (prompt + answer); longer prompts are an error, not a truncation.
        n_parallel: slots served at once (sessions beyond that queue).
        n_threads: decode threads; n_threads_batch: prompt threads (defaults: see _default_threads, or
            $AGENTMEM_LLAMACPP_THREADS).
        n_gpu_layers: layers offloaded to the GPU on a GPU build (-1 = all); ignored by the CPU wheel.
        n_batch: prompt tokens evaluated per step.
        temperature: 0 = greedy (deterministic notes and decisions).
        flash_attn: force flash attention on/off (None = llama.cpp's choice).
        cache_dir: where the default model is joined (default $AGENTMEM_CACHE_DIR / the user cache dir).
    """

    backend = "llama.cpp"

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        n_ctx_per_slot: int = 8192,
        n_parallel: int = 2,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_gpu_layers: int = -1,
        n_batch: int = 512,
        temperature: float = 0.0,
        flash_attn: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        name: str | None = None,
    ) -> None:
        if n_parallel < 1 or n_ctx_per_slot < 256:
            raise ValueError("n_parallel must be >= 1 and n_ctx_per_slot >= 256")
        self.model_spec = None if model is None else str(model)
        self.n_ctx_per_slot = n_ctx_per_slot
        self.n_parallel = n_parallel
        decode_threads, batch_threads = _default_threads()
        self.n_threads = n_threads or decode_threads
        self.n_threads_batch = n_threads_batch or batch_threads
        self.n_gpu_layers = n_gpu_layers
        self.n_batch = n_batch
        self.temperature = temperature
        self.flash_attn = flash_attn
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.label = self._label()
        self.name = name or f"llama.cpp:{self.label}"
        self.stats = ThinkerStats()
        self.load_seconds: float | None = None  # seconds this process spent loading the engine (0.0 if shared)
        self._engine: _Engine | None = None
        self._lock = threading.Lock()

    def _label(self) -> str:
        from agentmem.thinkers import model_files

        if self.model_spec in _DEFAULT_ALIASES:
            return model_files.DEFAULT_GGUF_NAME.removesuffix(".gguf")
        if self.model_spec == SMOLLM2:
            return "smollm2-135m-instruct-q4_1"
        return Path(str(self.model_spec)).name.removesuffix(".gguf")

    def gguf_path(self) -> Path:
        """The GGUF file this thinker runs (joins the default model's parts on first use)."""
        from agentmem.thinkers import model_files

        if self.model_spec in _DEFAULT_ALIASES:
            return model_files.default_gguf_path(self.cache_dir)
        if self.model_spec == SMOLLM2:
            return model_files.smollm2_gguf_path()
        path = Path(str(self.model_spec)).expanduser()
        if not path.is_file():
            raise ThinkerError(f"{self.name}: no GGUF file at {path}")
        return path

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def load(self) -> float:
        """Load now (normally done by the first call). Seconds spent loading by this call (0 when shared/loaded)."""
        if self._engine is not None:
            return 0.0
        with self._lock:
            if self._engine is not None:
                return 0.0
            t0 = time.perf_counter()
            path = self.gguf_path().resolve()
            key = (str(path), self.n_ctx_per_slot, self.n_parallel, self.n_threads, self.n_threads_batch,
                   self.n_gpu_layers, self.n_batch, self.flash_attn)
            engine, fresh = _engine(key, lambda: _Engine(
                path, n_ctx_per_slot=self.n_ctx_per_slot, n_parallel=self.n_parallel, n_threads=self.n_threads,
                n_threads_batch=self.n_threads_batch, n_gpu_layers=self.n_gpu_layers, n_batch=self.n_batch, flash_attn=self.flash_attn))
            self._engine = engine
            self.load_seconds = time.perf_counter() - t0 if fresh else 0.0
            return self.load_seconds

    def _body(self, request: ThinkRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [plain_message(m) for m in request.messages],
            "max_tokens": request.max_new_tokens,
            "temperature": self.temperature,
            "cache_prompt": True,
        }
        if request.timeout_s is not None:  # llama.cpp bounds the generation phase; prefill is bounded by n_ctx
            body["t_max_predict_ms"] = int(request.timeout_s * 1000)
        if request.json_schema is not None:
            grammar = _compact_json_grammar(request.json_schema)
            if grammar is not None:
                body["grammar"] = grammar
            else:
                body["response_format"] = {"type": "json_schema", "json_schema": {"schema": request.json_schema}}
        return body

    def think(self, request: ThinkRequest) -> ThinkResult:
        load_s = self.load()
        assert self._engine is not None
        t0 = time.perf_counter()
        try:
            response = self._engine.chat(self._body(request))
        except Exception as e:  # the binding raises ValueError for requests it cannot serve (e.g. a bad schema)
            self.stats.record_failure()
            raise ThinkerError(f"{self.name}: {type(e).__name__}: {e}") from e
        seconds = time.perf_counter() - t0
        if not isinstance(response, dict) or "error" in response:
            self.stats.record_failure()
            err = response.get("error") if isinstance(response, dict) else response
            raise ThinkerError(f"{self.name}: {field(err, 'message', err)}")
        text, answer, finish = openai_text(response)
        if not text:
            self.stats.record_failure()
            raise ThinkerError(f"{self.name}: empty output (finish_reason={finish!r})")
        usage = response.get("usage") or {}
        timings = response.get("timings") or {}
        result = ThinkResult(
            text=text,
            answer=answer,
            model=self.label,
            tokens_in=int(usage.get("prompt_tokens", 0) or 0),
            tokens_out=int(usage.get("completion_tokens", 0) or 0),
            cached_tokens=int(timings.get("cache_n", 0) or 0),
            seconds=seconds,
            load_seconds=load_s,
            prefill_seconds=float(timings.get("prompt_ms", 0.0) or 0.0) / 1000,
            decode_seconds=float(timings.get("predicted_ms", 0.0) or 0.0) / 1000,
        )
        self.stats.record(result)
        return result

    async def athink(self, request: ThinkRequest) -> ThinkResult:
        # the binding releases the GIL while llama.cpp works: a thread keeps the event loop free
        return await asyncio.to_thread(self.think, request)

    def __repr__(self) -> str:
        return f"LlamaCppThinker({self.model_spec!r}, loaded={self.loaded}, n_parallel={self.n_parallel})"

