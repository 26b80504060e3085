"""A whole ``streamops bench`` run: prompts, the load steps over the targets, the results
(JSON schema below), and the pipeline's CPU per chunk.

JSON schema of a result (``--json FILE``), version 1::

    {"schema": "streamops-bench/1", "created": ISO-8601 UTC, "config": {...the options...},
     "summaries": [Summary.to_json(), ...],      # one per target and load step
     "requests": [RequestTiming.to_json(), ...]} # every measured request (warm-up excluded)
"""

from __future__ import annotations

import importlib
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamops._stream import Stream
from streamops.events import BaseEvent

from ._client import Pipeline, RequestParams, Target, TokenCounter
from ._load import LoadStep, Progress, run_step
from ._metrics import RequestTiming, Summary, summarize

__all__ = [
    "SCHEMA",
    "BenchConfig",
    "BenchResult",
    "load_pipeline",
    "load_prompts",
    "parse_slo",
    "result_to_file",
    "run_bench",
    "summaries_by_key",
    "synthetic_prompts",
]

SCHEMA = "streamops-bench/1"
"""The ``schema`` field of a result file."""

# Common English words, each one token in OpenAI's o200k/cl100k encodings with its leading
# space: a synthetic prompt of n words is about n tokens.
_WORD_TEXT = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one "
    "had by word but not what all were we when your can said there use an each which she do how their "
    "if will up other about out many then them these so some her would make like him into time has "
    "look two more write go see number no way could people my than first water been call who oil its "
    "now find long down day did get come made may part"
)


