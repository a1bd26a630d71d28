"""test_server.py - the OpenAI-compatible server, driven by the official `openai` SDK (and raw
HTTP where the SDK cannot express the request), against a live `heylookllm serve` on the default
model (SmolLM2-135M-Instruct). Greedy decoding (temperature 0) makes outputs comparable across
requests: streaming vs not, alone vs concurrent.
"""
import concurrent.futures as cf
import json
import os
import signal
import socket
import threading
import time

import httpx
import openai
import pytest

from heylook_server import BIN, MODEL

HI = [{"role": "user", "content": "Name three colors."}]


def client(server, **kw):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=kw.pop("api_key", "none"), max_retries=0, **kw)


def greedy(server, messages=HI, **kw):
    return client(server).chat.completions.create(model=MODEL, messages=messages, temperature=0, **kw)


def stream_text(stream):
    text, finish, chunks = "", None, []
    for ch in stream:
        chunks.append(ch)
        for c in ch.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish, chunks


# ---- endpoints -------------------------------------------------------------------------------


def test_health_and_models(server):
    r = httpx.get(server.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    models = client(server).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].model_extra["status"] == "loaded"
    assert client(server).models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client(server).models.retrieve("nope")


def test_chat_whole(server):
    r = greedy(server, max_tokens=24)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == MODEL
    assert r.created > 1_700_000_000
    c = r.choices[0]
    assert c.index == 0 and c.message.role == "assistant" and c.message.content
    assert c.finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > 5 and 0 < u.completion_tokens <= 24
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_stream_matches_whole(server):
    whole = greedy(server, max_tokens=32)
    stream = greedy(server, max_tokens=32, stream=True, stream_options={"include_usage": True})
    text, finish, chunks = stream_text(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert text == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert len({c.id for c in chunks}) == 1


def test_stream_wire_format(server):
    """Raw SSE: role first, data lines only, [DONE] last."""
    body = {"model": MODEL, "messages": HI, "temperature": 0, "max_tokens": 8, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    first = json.loads(events[0][6:])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    last = json.loads(events[-2][6:])
    assert last["choices"][0]["finish_reason"] in ("stop", "length")


def test_max_tokens_length(server):
    r = greedy(server, max_tokens=5, messages=[{"role": "user", "content": "Write a long story about a dragon."}])
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    r2 = greedy(server, max_completion_tokens=3, max_tokens=50,
                messages=[{"role": "user", "content": "Write a long story about a dragon."}])
    assert r2.usage.completion_tokens == 3


def test_stop_strings(server):
    full = greedy(server, max_tokens=40).choices[0].message.content
    assert len(full) > 12
    stop = full[6:10]
    first = full.index(stop)
    r = greedy(server, max_tokens=40, stop=[stop, "\u2603never"])
    assert r.choices[0].message.content == full[:first]
    assert r.choices[0].finish_reason == "stop"
    # the same through a stream: the stop string never reaches the client, even split across tokens
    text, finish, _ = stream_text(greedy(server, max_tokens=40, stop=stop, stream=True))
    assert text == full[:first] and finish == "stop"


def test_seed_reproducible(server):
    def sample(seed):
        return client(server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Tell me a word."}], temperature=1.0,
            seed=seed, max_tokens=16).choices[0].message.content

    a, b = sample(1234), sample(1234)
    assert a == b
    others = {sample(s) for s in (1, 2, 3, 4)}
    assert len(others | {a}) > 1, "different seeds never changed the sample"


def test_n_choices_and_logprobs(server):
    r = client(server).chat.completions.create(model=MODEL, messages=HI, temperature=0, n=2, max_tokens=6,
                                               logprobs=True, top_logprobs=3)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].message.content == r.choices[1].message.content  # greedy
    lp = r.choices[0].logprobs.content
    assert len(lp) == r.usage.completion_tokens // 2
    for t in lp:
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob
        assert abs(t.logprob - t.top_logprobs[0].logprob) < 1e-4  # greedy picks the most likely
    assert "".join(t.token for t in lp) == r.choices[0].message.content


def test_n_choices_differ_when_sampling(server):
    def pair(seed):
        r = client(server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Invent a name for a cat."}], temperature=1.5,
            seed=seed, n=2, max_tokens=16)
        return r.choices[0].message.content, r.choices[1].message.content

    assert any(a != b for a, b in map(pair, (1, 2, 3))), "n choices of one seed were all identical"


def test_completions(server):
    c = client(server)
    r = c.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text
    e = c.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0,
                             echo=True)
    assert e.choices[0].text == "The capital of France is" + r.choices[0].text
    s = c.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0,
                             stream=True)
    assert "".join(ch.choices[0].text for ch in s) == r.choices[0].text


