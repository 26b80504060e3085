"""Issue 13 item 6: one behaviour for every parser on an ``event: error`` whose data is not
JSON (an ErrorEvent, then a failed run end; never StreamFormatError), and a Responses payload
whose ``type`` is not a string gives an event that round-trips through JSON."""

from __future__ import annotations

import json
import warnings

import pytest
from streamops.adapters._sansio import parser_for

from streamops.events import ErrorEvent, RawEvent, RunEnd, from_json, to_json


@pytest.mark.parametrize("api", ["openai-chat", "openai-responses", "anthropic", "gemini"])
@pytest.mark.parametrize("mode", ["raise", "event"])
def test_an_error_event_with_non_json_data_is_a_provider_error_in_every_parser(api: str, mode: str) -> None:
    p = parser_for(api, on_malformed=mode)  # type: ignore[arg-type]
    out = p.feed_json("error", "upstream overloaded, try later")
    assert [type(e) for e in out] == [ErrorEvent, RunEnd], out
    err, end = out
    assert isinstance(err, ErrorEvent) and err.message == "upstream overloaded, try later"
    assert isinstance(end, RunEnd) and end.status == "failed" and end.finish_reason == "error"


@pytest.mark.parametrize("type_value", [1, [], {"a": 1}, None, True])
def test_a_responses_payload_with_a_non_string_type_round_trips(type_value: object) -> None:
    p = parser_for("openai-responses")
    out = p.feed_json(None, json.dumps({"type": type_value, "x": 1}))
    raws = [e for e in out if isinstance(e, RawEvent)]
    assert raws
    for e in raws:
        assert e.event_type is None or isinstance(e.event_type, str)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert from_json(to_json(e)) == e
