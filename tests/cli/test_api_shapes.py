"""The api layer's writers (src/api/api_write.c) against the official openai
SDK: every response, stream chunk, model list and error they produce is fed
to a real openai.OpenAI client through an httpx mock transport, and to the
SDK's pydantic models, so a shape the SDK cannot read fails here.

The samples come from the unit-test binary: `test_unit api_write_shapes`
saves them when HL_API_SHAPES_DIR is set.

Run from the repository root: .venv/bin/python -m pytest tests/cli/test_api_shapes.py
$HEYLOOK_TEST_UNIT selects the binary (default build/test_unit)."""
import json
import os
import subprocess
from pathlib import Path

import httpx
import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

REPO = Path(__file__).resolve().parents[2]
UNIT = os.environ.get("HEYLOOK_TEST_UNIT", str(REPO / "build" / "test_unit"))

pytestmark = pytest.mark.skipif(not Path(UNIT).exists(), reason=f"{UNIT} not built")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    d = tmp_path_factory.mktemp("shapes")
    r = subprocess.run([UNIT, "api_write_shapes"], env={**os.environ, "HL_API_SHAPES_DIR": str(d)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "unit: 1 tests" in r.stdout, r.stdout
    return d


def events(path):
    """The JSON payloads of an SSE file: one `data: {...}` line and a blank line each."""
    raw = path.read_text()
    assert raw.startswith("data: ") and raw.endswith("\n\n") and raw.count("\n") == 2, raw
    return raw[len("data: "):-2]


def client(body, status=200, content_type="application/json"):
    def handler(request):
        return httpx.Response(status, content=body, headers={"content-type": content_type})
    return openai.OpenAI(api_key="x", base_url="http://test/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


def stream_body(shapes, kind):
    parts = [(shapes / f"{kind}_chunk{i}.sse").read_bytes() for i in range(4)]
    parts.append((shapes / f"{kind}_usage.sse").read_bytes())
    return b"".join(parts) + b"data: [DONE]\n\n"


def test_chat_response(shapes):
    raw = (shapes / "chat_response.json").read_text()
    c = ChatCompletion.model_validate_json(raw, strict=True)
    assert c.object == "chat.completion" and c.system_fingerprint == "fp_1"
    m = c.choices[0]
    assert m.message.role == "assistant" and m.message.content == "Hi\ufffd\ufffd"
    assert m.finish_reason == "length" and c.choices[1].finish_reason == "stop"
    lp = m.logprobs.content
    assert lp[0].token == "Hi" and lp[0].logprob == -0.25 and lp[0].bytes == [72, 105]
    assert lp[0].top_logprobs[1].token == '"Hey"'
    assert lp[1].bytes == [0xE2, 0x82] and lp[1].logprob == -9999.0
    assert c.choices[1].logprobs is None
    assert c.usage.total_tokens == 5
    got = client(raw).chat.completions.create(model="qwen", messages=[{"role": "user", "content": "hi"}])
    assert got == c


def test_chat_stream(shapes):
    for i in range(4):
        ChatCompletionChunk.model_validate_json(events(shapes / f"chat_chunk{i}.sse"), strict=True)
    stream = client(stream_body(shapes, "chat"), content_type="text/event-stream").chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert len(chunks) == 5
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert chunks[1].choices[0].delta.content == "Hi" and chunks[1].usage is None
    assert chunks[1].choices[0].logprobs.content[0].token == "Hi"
    assert chunks[3].choices[0].finish_reason == "stop" and chunks[3].choices[0].delta.content is None
    assert chunks[3].choices[0].logprobs.content == []
    assert chunks[4].choices == [] and chunks[4].usage.completion_tokens == 2


def test_completion_response(shapes):
    raw = (shapes / "text_response.json").read_text()
    c = Completion.model_validate_json(raw, strict=True)
    assert c.object == "text_completion" and c.system_fingerprint is None
    lp = c.choices[0].logprobs
    assert lp.tokens == ["Hi", "\ufffd\ufffd"] and lp.token_logprobs == [-0.25, -9999.0]
    assert lp.top_logprobs[0] == {"Hi": -0.25, '"Hey"': -1.5} and lp.text_offset == [0, 2]
    got = client(raw).completions.create(model="qwen", prompt="hi")
    assert got == c


def test_completion_stream(shapes):
    stream = client(stream_body(shapes, "text"), content_type="text/event-stream").completions.create(
        model="qwen", prompt="hi", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert len(chunks) == 5 and all(c.object == "text_completion" for c in chunks)
    assert chunks[1].choices[0].text == "Hi" and chunks[1].choices[0].logprobs.tokens[0] == "Hi"
    assert chunks[2].choices[0].index == 1 and chunks[2].choices[0].finish_reason is None
    assert chunks[3].choices[0].finish_reason == "stop"
    assert chunks[4].choices == [] and chunks[4].usage.total_tokens == 5
    # every chunk but the unfinished ones passes the SDK's strict model
    Completion.model_validate_json(events(shapes / "text_chunk3.sse"), strict=True)


def test_models_and_error(shapes):
    raw = (shapes / "models.json").read_text()
    models = list(client(raw).models.list())
    assert [m.model_dump(exclude_none=True) for m in models] == [
        {"id": "qwen", "object": "model", "created": 1700000000, "owned_by": "heylook", "status": "loaded"}]
    err = (shapes / "error.json").read_text()
    assert json.loads(err) == {"error": {"message": "temperature is 3", "type": "invalid_request_error",
                                         "param": "temperature", "code": "invalid_value"}}
    with pytest.raises(openai.BadRequestError) as e:
        client(err, status=400).chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "invalid_value" and e.value.param == "temperature"
    assert e.value.message.endswith("temperature is 3")
