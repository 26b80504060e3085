"""The examples of docs/peers.md run, on asyncio and trio, and return what they say; the page
is generated from them."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from streamops.adapters.models import resolve_model

import streamops as so
from tests.conftest import RECORDED

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture(scope="module", autouse=True)
def _free_the_local_model() -> Iterator[None]:
    """Close the shared local model the examples loaded (llama.cpp's finalizer fails when it
    runs at interpreter exit)."""
    yield
    resolve_model(None).close()  # type: ignore[attr-defined]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # @tool resolves type hints in the function's module
    spec.loader.exec_module(module)
    return module


def _expected(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"{name}.expected.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- one check per example
def check_hypertic_event_handlers(out: dict[str, Any]) -> None:
    assert out["text"] == _expected("openai/chat_gpt5_after_tools_utf8_fantasy")["text"]
    assert out["calls"] == ["add", "multiply"]
    assert sorted(out["results"].values()) == [5, 6]
    assert set(out["results"]) == {c["id"] for c in _expected("openai/chat_gpt4o_parallel_tools_fantasy")["tool_calls"]}
    end = out["end"]
    assert isinstance(end, so.RunEnd)
    assert end.status == "completed"
    assert end.usage is not None and (end.usage.input_tokens, end.usage.output_tokens) == (106 + 262, 50 + 25)


def check_opper_hooks(out: dict[str, Any]) -> None:
    assert out["status"] == "completed"
    # the example dumps RunResult.output, the validated Weather instance (issue 15 item 14)
    assert out["output"] == {"city": "San Francisco", "temperature": 61, "units": "f"}
    assert out["fields"]["$.city"] == "San Francisco"  # streamed by the on_chunk hook, delta by delta
    assert json.loads(out["fields"]["$.temperature"]) == 61


def check_opper_token_usage(out: dict[str, Any]) -> None:
    steps = out["steps"]
    assert [(u.input_tokens, u.output_tokens) for u in steps] == [(106, 50), (262, 25)]
    count = out["count"]
    assert count.agent == "math"
    assert 0 < count.estimated_output < count.output_tokens  # the tokenizer counted the visible output
    assert count.source == "provider"  # reconciled: the provider's figures win once reported
    assert count.output_tokens == out["total"].output_tokens == 75
    assert count.input_tokens == out["total"].input_tokens == 368


def check_agentor_json_lines(lines: list[bytes]) -> None:
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    events = [so.from_json(line) for line in lines]
    assert [so.to_json(e) + b"\n" for e in events] == lines  # lossless both ways
    assert [e.seq for e in events] == list(range(len(events)))
    assert len({e.run_id for e in events}) == 1
    assert {e.agent for e in events} == {"calculator"}
    kinds = [e.kind for e in events]  # type: ignore[attr-defined]
    assert kinds[0] == "run-start" and kinds[-1] == "run-end" and kinds.count("step-start") == 2
    results = {e.name: e.result for e in events if isinstance(e, so.ToolResult)}
    assert results == {"add": 5, "multiply": 6}
    answer = "".join(e.delta for e in events[kinds.index("tool-result") :] if isinstance(e, so.TextDelta))
    assert answer == _expected("gemini/gemini_vertex_after_tools_fantasy")["text"]
    assert events[-1].status == "completed"  # type: ignore[attr-defined]


def check_tyler_thinking_tokens(out: dict[str, str]) -> None:
    expected = _expected("anthropic/messages_thinking_signature_pyd")
    assert out["thinking"] == expected["reasoning"]
    assert out["answer"] == expected["text"]


def check_tyler_tool_progress(reports: list[dict[str, Any]]) -> None:
    assert [r["progress"] for r in reports] == [1, 2, 3, 4]  # in order, one per digit of 2331
    assert {r["total"] for r in reports} == {4}
    assert reports[-1]["message"].endswith("= 2869461")


def check_cogent_word_buffer(out: dict[str, list[str]]) -> None:
    tokens, words = out["tokens"], out["words"]
    text = "".join(tokens)
    assert text.strip(), "the local model said nothing"
    assert "".join(words) == text  # re-chunked, never changed
    assert [w.strip() for w in words] == text.split()  # one chunk per word
    assert len(tokens) >= len(words)


def check_cogent_cancel(out: dict[str, Any]) -> None:
    end = out["end"]
    assert isinstance(end, so.RunEnd)
    assert (end.status, end.finish_reason) == ("cancelled", "cancelled")
    assert len(out["pieces"]) == 12  # nothing after the cancel but the run end


CHECKS: dict[str, Callable[[Any], None]] = {
    name.removeprefix("check_"): fn for name, fn in dict(globals()).items() if name.startswith("check_")
}
FILES = sorted(EXAMPLES.glob("*.py"))


def test_every_example_has_a_check_and_runs_as_a_script() -> None:
    assert FILES, "no examples found"
    assert {f.stem for f in FILES} == set(CHECKS)
    for f in FILES:
        text = f.read_text(encoding="utf-8")
        assert "\nasync def main() -> " in text, f.name
        assert text.endswith('\n\nif __name__ == "__main__":\n    anyio.run(main)\n'), f.name


@pytest.mark.anyio
@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
async def test_example_runs_and_returns_what_it_says(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = _load(path, f"docs_example_{path.stem}")
    out = await module.main()
    CHECKS[path.stem](out)
    assert capsys.readouterr().out.strip(), "an example prints what it does"


# --------------------------------------------------------------------------- the page
def _gen_peers() -> ModuleType:
    return _load(ROOT / "docs" / "gen_peers.py", "gen_peers")


def test_peers_page_is_generated_from_the_current_examples() -> None:
    assert (ROOT / "docs" / "peers.md").read_text(encoding="utf-8") == _gen_peers().render(), (
        "docs/peers.md is stale: run python docs/gen_peers.py"
    )


def test_peers_page_covers_every_example_and_the_eight_themes() -> None:
    gen = _gen_peers()
    assert set(gen.THEMES) == {
        "event handling",
        "hooks",
        "JSON serialization",
        "progress",
        "buffering",
        "thinking tokens",
        "token counting",
        "cancellation",
    }
    listed = [ex for peer in gen.PEERS for ex in peer["examples"]]
    assert sorted(listed) == sorted(f.name for f in FILES) == sorted(gen.THEMES.values())
    assert [p["name"] for p in gen.PEERS] == ["hypertic", "opper-agents", "agentor", "tyler (slide)", "cogent"]
    for peer in gen.PEERS:
        assert peer["sources"] and peer["shows"] and peer["differently"], peer["name"]


# --------------------------------------------------------------------------- docs/frameworks.md
FRAMEWORK_EXAMPLE = EXAMPLES / "frameworks" / "merge_frameworks.py"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # openai-agents and pydantic-ai run asyncio tasks
async def test_frameworks_example_merges_two_frameworks(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("agents")
    pytest.importorskip("pydantic_ai")
    out = await _load(FRAMEWORK_EXAMPLE, "docs_example_frameworks").main()
    story = _expected("openai/responses_after_tool_utf8_llm")
    assert out["text"] == {"storyteller": story["text"], "writer": "Streams from two frameworks, one pipeline."}
    for agent, chunks in out["chunks"].items():
        assert "".join(chunks) == out["text"][agent]
        assert [c.strip() for c in chunks] == out["text"][agent].split()  # one chunk per word
    body = out["sse"].decode()
    assert body.count("event: run-end\n") == 2 and "event: error\n" not in body
    assert '"agent":"storyteller"' in body and '"agent":"writer"' in body
    assert out["usage"].output_tokens >= story["usage"]["output_tokens"]
    assert capsys.readouterr().out.strip()


NESTED_EXAMPLE = EXAMPLES / "frameworks" / "nested_agents.py"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # pydantic-ai runs asyncio tasks
async def test_nested_agents_example(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pydantic_ai")
    out = await _load(NESTED_EXAMPLE, "docs_example_nested").main()
    runs = out["runs"]
    top = [r for r in runs.values() if not r["parent"]]
    assert [(r["agent"], r["text"]) for r in top] == [("planner", "Tides follow the moon.")]
    root = next(k for k, r in runs.items() if not r["parent"])
    subs = sorted((r["agent"], r["parent"], r["text"]) for r in runs.values() if r["parent"])
    assert subs == [
        ("planner/researcher", root, "Notes on moons"),
        ("planner/researcher", root, "Notes on tides"),
    ]
    assert out["answer"] == "Tides follow the moon."
    assert out["research_events"] and all(e.agent == "planner/researcher" for e in out["research_events"])
    assert len(out["research_events"]) == sum(1 for e in out["events"] if e.parent_run_id)
    assert "planner/researcher" in capsys.readouterr().out


def test_frameworks_page_shows_the_tested_example() -> None:
    page = (ROOT / "docs" / "frameworks.md").read_text(encoding="utf-8")
    assert FRAMEWORK_EXAMPLE.read_text(encoding="utf-8").rstrip("\n") in page
    assert NESTED_EXAMPLE.read_text(encoding="utf-8").rstrip("\n") in page
    for kit in ("agentor", "slide-tyler", "hypertic", "opper-agents"):
        assert f"**{kit}**" in page