def test_sampling_fields_accepted(server):
    r = client(server).chat.completions.create(
        model=MODEL, messages=HI, temperature=0.7, top_p=0.9, presence_penalty=0.5, frequency_penalty=0.5,
        logit_bias={"42": -100}, seed=7, user="tester", max_tokens=8,
        extra_body={"top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1, "repetition_context_size": 32})
    assert r.choices[0].message.content is not None


def test_part_list_content(server):
    parts = [{"type": "text", "text": "Name three"}, {"type": "text", "text": "colors."}]
    a = greedy(server, messages=[{"role": "user", "content": parts}], max_tokens=8)
    b = greedy(server, messages=[{"role": "user", "content": "Name three\ncolors."}], max_tokens=8)
    assert a.choices[0].message.content == b.choices[0].message.content


# ---- errors ----------------------------------------------------------------------------------


def error_of(resp):
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


def test_malformed_json(server):
    r = httpx.post(server.url + "/v1/chat/completions", content=b'{"model": "x", "messages": [',
                   headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert error_of(r)["type"] == "invalid_request_error"


@pytest.mark.parametrize("body,param", [
    ({"model": MODEL}, "messages"),
    ({"messages": HI}, "model"),
    ({"model": MODEL, "messages": HI, "temperature": "hot"}, "temperature"),
    ({"model": MODEL, "messages": HI, "temperature": 3}, "temperature"),
    ({"model": MODEL, "messages": HI, "max_tokens": 0}, "max_tokens"),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
])
def test_invalid_fields(server, body, param):
    r = httpx.post(server.url + "/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == param


def test_unsupported_fields_refused(server):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError) as ei:
        client(server).chat.completions.create(model=MODEL, messages=HI, tools=tools)
    assert "tools" in str(ei.value)
    img = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    with pytest.raises(openai.BadRequestError):
        client(server).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": img}])


def test_unknown_model_404(server):
    with pytest.raises(openai.NotFoundError) as ei:
        client(server).chat.completions.create(model="no-such-model", messages=HI)
    assert ei.value.body["code"] == "model_not_found"


def test_unknown_route_and_method(server):
    assert httpx.get(server.url + "/v1/nothing").status_code == 404
    r = httpx.get(server.url + "/v1/chat/completions")
    assert r.status_code == 405 and error_of(r)


def test_prompt_too_long(server):
    with pytest.raises(openai.BadRequestError) as ei:
        client(server).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi " * 5000}])
    assert ei.value.body["code"] == "context_length_exceeded"


def test_body_too_large_auth_cors(make_server):
    s = make_server("--max-body", "64K", "--api-key", "sekret", "--cors", "*")
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 100_000}]}
    r = httpx.post(s.url + "/v1/chat/completions", json=big, headers={"Authorization": "Bearer sekret"})
    assert r.status_code == 413 and error_of(r)
    with pytest.raises(openai.AuthenticationError):
        client(s, api_key="wrong").chat.completions.create(model=MODEL, messages=HI, max_tokens=2)
    r = httpx.get(s.url + "/v1/models")
    assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
    assert client(s, api_key="sekret").chat.completions.create(model=MODEL, messages=HI, max_tokens=2)
    r = httpx.options(s.url + "/v1/chat/completions",
                      headers={"Origin": "http://example.com", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
    assert httpx.get(s.url + "/health").status_code == 200  # health needs no key


def test_overload_503(make_server):
    s = make_server("--parallel", "1", "--queue", "1")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Count to one thousand."}],
            "max_tokens": 2000, "temperature": 0, "stream": True,
            "logit_bias": {"0": -100, "1": -100, "2": -100}}  # no end of text: it cannot finish early
    # one running, one queued: hold both streams open without reading them to the end
    streams = []
    for _ in range(2):
        cm = httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=60)
        streams.append((cm, cm.__enter__()))
    time.sleep(0.3)
    r = httpx.post(s.url + "/v1/chat/completions", json=body)
    assert r.status_code == 503 and "retry-after" in r.headers
    assert error_of(r)["code"] == "overloaded"
    for cm, _ in streams:
        cm.__exit__(None, None, None)


# ---- concurrency, disconnects, shutdown -------------------------------------------------------


def test_concurrent_clients(server):
    prompts = [f"Say the number {i} in words." for i in range(6)]
    alone = {p: greedy(server, messages=[{"role": "user", "content": p}], max_tokens=12).choices[0].message.content
             for p in prompts[:2]}

    def one(p):
        text, finish, _ = stream_text(greedy(server, messages=[{"role": "user", "content": p}], max_tokens=12,
                                             stream=True))
        return p, text, finish

    with cf.ThreadPoolExecutor(len(prompts)) as ex:
        results = list(ex.map(one, prompts))
    for p, text, finish in results:
        assert text and finish in ("stop", "length")
        if p in alone:
            assert text == alone[p]


