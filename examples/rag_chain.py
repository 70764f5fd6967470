"""Retrieval-augmented generation: the store's retriever in an LCEL chain.

    pip install '.[embedded,e5]'                       # from a checkout
    python examples/rag_chain.py                       # the built-in questions
    python examples/rag_chain.py "How long is a marathon?"
    python examples/rag_chain.py --dsn postgresql://user:pass@host/db --search-type mmr

Loads a small built-in corpus (one sentence per chunk, each tagged with the
document it came from) into a collection, then answers each question with

    {"docs": retriever, "question": passthrough}
        .assign(answer = prompt | chat model | StrOutputParser())

and prints the question, the retrieved sources and the answer, which cites
its source in square brackets.

With `OPENAI_API_KEY` set the chat model is OpenAI's (`--model`, default
gpt-4o-mini), called through the `openai` package. Without it an offline
stand-in answers: `ExtractiveChatModel` reads the same prompt and returns the
context sentence that shares the most words with the question, with its
source. It is deterministic and needs no network; it extracts, it does not
write. Embeddings are always the local multilingual-e5-small
(`E5SmallEmbeddings`), so no key is needed for retrieval.

The database is the embedded one unless `--dsn` names a server.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import (
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)
from typing_extensions import override

from langchain_pgvstore import PGVStore
from langchain_pgvstore.embeddings import E5SmallEmbeddings

# One entry per source document; each sentence is stored as its own chunk.
CORPUS: dict[str, list[str]] = {
    "pgvector-guide.md": [
        "pgvector adds a vector column type and nearest-neighbour search to PostgreSQL.",
        "The <=> operator returns the cosine distance between two vectors.",
        "The <-> operator returns the Euclidean distance between two vectors.",
        "An HNSW index is a layered graph that answers approximate nearest-neighbour queries.",
        "Raising hnsw.ef_search improves recall at the cost of slower queries.",
        "An IVFFlat index splits the vectors into lists and scans only the closest ones.",
    ],
    "postgres-notes.md": [
        "PostgreSQL stores JSON documents efficiently in the jsonb type.",
        "A GIN index on a jsonb column serves containment queries written with @>.",
        "VACUUM reclaims the space left behind by updated and deleted rows.",
        "Every statement in PostgreSQL runs inside a transaction.",
        "The tsvector type holds the normalised words of a document for full-text search.",
        "Binary COPY is the fastest way to load many rows into a table.",
    ],
    "solar-system.md": [
        "Jupiter is the largest planet in the solar system.",
        "Saturn's rings are made mostly of ice particles.",
        "Mars has the tallest volcano known, Olympus Mons.",
        "Venus is the hottest planet because its thick atmosphere traps heat.",
        "Sunlight takes about eight minutes to reach the Earth.",
        "Neptune is the planet farthest from the Sun.",
    ],
    "baking.md": [
        "Bread dough rises because yeast produces carbon dioxide.",
        "A sourdough starter is a culture of wild yeast and lactic acid bacteria.",
        "Kneading develops gluten, which gives bread its chewy structure.",
        "Bake bread in a very hot oven, around 230 degrees Celsius.",
        "Let a loaf cool before slicing so the crumb can set.",
        "A pinch of salt strengthens the gluten and slows fermentation.",
    ],
    "running.md": [
        "A marathon is 42.195 kilometres long.",
        "Most marathon training plans build up to a long run of about 32 kilometres.",
        "Tapering means running less in the last two weeks before a race.",
        "Easy runs should be slow enough that you can hold a conversation.",
        "Interval training alternates fast repeats with recovery jogs.",
        "Drink regularly on hot days to avoid dehydration.",
    ],
    "git-handbook.md": [
        "A git commit records a snapshot of the project together with its parent commits.",
        "A branch in git is a movable pointer to a commit.",
        "git bisect finds the commit that introduced a bug by binary search.",
        "git rebase replays commits on top of another base, rewriting their history.",
        "git stash sets uncommitted changes aside so you can switch branches.",
        "A merge commit has two or more parents.",
    ],
}

QUESTIONS = [
    "Which operator gives the cosine distance?",
    "How long is a marathon?",
    "Why does bread dough rise?",
    "Which git command finds the commit that introduced a bug?",
]

SYSTEM_PROMPT = (
    "Answer the question using only the context. Each context line starts with its"
    " source in square brackets. Answer in one or two sentences and cite the source"
    " of your answer in square brackets, like [solar-system.md]. If the context does"
    " not contain the answer, say that you don't know."
)

PROMPT = ChatPromptTemplate.from_messages(
    [("system", SYSTEM_PROMPT), ("human", "Context:\n{context}\n\nQuestion: {question}")]
)


def corpus_rows() -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """Texts, metadatas and stable ids of the built-in corpus."""
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    ids: list[str] = []
    for source, sentences in CORPUS.items():
        for n, sentence in enumerate(sentences):
            texts.append(sentence)
            metadatas.append({"source": source, "line": n + 1})
            ids.append(f"{source}#{n + 1}")
    return texts, metadatas, ids


def format_docs(docs: Sequence[Document]) -> str:
    """One context line per document: `[source] text`."""
    return "\n".join(
        f"[{d.metadata.get('source', 'unknown')}] {' '.join(d.page_content.split())}" for d in docs
    )


# -- the offline chat model -----------------------------------------------------------

_STOP_WORDS = frozenset(
    """a about an and are as at be because by can do does for from give gives has have how
    in into is it its of on or than that the their them then there these this to was what
    when where which who why will with you your""".split()
)
_WORD = re.compile(r"[\w<>=@#.-]+")
_CONTEXT_LINE = re.compile(r"^\[(?P<source>[^\]]+)\] (?P<text>.+)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _stem(word: str) -> str:
    # Just enough to match "rises" with "rise" and "vectors" with "vector".
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, lightly stemmed words of `text`, without stop words."""
    words = (w.strip(".-").lower() for w in _WORD.findall(text))
    return {_stem(w) for w in words if w and w not in _STOP_WORDS}