def synthetic_prompts(n: int, tokens: int, *, seed: int = 0) -> list[str]:
    """``n`` distinct prompts of about ``tokens`` tokens each (common one-token words, seeded),
    each ending with an instruction to write at length."""
    rng = random.Random(seed)
    words = _WORD_TEXT.split()
    tail = "Continue this text at length:"
    return [tail + " " + " ".join(rng.choice(words) for _ in range(max(tokens - 6, 1))) for _ in range(n)]


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from a JSONL file: one per line, a JSON string or an object with ``prompt``
    (or ``text``, or ``messages`` whose last ``content`` is taken).

    Raises:
        ValueError: a line is not JSON or has none of those fields (its line number given);
            the file has no prompt.
        OSError: the file cannot be read.
    """
    out: list[str] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not JSON: {exc}") from None
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(text := item.get("prompt", item.get("text")), str):
            out.append(text)
        elif isinstance(item, dict) and isinstance(item.get("messages"), list) and item["messages"]:
            out.append(str(item["messages"][-1].get("content", "")))
        else:
            raise ValueError(f"{path}:{n}: expected a string or an object with 'prompt', 'text' or 'messages'")
    if not out:
        raise ValueError(f"{path}: no prompts")
    return out


_SLO_NAMES = ("ttft", "ttfc", "tpot", "itl", "e2e")


def parse_slo(text: str) -> dict[str, float]:
    """``"ttft=0.5,tpot=0.05"`` -> ``{"ttft": 0.5, "tpot": 0.05}`` (seconds; a value may end
    in ``ms`` or ``s``).

    Raises:
        ValueError: an unknown metric (known: ttft, ttfc, tpot, itl, e2e) or a bad number.
    """
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in _SLO_NAMES:
            raise ValueError(f"bad SLO {part!r}: expected NAME=SECONDS with NAME one of {', '.join(_SLO_NAMES)}")
        value = value.strip().lower()
        scale = 1.0
        if value.endswith("ms"):
            value, scale = value[:-2], 1e-3
        elif value.endswith("s"):
            value = value[:-1]
        try:
            out[name] = float(value) * scale
        except ValueError:
            raise ValueError(f"bad SLO {part!r}: {value!r} is not a number") from None
    return out


def load_pipeline(spec: str) -> Pipeline:
    """The pipeline named by ``spec``: ``module:function`` (a function taking and returning a
    :class:`~streamops.Stream`), or an operator expression such as
    ``"smooth('word') | count_tokens()"`` evaluated with the names of :mod:`streamops.operators`.

    Raises:
        ValueError: the expression does not evaluate, or the module/function is not found.
    """
    head, sep, tail = spec.partition(":")
    if sep and head.replace(".", "").replace("_", "").isalnum() and tail.isidentifier():
        try:
            fn = getattr(importlib.import_module(head), tail)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"pipeline {spec!r}: {exc}") from None
        if not callable(fn):
            raise ValueError(f"pipeline {spec!r} is not callable")
        return fn  # type: ignore[no-any-return]
    import streamops.operators as ops

    names: dict[str, Any] = {name: getattr(ops, name) for name in ops.__all__}
    try:
        code = compile("_s_ | " + spec, "<pipeline>", "eval")
    except SyntaxError as exc:
        raise ValueError(f"pipeline {spec!r}: {exc.msg}") from None
    probe: Stream[BaseEvent] = Stream.from_iterable([])
    try:
        eval(code, {"__builtins__": {}}, {**names, "_s_": probe})
    except Exception as exc:
        raise ValueError(f"pipeline {spec!r}: {type(exc).__name__}: {exc}") from None

    def pipeline(stream: Stream[BaseEvent]) -> Stream[BaseEvent]:
        result: Stream[BaseEvent] = eval(code, {"__builtins__": {}}, {**names, "_s_": stream})
        return result

    return pipeline


@dataclass(slots=True, kw_only=True)
class BenchConfig:
    """A run: ``targets``, ``prompts``, ``params``, the load ``steps`` (run in order), ``warmup``
    requests per target (sequential, excluded), ``seed``, ``slo`` (see :func:`parse_slo`),
    ``pipeline`` (see :func:`load_pipeline`) and its text ``pipeline_spec``."""

    targets: list[Target]
    prompts: list[str]
    params: RequestParams = field(default_factory=RequestParams)
    steps: list[LoadStep] = field(default_factory=lambda: [LoadStep(concurrency=1, requests=10)])
    warmup: int = 0
    seed: int = 0
    slo: dict[str, float] = field(default_factory=dict)
    pipeline: Pipeline | None = None
    pipeline_spec: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The options, JSON-ready (no key)."""
        return {
            "targets": [
                {"label": t.label, "kind": t.kind, "model": t.model, "url": t.url, "api": t.api,
                 "replay": t.replay, "delay": t.delay}
                for t in self.targets
            ],
            "prompts": len(self.prompts),
            "params": asdict(self.params),
            "steps": [asdict(s) for s in self.steps],
            "warmup": self.warmup,
            "seed": self.seed,
            "slo": self.slo,
            "pipeline": self.pipeline_spec,
        }