def test_disconnect_cancels(make_server):
    s = make_server("--parallel", "1")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Count from 1 to 500, one per line."}],
            "max_tokens": 400, "temperature": 0, "stream": True,
            "logit_bias": {"0": -100, "1": -100, "2": -100}}  # no end of text: it cannot finish early
    with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i == 3:
                break
    # the only sequence must be freed at once: this request must not wait behind 400 tokens
    t = time.time()
    r = client(s).chat.completions.create(model=MODEL, messages=HI, max_tokens=4, temperature=0)
    assert r.choices[0].message.content is not None
    deadline = time.time() + 10
    while "cancelled" not in s.read_log() and time.time() < deadline:
        time.sleep(0.05)
    assert "cancelled" in s.read_log()
    # a non-streaming client that hangs up is noticed too
    sock = socket.create_connection(("127.0.0.1", s.port))
    payload = json.dumps({**body, "stream": False}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
    time.sleep(0.3)
    sock.close()
    deadline = time.time() + 10
    while s.read_log().count("cancelled") < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert s.read_log().count("cancelled") >= 2
    assert time.time() - t < 30


def test_graceful_shutdown(make_server):
    s = make_server()
    body = {"model": MODEL, "messages": HI, "max_tokens": 16, "temperature": 0}
    out = {}

    def call():
        out["r"] = httpx.post(s.url + "/v1/chat/completions", json=body, timeout=60)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    assert s.stop(signal.SIGTERM) == 0
    t.join()
    assert out["r"].status_code == 200 and out["r"].json()["choices"][0]["message"]["content"] is not None


def test_failure_mid_stream_is_an_error_event(make_server):
    """Shutting down with no grace cancels a running stream: it ends with an error event, which the
    SDK raises, not with a silent truncation."""
    s = make_server("--grace", "0")
    stream = client(s).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count from 1 to 500, one per line."}],
        max_tokens=2000, temperature=0, stream=True, logit_bias={"0": -100, "1": -100, "2": -100})
    it = iter(stream)
    next(it)
    s.proc.send_signal(signal.SIGTERM)
    with pytest.raises(openai.APIError) as ei:
        for _ in it:
            pass
    assert "shutting down" in str(ei.value)
    s.proc.wait(timeout=30)


def test_corrupt_model_file(make_server, tmp_path):
    """A model that fails to load answers with its load error; the other model goes on serving."""
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    s = make_server("--model", MODEL, "--model", str(bad))
    assert httpx.get(s.url + "/health").json()["models"] == {MODEL: "loaded", "broken": "unloaded"}
    with pytest.raises(openai.InternalServerError) as ei:
        client(s).chat.completions.create(model="broken", messages=HI)
    assert ei.value.body["code"] == "model_load_failed" and "failed to load" in ei.value.body["message"]
    health = httpx.get(s.url + "/health")
    assert health.status_code == 200 and health.json()["models"] == {MODEL: "loaded", "broken": "failed"}
    assert client(s).chat.completions.create(model=MODEL, messages=HI, max_tokens=2).choices


@pytest.mark.skipif("asan" in BIN, reason="generates ~1500 tokens to fill the socket: too slow under ASan "
                                         "(the plain build runs it)")
def test_slow_stream_client_pauses_its_sequence(make_server):
    """Backpressure: a streaming client that stops reading does not make the server buffer without
    bound. Once the socket's fixed send buffer (128 KiB) is full and the unread text passes
    --max-unsent, its sequence pauses: the model's generated-token count stops moving. Reading
    again resumes it to the end."""
    s = make_server("--max-unsent", "1K")
    body = json.dumps({"model": MODEL, "prompt": "Count from one to a thousand:", "max_tokens": 2000,
                       "temperature": 0, "stream": True, "logit_bias": {"0": -100, "1": -100, "2": -100}}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's writes stall early
    sock.connect(("127.0.0.1", s.port))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def generated():
        return httpx.get(s.url + "/v1/performance").json()["models"][0]["generation_tokens"]

    deadline = time.time() + 120
    a, b = -1, generated()
    while a != b and time.time() < deadline:  # wait until generation stands still
        time.sleep(1.0)
        a, b = b, generated()
    assert a == b and b < 1999, f"generation never paused ({b} tokens)"
    time.sleep(1.0)
    assert generated() == b, "a paused sequence went on generating"
    sock.settimeout(60)
    data = b""
    while not data.endswith(b"data: [DONE]\r\n\r\n0\r\n\r\n") and b"data: [DONE]" not in data[-64:]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert b"data: [DONE]" in data
    assert generated() >= 1999  # it ran to the end once read
