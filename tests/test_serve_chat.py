"""Chat serving paths: a trained-artifact layout (sft.json + stored template) loads and generates with
its own end-of-turn token; low mean log-probability answers are escalated; streams stop on disconnect."""

from __future__ import annotations

import json
import shutil

import httpx

from test_serve_support import key_lookup, register, running_server, tiny_chat_folder
from tunegate.serve import ServeSettings, create_app
from tunegate.serve.chat import ChatModel
from tunegate.store import open_store

AUTH = {"Authorization": "Bearer sk-test-alice"}


def _as_sft_artifact(plain, root):
    """The layout train/sft.py writes for full fine-tuning: sft.json, chat_template.jinja, tokenizer/, model/."""
    folder = root / "sft-artifact"
    shutil.copytree(plain, folder / "model")
    shutil.copytree(plain, folder / "tokenizer")
    template = (
        json.loads((plain / "tokenizer_config.json").read_text()).get("chat_template")
        or (plain / "chat_template.jinja").read_text()
    )
    (folder / "chat_template.jinja").write_text(template)
    (folder / "sft.json").write_text(
        json.dumps(
            {"format": "tunegate.sft/1", "method": "full", "end_of_turn": "</s>", "base_model": "tiny"}
        )
    )
    return folder


def test_a_trained_chat_artifact_loads_with_its_stored_template(tmp_path) -> None:
    folder = _as_sft_artifact(tiny_chat_folder(tmp_path), tmp_path)
    chat = ChatModel.load(folder, tmp_path / "cache")
    prompt = chat.prompt_ids([{"role": "user", "content": "hi"}])
    assert chat.tokenizer.decode(prompt) == "<s>user: hi</s><s>assistant: "
    pieces = list(chat.stream(prompt, max_tokens=8, temperature=0))
    assert 1 <= len(pieces) <= 8 and pieces[-1].finish_reason in ("stop", "length")
    assert all(p.logprob <= 0 for p in pieces)
    again = list(chat.stream(prompt, max_tokens=8, temperature=0))
    assert [p.text for p in again] == [p.text for p in pieces]  # greedy is deterministic


def test_low_logprob_answers_are_flagged_and_queued(tmp_path) -> None:
    store = open_store(tmp_path / "ws")
    register(store, tiny_chat_folder(tmp_path), "assistant", task="sft")
    # A random model is unsure of every token: with the threshold at -0.5 every answer is escalated.
    app = create_app(store, ServeSettings(authenticate=key_lookup, mean_logprob_threshold=-0.5))
    body = {
        "model": "assistant",
        "messages": [{"role": "user", "content": "my email is a.b@example.com"}],
        "max_tokens": 6,
    }
    with running_server(app) as url:
        whole = httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=60).json()
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, headers=AUTH, timeout=60
        ) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert whole["tunegate"]["escalated"] is True and whole["tunegate"]["mean_logprob"] < -0.5
    last = json.loads(lines[-2][6:])
    assert lines[-1] == "data: [DONE]" and last["tunegate"]["escalated"] is True
    queued = app.state.ctx.signals.open_escalations()
    assert {q.request_id for q in queued} == {whole["id"], last["id"]}
    assert all("a.b@example.com" not in q.input_redacted for q in queued)
    assert all(q.signal == "mean_logprob" for q in queued)