@dataclass(slots=True, kw_only=True)
class BenchResult:
    """A run's results: its ``config`` (JSON form), one :class:`Summary` per target and step,
    and every measured request."""

    config: dict[str, Any]
    summaries: list[Summary]
    requests: list[RequestTiming]
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        """The result file's object (see the module docstring)."""
        return {
            "schema": SCHEMA,
            "created": self.created,
            "config": self.config,
            "summaries": [s.to_json() for s in self.summaries],
            "requests": [r.to_json() for r in self.requests],
        }

    @classmethod
    def load(cls, path: str | Path) -> BenchResult:
        """Read a result file; summaries are recomputed from its requests.

        Raises:
            ValueError: not a ``streamops-bench/1`` result file.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"{path}: not a {SCHEMA} result file")
        reqs = [RequestTiming.from_json(r) for r in data["requests"]]
        slo = data["config"].get("slo") or None
        sums = []
        for s in data["summaries"]:
            group = [
                r for r in reqs
                if r.target == s["target"] and r.concurrency == s["concurrency"] and r.rate == s["rate"]
            ]
            summary = summarize(
                group, target=s["target"], concurrency=s["concurrency"], rate=s["rate"],
                duration_s=s["duration_s"], slo=slo,
            )
            summary.client_cpu_per_chunk_us = s.get("client_cpu_per_chunk_us")
            summary.pipeline_cpu_per_chunk_us = s.get("pipeline_cpu_per_chunk_us")
            sums.append(summary)
        return cls(config=data["config"], summaries=sums, requests=reqs, created=data.get("created", ""))


async def _pipeline_cpu(pipeline: Pipeline, captured: Sequence[Sequence[BaseEvent]]) -> float | None:
    """CPU microseconds per chunk the pipeline adds: each captured response replayed through
    it, minus the same replay without it, over the chunks replayed (3 rounds, best kept)."""
    if not captured:
        return None
    from ._metrics import _OUTPUT

    chunks = sum(1 for evs in captured for ev in evs if isinstance(ev, _OUTPUT))
    if not chunks:
        return None

    async def once(with_pipeline: bool) -> float:
        t = time.process_time()
        for evs in captured:
            s: Stream[BaseEvent] = Stream.from_iterable(list(evs))
            async for _ in pipeline(s) if with_pipeline else s:
                pass
        return time.process_time() - t

    base = min([await once(False) for _ in range(3)])
    piped = min([await once(True) for _ in range(3)])
    return max(piped - base, 0.0) / chunks * 1e6


async def run_bench(
    config: BenchConfig,
    *,
    progress: Callable[[str, Progress], None] | None = None,
) -> BenchResult:
    """Run every load step of ``config``; return the results. ``progress(label, counters)`` is
    called when a step starts, with the live counters it updates.

    Raises:
        ValueError: a bad step (see :func:`~streamops.bench.run_step`).
    """
    import httpx

    count = TokenCounter()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(config.params.timeout, pool=None)
    requests: list[RequestTiming] = []
    summaries: list[Summary] = []
    # TLS certificates are loaded only when a target needs them (a client's CPU is measured).
    verify = any(t.kind == "http" and t.url.startswith("https:") for t in config.targets)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False, verify=verify) as client:
        if config.warmup:
            await run_step(
                client, config.targets, config.prompts, config.params,
                LoadStep(concurrency=1, requests=config.warmup), seed=config.seed, count=count,
                pipeline=config.pipeline,
            )
        for step in config.steps:
            prog = Progress()
            if progress is not None:
                label = f"concurrency {step.concurrency}" if step.concurrency is not None else f"rate {step.rate}/s"
                progress(label, prog)
            captured: list[list[BaseEvent]] | None = [] if config.pipeline is not None else None
            cpu0 = time.process_time()
            wall0 = time.perf_counter()
            timings = await run_step(
                client, config.targets, config.prompts, config.params, step, seed=config.seed,
                count=count, pipeline=config.pipeline, progress=prog, keep=captured,
            )
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            pipe_cpu = None
            if config.pipeline is not None and captured is not None:
                pipe_cpu = await _pipeline_cpu(config.pipeline, captured)
            requests += timings
            for target in config.targets:
                mine = [t for t in timings if t.target == target.label]
                summary = summarize(
                    mine, target=target.label, concurrency=step.concurrency, rate=step.rate,
                    duration_s=wall, slo=config.slo or None,
                )
                chunks = sum(t.chunks for t in timings)
                summary.client_cpu_per_chunk_us = cpu / chunks * 1e6 if chunks else None
                summary.pipeline_cpu_per_chunk_us = pipe_cpu
                summaries.append(summary)
    return BenchResult(
        config=config.to_json(),
        summaries=summaries,
        requests=requests,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def result_to_file(result: BenchResult, path: str | Path) -> None:
    """Write ``result`` as JSON to ``path``."""
    Path(path).write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")


def summaries_by_key(result: BenchResult) -> Mapping[tuple[str, int | None, float | None], Summary]:
    """The summaries keyed by (target, concurrency, rate)."""
    return {(s.target, s.concurrency, s.rate): s for s in result.summaries}
