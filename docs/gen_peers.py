"""Write docs/peers.md: the peers' streaming examples, each redone with streamops.

The code on the page is read from ``docs/examples/*.py``, so it is always the code the tests
run (``tests/test_examples.py``). Run ``python docs/gen_peers.py`` after changing an example
or the text below; a test checks the page is up to date.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "peers.md"
EXAMPLES = DOCS / "examples"

THEMES = {
    "event handling": "hypertic_event_handlers.py",
    "hooks": "opper_hooks.py",
    "JSON serialization": "agentor_json_lines.py",
    "progress": "tyler_tool_progress.py",
    "buffering": "cogent_word_buffer.py",
    "thinking tokens": "tyler_thinking_tokens.py",
    "token counting": "opper_token_usage.py",
    "cancellation": "cogent_cancel.py",
}
"""Each theme of the comparison and the example that covers it."""


def _gh(repo: str, path: str, commit: str) -> str:
    """A link to the version of a file that was read (at that commit)."""
    return f"[`{repo}` `{path}` @ `{commit[:7]}`](https://github.com/{repo}/blob/{commit}/{path})"


PEERS: list[dict[str, object]] = [
    {
        "name": "hypertic",
        "sources": [
            _gh(
                "hypertic-ai/hypertic",
                "examples/01_models/openai/async_stream.py",
                "b42040f8cc2e1388f953ffd3a8ce2bc9178900b7",
            ),
            "[docs.hypertic.ai/streaming](https://docs.hypertic.ai/streaming)",
        ],
        "shows": (
            "An agent with one tool (today's date) is streamed with `agent.astream(prompt)`, and the loop "
            "branches on `event.type`: `content` events are printed as they arrive, `tool_calls` and "
            "`tool_outputs` print the calls the model made and what the tools returned, and a `metadata` "
            "event comes last. The docs page shows the same dispatch on the synchronous `agent.stream()`. "
            "What `metadata` holds is not shown in either source."
        ),
        "examples": ["hypertic_event_handlers.py"],
        "differently": (
            "Events are typed classes, so `match` dispatches on the class and unpacks its fields; tool "
            "results are keyed by `call_id` (two parallel calls cannot be mixed up), and the run end "
            "says how the run ended (status, finish reason) and what it cost (total usage)."
        ),
    },
    {
        "name": "opper-agents",
        "sources": [
            _gh(
                "opper-ai/opperai-agent-sdk",
                "examples/01_getting_started/07_streaming_output.py",
                "040820a967ce42809e6a8c830f598c7aefee943d",
            ),
            _gh(
                "opper-ai/opperai-agent-sdk",
                "examples/01_getting_started/08_token_usage_hook.py",
                "3b8c6de2f6acc3a32aa4a527d73d1b57064260a2",
            ),
        ],
        "shows": (
            "`07_streaming_output.py` turns on `enable_streaming=True` for an agent with an output schema "
            "(a story: title, content, moral) and registers hooks: a `HookEvents.STREAM_CHUNK` hook gets "
            "`chunk_data` with a `json_path` and a `delta` and prints only the `content` field as it "
            "streams; a `STREAM_END` hook ends the line; the validated result and the context's usage "
            "are printed after. `08_token_usage_hook.py` prints the token usage so far (requests, input, "
            "output, total) from `loop_start` and `loop_end` hooks, and each tool call and result from "
            "`tool_call` and `tool_result` hooks."
        ),
        "examples": ["opper_hooks.py", "opper_token_usage.py"],
        "differently": (
            "Hooks are plain sync or async callables and see the same typed events as the stream (a hook "
            "that raises becomes an `ErrorEvent`, the run goes on); tokens are counted live with a real "
            "tokenizer while the output streams, then reconciled with the provider's figures, per agent "
            "and run, so a merged stream of several agents keeps one count each."
        ),
    },
    {
        "name": "agentor",
        "sources": [
            _gh("CelestoAI/agentor", "src/agentor/core/agent.py", "0ad6ae336aea6fff7f1b20f70b1d8ab8d32b4036"),
            _gh(
                "CelestoAI/agentor",
                "examples/agent-server/stream_client.py",
                "48c942e10918a04b37699db94c0952b2ebd5fedd",
            ),
            "[agentor streaming guide](https://www.mintlify.com/CelestoAI/agentor/guides/streaming)",
        ],
        "shows": (
            "`Agentor.stream_chat(input)` yields each agent output serialized as JSON text "
            "(`serialize=True`, the default; `serialize=False` yields the `AgentOutput` objects, with a "
            "message, a chunk, a tool action or reasoning). The `/chat` endpoint of `agent.serve()` returns "
            'that stream as `text/event-stream`, and the client example posts `{"input": ..., "stream": '
            "true}` and prints each line it reads."
        ),
        "examples": ["agentor_json_lines.py"],
        "differently": (
            "Every event kind round-trips: `from_json(line)` gives back the typed event, validated, not "
            "a dict; each line carries `run_id`, `agent` and `seq`, and the lines look the same whichever "
            "provider answered (here Anthropic, then Gemini, in one run)."
        ),
    },
    {
        "name": "tyler (slide)",
        "sources": [
            _gh(
                "adamwdraper/slide",
                "packages/tyler/examples/006_thinking_tokens.py",
                "14193a3a544396ee4a154d6bc0a32260297eef96",
            ),
            _gh(
                "adamwdraper/slide",
                "packages/tyler/examples/303_mcp_progress_callback.py",
                "836ecd68511d0a6125119a7033841c6f8b141fb5",
            ),
        ],
        "shows": (
            "`006_thinking_tokens.py` streams `agent.go(thread, stream=True)` for an agent with "
            "`reasoning_effort` set: `LLM_THINKING_CHUNK` events (`thinking_chunk`) go to a thinking buffer "
            "and are printed in gray, `LLM_STREAM_CHUNK` events (`content_chunk`) to a content buffer, and "
            "`EXECUTION_COMPLETE` prints the size of each and the duration. `303_mcp_progress_callback.py` "
            "starts an MCP server whose tool reports progress (`ctx.report_progress(progress, total, "
            "message)`); the agent's stream yields `TOOL_SELECTED`, then `TOOL_PROGRESS` events drawn as a "
            "progress bar, then `TOOL_RESULT`; a second variant passes its own `progress_callback`."
        ),
        "examples": ["tyler_thinking_tokens.py", "tyler_tool_progress.py"],
        "differently": (
            "Reasoning is its own event kind from every adapter (Anthropic thinking, `reasoning_content`, "
            "Gemini thoughts, Responses reasoning summaries), with its signature kept for the next turn; "
            "any `@tool` can report progress (a sync tool from its worker thread too), not only MCP tools, "
            "and each report is keyed by the call's id."
        ),
    },
    {
        "name": "cogent",
        "sources": [
            _gh("milad-o/cogent", "examples/21_streaming.py", "6ad9e93f3a67785b6d0cc7474e5ca35a7d34173a"),
            _gh("milad-o/cogent", "docs/streaming.md", "034afebb9176264e950388b25d8487936d47165e"),
            _gh("milad-o/cogent", "examples/basics/streaming.py", "0d6cfaf854c15305f9886f9b734edccf25b93dbe"),
        ],
        "shows": (
            "`examples/21_streaming.py` (from when the package was still imported as `agenticflow`) streams "
            "tokens with `think_stream()`, structured events with `stream_events()` (`STREAM_START`, "
            "`TOKEN`, `TOOL_CALL_START`, `STREAM_END`, `ERROR`), collects them with stream callbacks "
            "(counting chunks as tokens), and counts words while text streams by keeping its own buffer "
            "and splitting it on spaces. `docs/streaming.md` and `examples/basics/streaming.py` stream "
            "multi-agent flows chunk by chunk (`agent_name`, `is_final`, `finish_reason`); the docs list "
            "cancellation support and advise `asyncio.timeout()` to limit a stream's duration. No cogent "
            "example that cancels a run was found in the repository, so the cancellation example below "
            "shows the need the docs name (stopping a stream early) rather than redoing a specific example."
        ),
        "examples": ["cogent_word_buffer.py", "cogent_cancel.py"],
        "differently": (
            "`smooth()` does the buffering as an operator (words, lines, sentences, graphemes; CJK aware; "
            "flushed at a size limit and before any other event); cancelling reaches the model (the local "
            'model\'s token loop stops) and the stream still ends with `RunEnd(status="cancelled")`.'
        ),
    },
]
"""The peers, what their examples show (facts only, in our words), and our examples."""


def _theme_of(example: str) -> str:
    return next(theme for theme, ex in THEMES.items() if ex == example)


def render() -> str:
    """The peers page, as Markdown."""
    lines = [
        "# Peers' streaming examples, with streamops",
        "",
        "Generated by `python docs/gen_peers.py` from `docs/examples/*.py`; do not edit by hand.",
        "",
        "Each example below redoes what a peer's streaming example shows, with streamops, offline: the",
        "model's side is either a recorded real provider stream replayed by `ReplayModel` (from",
        "`tests/fixtures/recorded`) or the local SmolLM2 model. Each file runs on its own",
        "(`python docs/examples/hypertic_event_handlers.py`), and `tests/test_examples.py` runs every one",
        "on asyncio and trio and checks what it returns.",
        "",
        "| theme | example | peer |",
        "|---|---|---|",
    ]
    peer_of = {ex: str(p["name"]) for p in PEERS for ex in p["examples"]}  # type: ignore[attr-defined]
    for theme, example in THEMES.items():
        lines.append(f"| {theme} | [`{example}`](examples/{example}) | {peer_of[example]} |")
    lines.append("")
    for peer in PEERS:
        lines += [f"## {peer['name']}", "", str(peer["shows"]), ""]
        lines.append("Sources: " + "; ".join(peer["sources"]) + ".")  # type: ignore[arg-type]
        lines.append("")
        for example in peer["examples"]:  # type: ignore[attr-defined]
            code = (EXAMPLES / example).read_text(encoding="utf-8").rstrip()
            lines += [f"### {_theme_of(example)}: `docs/examples/{example}`", "", "```python", code, "```", ""]
        lines += [f"**What streamops does differently:** {peer['differently']}", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}")