def _parse_prompt(text: str) -> tuple[list[tuple[str, str]], str]:
    """The `(source, sentence)` pairs and the question of a prompt made by PROMPT."""
    context, _, question = text.rpartition("\nQuestion: ")
    pairs: list[tuple[str, str]] = []
    for line in context.removeprefix("Context:\n").splitlines():
        match = _CONTEXT_LINE.match(line)
        if match:
            for sentence in _SENTENCE_END.split(match["text"]):
                pairs.append((match["source"], sentence))
    return pairs, question.strip()


def extract_answer(text: str) -> str:
    """The context sentence sharing the most words with the question, citing its source.

    Ties go to the sentence that came first in the context, i.e. the one the
    retriever ranked higher.
    """
    pairs, question = _parse_prompt(text)
    wanted = content_words(question)
    best: tuple[int, str, str] | None = None
    for source, sentence in pairs:
        overlap = len(wanted & content_words(sentence))
        if overlap and (best is None or overlap > best[0]):
            best = (overlap, source, sentence)
    if best is None:
        return "I don't know: the retrieved context does not answer this question."
    return f"{best[2]} [{best[1]}]"


def message_text(message: BaseMessage) -> str:
    """The text of a message whose content is a string or a list of content blocks."""
    if isinstance(message.content, str):
        return message.content
    parts = [b if isinstance(b, str) else str(b.get("text", "")) for b in message.content]
    return "".join(parts)


class ExtractiveChatModel(BaseChatModel):
    """A deterministic, offline stand-in for a chat model: extractive answers with citations.

    It reads the last human message of a prompt made by `PROMPT` and answers
    with `extract_answer`.
    """

    @property
    @override
    def _llm_type(self) -> str:
        return "extractive"

    @override
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        human = [m for m in messages if isinstance(m, HumanMessage)]
        text = message_text(human[-1]) if human else ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(extract_answer(text)))])


# -- OpenAI, through the openai package ---------------------------------------------

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def openai_chat(model: str) -> Runnable[PromptValue, AIMessage]:
    """OpenAI chat completions as a Runnable from a prompt to an `AIMessage`.

    The client reads `OPENAI_API_KEY` (and `OPENAI_BASE_URL`, if set).
    """
    import openai

    def call(prompt: PromptValue) -> AIMessage:
        messages: Any = [
            {"role": _ROLES.get(m.type, "user"), "content": message_text(m)}
            for m in prompt.to_messages()
        ]
        with openai.OpenAI() as client:
            response = client.chat.completions.create(model=model, messages=messages, temperature=0)
        return AIMessage(response.choices[0].message.content or "")

    return RunnableLambda(call, name=f"openai:{model}")


# -- the chain --------------------------------------------------------------------


def build_chain(
    retriever: Runnable[str, list[Document]], llm: Runnable[Any, Any]
) -> Runnable[str, dict[str, Any]]:
    """question → {"question", "docs", "answer"}; the docs are returned for citing."""
    answer = (
        RunnablePassthrough.assign(context=lambda x: format_docs(x["docs"]))
        | PROMPT
        | llm
        | StrOutputParser()
    )
    return RunnableParallel(question=RunnablePassthrough(), docs=retriever).assign(answer=answer)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("questions", nargs="*", help="questions to answer (default: a few)")
    parser.add_argument("--dsn", help="PostgreSQL DSN (default: the embedded server)")
    parser.add_argument("--collection", default="rag_demo", help="collection to use")
    parser.add_argument("--model", default="gpt-4o-mini", help="OpenAI chat model")
    parser.add_argument("-k", type=int, default=4, help="documents to retrieve")
    parser.add_argument(
        "--search-type", choices=("similarity", "mmr", "hybrid"), default="similarity"
    )
    args = parser.parse_args(argv)

    if os.environ.get("OPENAI_API_KEY"):
        llm: Runnable[Any, Any] = openai_chat(args.model)
        print(f"chat model: OpenAI {args.model}")
    else:
        llm = ExtractiveChatModel()
        print("chat model: offline extractive stand-in (set OPENAI_API_KEY to use OpenAI)")

    with PGVStore(E5SmallEmbeddings(), connection=args.dsn, collection=args.collection) as store:
        texts, metadatas, ids = corpus_rows()
        store.add_texts(texts, metadatas, ids=ids)  # an upsert: re-running changes nothing
        search_kwargs: dict[str, Any] = {"k": args.k}
        if args.search_type == "mmr":
            search_kwargs["fetch_k"] = max(20, 4 * args.k)
        retriever = store.as_retriever(search_type=args.search_type, search_kwargs=search_kwargs)
        chain = build_chain(retriever, llm)

        for question in args.questions or QUESTIONS:
            result = chain.invoke(question)
            print(f"\nquestion: {question}")
            print("sources:")
            for n, doc in enumerate(result["docs"], start=1):
                print(f"  {n}. [{doc.metadata['source']}] {doc.page_content}")
            print(f"answer: {result['answer']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
