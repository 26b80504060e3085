"""``streamops bench``: benchmark an LLM streaming endpoint, model or pipeline.

Sans-IO core: :class:`Recorder` (one request's events with their arrival times in,
:class:`RequestTiming` out) and :func:`summarize` (timings in, :class:`Summary` out), with
vLLM's ``benchmark_serving`` metric definitions (docs/benchmarking.md). Around it: the
request client (:class:`Target`, :class:`RequestParams`; httpx with streamops' own SSE
decoder and wire parsers), the load shapes (:class:`LoadStep`, :func:`run_step`), a whole run
(:class:`BenchConfig`, :func:`run_bench`, :class:`BenchResult` with its JSON schema) and the
reports (:func:`summary_table`, :func:`compare_table`, :func:`plot`).

This package sits on the CLI floor: it may import everything in streamops; nothing in
streamops imports it.
"""

from __future__ import annotations

from ._client import Pipeline, RequestParams, Target, TokenCounter, run_request
from ._load import LoadStep, Progress, arrival_times, run_step
from ._metrics import PERCENTILES, Recorder, RequestTiming, Stats, Summary, stats, summarize
from ._report import compare_table, plot, summary_table
from ._run import (
    SCHEMA,
    BenchConfig,
    BenchResult,
    load_pipeline,
    load_prompts,
    parse_slo,
    result_to_file,
    run_bench,
    synthetic_prompts,
)

__all__ = [
    "PERCENTILES",
    "SCHEMA",
    "BenchConfig",
    "BenchResult",
    "LoadStep",
    "Pipeline",
    "Progress",
    "Recorder",
    "RequestParams",
    "RequestTiming",
    "Stats",
    "Summary",
    "Target",
    "TokenCounter",
    "arrival_times",
    "compare_table",
    "load_pipeline",
    "load_prompts",
    "parse_slo",
    "plot",
    "result_to_file",
    "run_bench",
    "run_request",
    "run_step",
    "stats",
    "summarize",
    "summary_table",
    "synthetic_prompts",
]
