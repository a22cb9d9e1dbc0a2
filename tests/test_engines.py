"""Engines: the constraint grammar, the OpenAI client (mock server), replay, transformers."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_openai import FakeOpenAI, Reply, sse

from toolsft.chat.parse import parse_assistant
from toolsft.engines import EngineError, make_engine
from toolsft.engines.base import TOO_LONG, Decoding, Request
from toolsft.engines.constrain import (
    MAX_FREE_STRING,
    closed_schema,
    structural_tag,
    structural_tag_json,
)
from toolsft.engines.replay import MISSING, ReplayEngine, load_predictions, request_key
from toolsft.eval.validity import call_validity
from toolsft.types import ToolSpec

PARAMS = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^DD[0-9]{8}$"},
        "qty": {"type": "integer", "minimum": 1, "maximum": 5},
        "day": {"type": "string", "format": "date"},
        "reason": {"type": "string", "enum": ["late", "broken"]},
        "addr": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    "required": ["order_id"],
}
TOOLS = [
    {"type": "function", "function": {"name": "cancel", "description": "", "parameters": PARAMS}},
    {
        "type": "function",
        "function": {
            "name": "ping",
            "description": "",
            "parameters": {"type": "object", "properties": {}},
        },
    },
]
SPECS = {t["function"]["name"]: ToolSpec.from_openai(t) for t in TOOLS}


def _call(args: str, name: str = "cancel") -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'


def test_closed_schema_closes_every_object() -> None:
    closed = closed_schema(PARAMS)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["addr"]["additionalProperties"] is False
    assert "additionalProperties" not in PARAMS


def test_closed_schema_caps_only_free_strings() -> None:
    closed = closed_schema(PARAMS)["properties"]
    assert closed["addr"]["properties"]["city"]["maxLength"] == MAX_FREE_STRING
    for bounded in ("order_id", "day", "reason", "qty"):
        assert "maxLength" not in closed[bounded]
    capped = closed_schema({"type": "string", "maxLength": 500})
    assert capped["maxLength"] == 500


def test_free_string_cap_fits_the_default_reply_budget() -> None:
    # A looping CJK string costs up to 3 byte-level tokens per character; the call's frame
    # (`<tool_call>`, name, braces) must still fit, or max_tokens cuts a constrained call.
    frame_tokens = 40
    assert 3 * MAX_FREE_STRING + frame_tokens <= Decoding().max_tokens


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("I cannot help with that.", True),
        (_call('{"order_id": "DD12345678"}'), True),
        (
            _call('{"order_id": "DD12345678", "qty": 2, "day": "2026-01-05", "reason": "late"}'),
            True,
        ),
        (_call("{}", "ping"), True),
        (_call('{"order_id": "DD12345678"}') + "\n" + _call("{}", "ping"), True),
        (_call('{"order_id": "DD1234"}'), False),
        (_call('{"order_id": "DD12345678", "qty": 9}'), False),
        (_call('{"order_id": "DD12345678", "day": "tomorrow"}'), False),
        (_call('{"order_id": "DD12345678", "reason": "bored"}'), False),
        (_call('{"order_id": "DD12345678", "extra": 1}'), False),
        (_call('{"order_id": "DD12345678", "addr": {"zip": "1"}}'), False),
        (_call('{"qty": 1}'), False),
        (_call('{"order_id":     "DD12345678"}'), False),
        (_call("{}", "nope"), False),
    ],
)
def test_structural_tag_accepts_exactly_valid_calls(text: str, ok: bool) -> None:
    import xgrammar as xgr
    from xgrammar.testing import _is_grammar_accept_string

    grammar = xgr.Grammar.from_structural_tag(structural_tag_json(TOOLS))
    assert _is_grammar_accept_string(grammar, text) is ok
    if ok:  # what the grammar lets through also scores as valid
        parsed = parse_assistant(text)
        assert parsed.ok and all(not call_validity(SPECS, c) for c in parsed.calls)


def test_required_tool_choice_forces_a_leading_call() -> None:
    import xgrammar as xgr
    from xgrammar.testing import _is_grammar_accept_string

    tag = structural_tag(TOOLS, require_call=True)
    grammar = xgr.Grammar.from_structural_tag(json.dumps(tag))
    assert not _is_grammar_accept_string(grammar, "hello")
    assert _is_grammar_accept_string(grammar, _call("{}", "ping"))


# --- openai ------------------------------------------------------------------------------------


def _sse(chunks: list[dict[str, Any]]) -> bytes:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


def test_openai_engine_streams_and_renders_tool_calls() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body["messages"][-1]["content"] == "calls":
            chunks = [
                {
                    "choices": [
                        {
                            "delta": {
                                "tool_calls": [
                                    {
                                        "index": 0,
                                        "function": {
                                            "name": "cancel",
                                            "arguments": '{"order_id": ',
                                        },
                                    }
                                ]
                            }
                        }
                    ]
                },
                {
                    "choices": [
                        {
                            "delta": {
                                "tool_calls": [
                                    {"index": 0, "function": {"arguments": '"DD12345678"}'}}
                                ]
                            },
                            "finish_reason": "tool_calls",
                        }
                    ]
                },
                {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 12}},
            ]
        else:
            chunks = [
                {"choices": [{"delta": {"content": "Hel"}}]},
                {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
            ]
        return httpx.Response(
            200, content=_sse(chunks), headers={"content-type": "text/event-stream"}
        )

    eng = make_engine(
        "openai", base_url="http://server/v1", model="m", transport=httpx.MockTransport(handler)
    )
    reqs = [
        Request([{"role": "user", "content": "calls"}], TOOLS, "a"),
        Request([{"role": "user", "content": "text"}], TOOLS, "b"),
    ]
    gens = eng.generate(reqs, Decoding(max_tokens=10, constrained=True))
    call = parse_assistant(gens[0].text)
    assert call.ok and call.calls[0].arguments == {"order_id": "DD12345678"}
    assert gens[0].output_tokens == 12 and gens[0].prompt_tokens == 50
    assert gens[0].ttft_s is not None and gens[0].latency_s >= gens[0].ttft_s
    assert gens[1].text == "Hello" and gens[1].finish_reason == "stop"
    assert all(b["tools"] == TOOLS and b["max_tokens"] == 10 and b["stream"] for b in seen)
    assert "structured_outputs" in seen[0]


def test_openai_engine_errors_name_the_server() -> None:
    eng = make_engine(
        "openai",
        base_url="http://server/v1",
        model="m",
        transport=httpx.MockTransport(lambda r: httpx.Response(404, text="no model")),
    )
    with pytest.raises(EngineError, match="http://server/v1/chat/completions answered 404"):
        eng.generate([Request([{"role": "user", "content": "x"}])], Decoding())


# --- openai against a real (local) HTTP server --------------------------------------------------

USER = [Request([{"role": "user", "content": "hi"}], TOOLS, "k")]


def _engine(url: str, **kw: Any) -> Any:
    opts = {"retries": 2, "backoff_s": 0.01, "timeout_s": 2.0, **kw}
    return make_engine("openai", base_url=url, model="m", **opts)


def test_openai_retries_503_then_succeeds() -> None:
    def answer(n: int, body: dict[str, Any]) -> Reply:
        return Reply(503, b"busy", "text/plain") if n < 2 else Reply(body=sse("Hello"))

    with FakeOpenAI(answer) as server:
        gens = _engine(server.url).generate(USER, Decoding())
    assert server.calls == 3 and gens[0].text == "Hello"
    assert gens[0].output_tokens == 3 and gens[0].finish_reason == "stop"


def test_openai_honours_retry_after_on_429() -> None:
    def answer(n: int, body: dict[str, Any]) -> Reply:
        if n == 0:
            return Reply(429, b"slow down", "text/plain", {"retry-after": "0.2"})
        return Reply(body=sse("ok"))

    with FakeOpenAI(answer) as server:
        t0 = time.monotonic()
        gens = _engine(server.url).generate(USER, Decoding())
    assert gens[0].text == "ok" and server.calls == 2 and time.monotonic() - t0 >= 0.2


def test_openai_gives_up_after_bounded_retries() -> None:
    bad = Reply(502, b"bad gateway", "text/plain")
    with (
        FakeOpenAI(lambda n, b: bad) as server,
        pytest.raises(EngineError, match=r"answered 502: bad gateway \(gave up after 3"),
    ):
        _engine(server.url).generate(USER, Decoding())
    assert server.calls == 3


def test_openai_does_not_retry_a_404() -> None:
    missing = Reply(404, b'{"detail": "Not Found"}', "application/json")
    with (
        FakeOpenAI(lambda n, b: missing) as s,
        pytest.raises(EngineError, match="answered 404.*ends in /v1"),
    ):
        _engine(s.url).generate(USER, Decoding())
    assert s.calls == 1


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(body=b"<html><body>Welcome to nginx</body></html>", ctype="text/html"), "HTML"),
        (Reply(body=b'{"status": "ok"}', ctype="application/json"), "no choices"),
        (Reply(body=b"[1, 2]", ctype="application/json"), "not a chat completion"),
        (Reply(body=b"{oops", ctype="application/json"), "not JSON"),
        (Reply(body=b"hello world\nsecond line\n", ctype="text/plain"), "not server-sent"),
        (Reply(body=b"data: {broken\n\n"), "stream event that is not JSON"),
        (Reply(body=b'data: {"id": "x", "object": "chunk"}\n\n'), "without choices"),
        (Reply(body=b'data: {"choices": 5}\n\n'), "choices is a int"),
        (Reply(body=b'data: {"choices": [{"delta": {"content": 7}}]}\n\n'), "content is a int"),
        (Reply(body=b"data: [DONE]\n\n"), "empty stream"),
        (Reply(body=b""), "empty stream"),
        (Reply(body=b'data: {"error": {"message": "engine died"}}\n\n'), "engine died"),
    ],
)
def test_openai_refuses_what_is_not_the_api(reply: Reply, said: str) -> None:
    with (
        FakeOpenAI(lambda n, b: reply) as server,
        pytest.raises(EngineError, match="did not answer as the OpenAI API") as err,
    ):
        _engine(server.url).generate(USER, Decoding())
    assert said in str(err.value) and "\n" not in str(err.value)
    assert server.calls == 1  # a server that speaks another protocol is not retried


def test_openai_reads_a_whole_completion_when_the_server_does_not_stream() -> None:
    doc = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [{"function": {"name": "ping", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }
    with FakeOpenAI(
        lambda n, b: Reply(body=json.dumps(doc).encode(), ctype="application/json")
    ) as s:
        gen = _engine(s.url).generate(USER, Decoding())[0]
    assert parse_assistant(gen.text).calls[0].name == "ping"
    assert (gen.prompt_tokens, gen.output_tokens, gen.finish_reason) == (9, 4, "tool_calls")


def test_openai_reads_crlf_streams_and_raw_line_separators_in_json() -> None:
    chunk = '{"choices": [{"delta": {"content": "a\u2028b\u0085c"}, "finish_reason": "stop"}]}'
    body = f"data: {chunk}\r\n\r\ndata: [DONE]\r\n\r\n".encode()
    with FakeOpenAI(lambda n, b: Reply(body=body, ctype="text/event-stream; charset=utf-8")) as s:
        gen = _engine(s.url).generate(USER, Decoding())[0]
    assert gen.text == "a\u2028b\u0085c" and gen.finish_reason == "stop"


def test_openai_times_out_a_hanging_server() -> None:
    with FakeOpenAI(lambda n, b: Reply(hang=True)) as server:
        t0 = time.monotonic()
        with pytest.raises(EngineError, match=r"no answer within 0.3 s.*gave up after 2 attempts"):
            _engine(server.url, timeout_s=0.3, retries=1).generate(USER, Decoding())
        assert time.monotonic() - t0 < 3
    assert server.calls == 2


def test_openai_deadline_bounds_the_whole_run() -> None:
    with FakeOpenAI(lambda n, b: Reply(hang=True)) as server:
        eng = _engine(server.url, timeout_s=30, retries=5, deadline_s=0.4)
        t0 = time.monotonic()
        with pytest.raises(EngineError, match=r"--deadline of 0.4 s passed"):
            eng.generate(USER, Decoding())
        assert time.monotonic() - t0 < 3


def test_openai_connection_refused_is_retried_then_one_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, then closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EngineError, match=r"ConnectError.*gave up after 3 attempts") as err:
        _engine(f"http://127.0.0.1:{port}/v1").generate(USER, Decoding())
    assert "\n" not in str(err.value)


def test_openai_context_overflow_is_a_too_long_row_not_a_dead_run() -> None:
    msg = b'{"message": "This model\'s maximum context length is 2048 tokens."}'
    with FakeOpenAI(lambda n, b: Reply(400, msg, "application/json")) as server:
        gens = _engine(server.url).generate(USER, Decoding())
    assert gens[0].finish_reason == TOO_LONG and gens[0].text == ""


def test_openai_streams_each_result_as_it_finishes() -> None:
    def answer(n: int, body: dict[str, Any]) -> Reply:
        slow = body["messages"][-1]["content"] == "slow"
        return Reply(body=sse(body["messages"][-1]["content"]), delay=0.5 if slow else 0)

    reqs = [Request([{"role": "user", "content": c}], (), c) for c in ("slow", "fast")]
    with FakeOpenAI(answer) as server:
        order = [i for i, _ in _engine(server.url, concurrency=2).generate_each(reqs, Decoding())]
    assert order == [1, 0]


def test_openai_bad_settings_are_user_errors() -> None:
    with pytest.raises(EngineError, match="--base-url must be an http"):
        make_engine("openai", base_url="localhost:8000", model="m")
    with pytest.raises(EngineError, match="--timeout must be a positive"):
        make_engine("openai", base_url="http://127.0.0.1:1/v1", model="m", timeout_s=0)


def test_eval_cli_against_an_html_server_is_one_line_exit_2(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from helpers import DEFAULT_SUITE, make_dataset

    from toolsft.cli.main import cli

    data = make_dataset(tmp_path / "data", per_stage=10)
    page = b"<!doctype html><html><head><title>Login</title></head><body>..</body></html>"
    with FakeOpenAI(lambda n, b: Reply(body=page, ctype="text/html; charset=utf-8")) as server:
        res = CliRunner().invoke(
            cli,
            [
                "eval",
                *("--suite", str(DEFAULT_SUITE), "--data", str(data), "--engine", "openai"),
                *("--base-url", server.url, "--model", "m", "--out", str(tmp_path / "o")),
                *("--retries", "0", "--timeout", "5"),
            ],
        )
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert lines[-1].startswith("Error: ") and "HTML" in lines[-1] and server.url in lines[-1]
    assert "Traceback" not in res.output
    assert not (tmp_path / "o" / "results.json").exists()


# --- replay ------------------------------------------------------------------------------------


def test_replay_formats_and_missing_keys(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(
        '{"key": "a#0@0", "text": "x"}\n\n{"id": "b", "turns": ["t0", "t1"], "sample": 1}\n'
    )
    script = load_predictions(f)
    assert script == {"a#0@0": "x", request_key("b", 1, 0): "t0", request_key("b", 1, 1): "t1"}
    gens = ReplayEngine(f).generate([Request([], key="a#0@0"), Request([], key="zz")], Decoding())
    assert gens[0].text == "x" and gens[1].finish_reason == MISSING
    f.write_text("not json\n")
    with pytest.raises(EngineError, match="p.jsonl:1"):
        load_predictions(f)


def test_replay_keeps_what_the_eval_recorded(tmp_path: Path) -> None:
    """Re-scoring a past run: a reply cut at --max-tokens stays cut (it passed as finished
    text before, and a base model's 7.3% re-scored as 22.3%)."""
    f = tmp_path / "predictions.jsonl"
    rows = [
        {"key": "a#0@0", "text": "x y", "finish_reason": "length", "output_tokens": 192},
        {"key": "b#0@0", "text": "z", "ttft_s": 0.1},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cut, plain = ReplayEngine(f).generate(
        [Request([], key="a#0@0"), Request([], key="b#0@0")], Decoding()
    )
    assert (cut.finish_reason, cut.output_tokens) == ("length", 192)
    assert (plain.finish_reason, plain.output_tokens) == ("stop", 1)
    f.write_text('{"key": "a#0@0", "text": "x", "finish_reason": 3}\n')
    with pytest.raises(EngineError, match="predictions.jsonl:1.*finish_reason"):
        ReplayEngine(f)


def test_unknown_engine() -> None:
    with pytest.raises(EngineError, match="unknown"):
        make_engine("nope")


# --- transformers on tiny-random ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolsft.models import resolve_model

    return Path(resolve_model("tiny-random", tmp_path_factory.mktemp("home")))


def test_hf_engine_free_constrained_and_required(tiny: Path) -> None:
    eng = make_engine("hf", model=tiny, batch_size=2)
    msgs = [
        [{"role": "user", "content": "cancel DD12345678"}],
        [{"role": "user", "content": "hi " * 40}],
        [{"role": "user", "content": "ok"}],
    ]
    reqs = [Request(m, TOOLS, str(i)) for i, m in enumerate(msgs)]
    free = eng.generate(reqs, Decoding(max_tokens=6))
    assert len(free) == 3 and all(g.output_tokens <= 6 and g.prompt_tokens > 100 for g in free)
    assert all(g.ttft_s is not None and g.latency_s >= g.ttft_s for g in free)
    again = eng.generate(reqs, Decoding(max_tokens=6))
    assert [g.text for g in again] == [g.text for g in free]  # greedy is deterministic
    forced = eng.generate(reqs, Decoding(max_tokens=60, tool_choice="required"))
    closed = [g for g in forced if "</tool_call>" in g.text]
    assert all(g.text.startswith('<tool_call>\n{"name": "') for g in forced)
    assert closed  # a random model, forced into the grammar, still writes valid calls
    for g in closed:
        parsed = parse_assistant(g.text)
        assert parsed.ok and parsed.calls and not call_validity(SPECS, parsed.calls[0])
    assert eng.info()["engine"] == "hf"


def test_cpu_engines_serve_fp32_where_bf16_is_emulated() -> None:
    """vLLM's "auto" dtype means the checkpoint's bf16; on a CPU without native bf16 that is
    emulated (minutes per eval), so the CPU engine asks for fp32 there; explicit dtypes stay."""
    from toolsft.engines.vllm_engine import cpu_dtype

    assert cpu_dtype("auto", bf16=False) == "float32"
    assert cpu_dtype("auto", bf16=True) == "auto"
    assert cpu_dtype("bfloat16", bf16=False) == "bfloat16"
