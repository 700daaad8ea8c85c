"""The official `openai` client against `tunegate serve` in its own process (a real uvicorn):
a chat completion, a streamed one, embeddings, and errors it raises as the OpenAI API's own."""

from __future__ import annotations

import openai
import pytest

from test_serve_support import classifier_folder, register, serve_process, tiny_chat_folder
from tunegate.review.access import add_user
from tunegate.store import open_store


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("openai")
    store = open_store(root / "ws")
    register(store, tiny_chat_folder(root), "assistant", task="sft")
    register(store, classifier_folder(root), "tickets")
    _, key = add_user(store, None, "alice", "admin")
    with serve_process(root / "ws") as (process, url):
        yield url, key, process


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_chat_completion(server) -> None:
    url, key, _ = server
    reply = client(url, key).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "Hello there"}],
        max_tokens=12,
        temperature=0,
    )
    assert reply.model == "assistant@1"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens >= 1 and reply.usage.prompt_tokens > 0
    assert isinstance(reply.choices[0].message.content, str)


def test_streaming_matches_the_whole_answer(server) -> None:
    url, key, _ = server
    messages = [{"role": "user", "content": "Tell me something"}]
    whole = client(url, key).chat.completions.create(
        model="assistant", messages=messages, max_tokens=16, temperature=0
    )
    chunks = list(
        client(url, key).chat.completions.create(
            model="assistant", messages=messages, max_tokens=16, temperature=0, stream=True
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) >= 3  # role chunk, content chunk(s), final chunk
    assert streamed == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.id == chunks[0].id for c in chunks)


def test_embeddings_through_the_client(server) -> None:
    url, key, _ = server
    result = client(url, key).embeddings.create(model="tickets", input=["where is my parcel", "refund"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 384


def test_errors_are_raised_as_openai_errors(server) -> None:
    url, key, _ = server
    with pytest.raises(openai.BadRequestError) as too_long:
        client(url, key).chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "x" * 5000}],
            max_tokens=4,
        )
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError):
        client(url, key).chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        client(url, "tg_wrong").chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "x"}]
        )
