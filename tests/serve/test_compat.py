"""What OpenAI clients probe besides completions: the model list, errors in OpenAI's shape
for unknown models, unknown roles, non-JSON bodies, wrong methods and prompts over the
context window. The official ``openai`` client against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import httpx
import openai
import pytest

from streamops.serve import create_app
from tests.conftest import RECORDED

from .test_app import MESSAGES, client, serve

TEXT = RECORDED / "openai" / "chat_text_usage_openai_python.sse"


def test_models_unknown_model_roles_media_type_and_method() -> None:
    with serve(create_app(model=f"replay:{TEXT}", a2a=False)) as base:
        c = client(base)
        assert [m.id for m in c.models.list()] == ["replay"]
        assert c.models.retrieve("replay").id == "replay"
        with pytest.raises(openai.NotFoundError) as nf:
            c.models.retrieve("gpt-5")
        assert nf.value.code == "model_not_found"
        # a model that is not served: 404 model_not_found, as OpenAI answers
        with pytest.raises(openai.NotFoundError) as info:
            c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert info.value.status_code == 404
        assert info.value.code == "model_not_found"
        assert info.value.param == "model"
        # the served name, and no model at all, are answered
        assert c.chat.completions.create(model="replay", messages=MESSAGES).choices[0].message.content
        r = httpx.post(f"{base}/v1/chat/completions", json={"messages": MESSAGES})
        assert r.status_code == 200, r.text
        # an unknown role: 400
        with pytest.raises(openai.BadRequestError) as bad:
            c.chat.completions.create(model="replay", messages=[{"role": "wizard", "content": "hi"}])  # type: ignore[list-item, misc]
        assert bad.value.param == "messages.0.role"
        # a body sent as text/plain: 415, OpenAI-shaped
        r = httpx.post(
            f"{base}/v1/chat/completions",
            content=b'{"messages": [{"role": "user", "content": "hi"}]}',
            headers={"content-type": "text/plain"},
        )
        assert r.status_code == 415
        assert r.json()["error"]["type"] == "invalid_request_error"
        # a wrong method: 405 with Allow, OpenAI-shaped
        r = httpx.get(f"{base}/v1/chat/completions")
        assert r.status_code == 405
        assert "POST" in r.headers["allow"]
        assert r.json()["error"]["type"] == "invalid_request_error"
        # an unknown path: 404 in the same shape
        r = httpx.get(f"{base}/v1/nope")
        assert r.status_code == 404 and "error" in r.json()


def test_local_model_is_listed_with_its_alias_and_a_long_prompt_is_context_length_exceeded() -> None:
    with serve(create_app(model="local", workers=1, a2a=False)) as base:
        c = client(base)
        ids = [m.id for m in c.models.list()]
        assert len(ids) == 2 and ids[1] == "local" and ids[0] != "local"
        prompt = "the sky is blue because " * 4000  # far over SmolLM2's context window
        with pytest.raises(openai.BadRequestError) as info:
            c.chat.completions.create(model="local", messages=[{"role": "user", "content": prompt}], max_tokens=4)
        assert info.value.code == "context_length_exceeded"
        # streamed: the same 400 before any stream starts, as OpenAI answers
        with pytest.raises(openai.BadRequestError) as streamed:
            c.chat.completions.create(
                model="local", messages=[{"role": "user", "content": prompt}], max_tokens=4, stream=True
            )
        assert streamed.value.status_code == 400
        assert streamed.value.code == "context_length_exceeded"
        assert streamed.value.param == "messages"
        assert "context window" in streamed.value.message
        r = c.chat.completions.create(model=ids[0], messages=MESSAGES, max_tokens=4)
        assert r.choices[0].message.content is not None
        # a prompt that fits still streams: role chunk, text, finish reason
        chunks = list(c.chat.completions.create(model="local", messages=MESSAGES, max_tokens=4, stream=True))
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert chunks[-1].choices[0].finish_reason == "length"
