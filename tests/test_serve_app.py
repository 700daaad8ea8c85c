"""The server end to end on a real uvicorn: classify with escalation, embeddings, feedback, limits,
OpenAI-style errors, metrics, health, canary routing, and hot swap under load without a failed request."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from test_serve_support import classifier_folder, key_lookup, register, running_server
from tunegate.models import TextClassifier
from tunegate.serve import RequestEvent, ServeSettings, create_app
from tunegate.store import open_store
from tunegate.store.lifecycle import force_stage

AUTH = {"Authorization": "Bearer sk-test-alice"}
TEXTS = ["my card was charged twice", "where is my parcel", "the app crashes on login", "refund please"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return classifier_folder(root, seed=0), classifier_folder(root, seed=1)


@pytest.fixture
def store(tmp_path, folders):
    store = open_store(tmp_path / "ws")
    register(store, folders[0], "tickets")
    return store


def settings(**overrides) -> ServeSettings:
    base = dict(authenticate=key_lookup, reload_interval_s=0.2, confidence_threshold=0.9)
    return ServeSettings(**{**base, **overrides})


def test_classify_answers_flags_low_confidence_and_queues_it(store, folders) -> None:
    events: list[RequestEvent] = []
    app = create_app(store, settings(), observers=[events.append])
    with running_server(app) as url:
        r = httpx.post(f"{url}/v1/classify", json={"model": "tickets", "input": TEXTS}, headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
    expected = TextClassifier.load(folders[0]).predict(TEXTS)
    assert body["model"] == "tickets@1" and body["route"] == "production"
    assert [x["label"] for x in body["results"]] == [p.label for p in expected]
    np.testing.assert_allclose(
        [x["confidence"] for x in body["results"]], [p.confidence for p in expected], rtol=1e-5
    )
    low = [x for x in body["results"] if x["confidence"] < 0.9]
    assert [x["escalated"] for x in body["results"]] == [x["confidence"] < 0.9 for x in body["results"]]
    queued = app.state.ctx.signals.open_escalations()
    assert len(queued) == len(low) and all(q.request_id == body["id"] for q in queued)
    classify_events = [e for e in events if e.endpoint == "classify"]
    assert classify_events and classify_events[0].status_code == 200
    assert classify_events[0].embeddings.shape == (len(TEXTS), 384)


def test_refusals_are_openai_style(store) -> None:
    app = create_app(store, settings(max_input_tokens=16, max_body_bytes=2048))
    with running_server(app) as url:
        no_key = httpx.post(f"{url}/v1/classify", json={"input": "hi"})
        bad_key = httpx.post(
            f"{url}/v1/classify", json={"input": "hi"}, headers={"Authorization": "Bearer nope"}
        )
        too_long = httpx.post(f"{url}/v1/classify", json={"input": "word " * 40}, headers=AUTH)
        too_big = httpx.post(f"{url}/v1/classify", json={"input": "x" * 5000}, headers=AUTH)
        unknown = httpx.post(f"{url}/v1/classify", json={"model": "nope", "input": "hi"}, headers=AUTH)
        invalid = httpx.post(f"{url}/v1/classify", json={"inputs": "hi"}, headers=AUTH)
        wrong_kind = httpx.post(
            f"{url}/v1/chat/completions",
            headers=AUTH,
            json={"model": "tickets", "messages": [{"role": "user", "content": "hi"}]},
        )
    for response, status in [
        (no_key, 401),
        (bad_key, 401),
        (too_long, 400),
        (too_big, 413),
        (unknown, 404),
        (invalid, 400),
        (wrong_kind, 400),
    ]:
        assert response.status_code == status, (status, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert too_long.json()["error"]["code"] == "context_length_exceeded"
    assert too_long.json()["error"]["param"] == "input"


def test_embeddings_feedback_metrics_and_health(store, folders) -> None:
    app = create_app(store, settings())
    with running_server(app) as url:
        emb = httpx.post(
            f"{url}/v1/embeddings", json={"model": "tickets", "input": TEXTS[:2]}, headers=AUTH
        ).json()
        cls = httpx.post(f"{url}/v1/classify", json={"input": TEXTS[0]}, headers=AUTH).json()
        fb = httpx.post(
            f"{url}/v1/feedback",
            json={
                "request_id": cls["id"],
                "correct": False,
                "label": "billing",
                "comment": "mail me at jane.doe@example.com",
            },
            headers=AUTH,
        )
        metrics = httpx.get(f"{url}/metrics").text
        ready = httpx.get(f"{url}/health/ready")
        live = httpx.get(f"{url}/health/live")
    expected = TextClassifier.load(folders[0]).embed(TEXTS[:2])
    np.testing.assert_allclose(np.array([d["embedding"] for d in emb["data"]]), expected, atol=1e-5)
    assert fb.status_code == 200 and fb.json()["model"] == "tickets@1"
    assert app.state.ctx.signals.feedback_count() == 1
    assert (
        'tunegate_requests_total{endpoint="classify",model="tickets@1",route="production",status="200"} 1.0'
        in metrics
    )
    assert 'tunegate_feedback_total{verdict="wrong"} 1.0' in metrics
    assert ready.status_code == 200 and ready.json()["models"]["tickets"]["production"]["version"] == 1
    assert live.status_code == 200


def test_canary_fraction_routes_to_staging(store, folders) -> None:
    register(store, folders[1], "tickets", stage="staging")
    app = create_app(store, settings(canary_fraction=0.25, canary_seed=3))
    with running_server(app) as url, httpx.Client(headers=AUTH) as client:
        routes = [client.post(f"{url}/v1/classify", json={"input": "hello"}).json() for _ in range(200)]
        pinned = client.post(f"{url}/v1/classify", json={"model": "tickets@staging", "input": "hello"}).json()
    canary = [r for r in routes if r["route"] == "canary"]
    assert all(r["model"] == "tickets@2" for r in canary)
    assert all(r["model"] == "tickets@1" for r in routes if r["route"] == "production")
    assert 0.15 < len(canary) / len(routes) < 0.35
    assert pinned["model"] == "tickets@2" and pinned["route"] == "staging"


def test_promotion_under_load_swaps_without_failing_a_request(store, folders) -> None:
    v2 = register(store, folders[1], "tickets", stage="staging")
    app = create_app(store, settings(max_concurrency=64))
    statuses: list[int] = []
    models: list[str] = []

    async def load(url: str, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            while not stop.is_set():
                r = await client.post(f"{url}/v1/classify", json={"input": TEXTS})
                statuses.append(r.status_code)
                models.append(r.json().get("model", "?"))

    async def main(url: str) -> None:
        stop = asyncio.Event()
        clients = [asyncio.create_task(load(url, stop)) for _ in range(8)]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(force_stage, store.meta, v2.id, "production", actor="test", reason="promote")
        for _ in range(100):  # the server polls the registry every 0.2 s
            await asyncio.sleep(0.1)
            if models and models[-1] == "tickets@2":
                break
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*clients)

    with running_server(app) as url:
        staged = app.state.ctx.holder.deployments["tickets"].staging
        asyncio.run(main(url))
        holder = app.state.ctx.holder
        assert holder.deployments["tickets"].production.version.id == v2.id
        assert holder.deployments["tickets"].production is staged  # promoted in place, not loaded again
    assert statuses and set(statuses) == {200}
    assert "tickets@1" in models and models[-1] == "tickets@2"
    first_v2 = models.index("tickets@2")
    assert "tickets@1" not in models[first_v2 + 8 :]  # after the swap only in-flight requests finish on v1


def test_refuses_to_start_without_a_way_to_check_keys(store) -> None:
    from tunegate.errors import ServeError

    with pytest.raises(ServeError, match="require_api_key"):
        create_app(store, ServeSettings())
    app = create_app(store, ServeSettings(require_api_key=False))
    with running_server(app) as url:
        assert httpx.post(f"{url}/v1/classify", json={"input": "hi"}).status_code == 200


def test_a_tampered_new_version_is_refused_and_the_old_one_keeps_serving(store, folders) -> None:
    v2 = register(store, folders[1], "tickets", stage="staging")
    weights = store.artifacts.path(v2.artifact_sha256) / "head.safetensors"
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)  # one changed byte range after storing
    app = create_app(store, settings())
    with running_server(app) as url:
        force_stage(store.meta, v2.id, "production", actor="test", reason="promote a tampered version")
        reload = httpx.post(f"{url}/admin/reload", headers=AUTH, timeout=60)
        r = httpx.post(f"{url}/v1/classify", json={"input": "hello"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["model"] == "tickets@1"
    assert v2.id in app.state.ctx.holder.failed and "changed" in app.state.ctx.holder.failed[v2.id]
    assert (
        reload.status_code == 200 and reload.json()["models"]["tickets"]["production"]["ref"] == "tickets@1"
    )


def test_token_counting_and_inference_threads_do_not_share_tokenizer_state(folders) -> None:
    """Regression: counting on the event loop while the inference thread encodes once corrupted batches."""
    import threading

    from tunegate.serve.holder import Served, classify_texts

    classifier = TextClassifier.load(folders[0])
    served = Served(version=None, classifier=classifier)  # type: ignore[arg-type]
    texts = [("word " * n).strip() for n in range(1, 40)]
    errors: list[BaseException] = []

    def infer() -> None:
        try:
            for i in range(20):
                classify_texts(classifier, texts[i : i + 16])
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=infer)
    worker.start()
    counts = []
    while worker.is_alive():
        counts.append(served.count_tokens(texts[:3]))
    worker.join()
    assert not errors, errors[0]
    assert all(c == counts[0] for c in counts)


def test_a_bf16_model_on_a_cpu_without_bf16_is_served_with_a_warning(
    store, folders, tmp_path, monkeypatch, caplog
) -> None:
    import json
    import shutil

    from tunegate.models import dtypes

    bf16 = tmp_path / "bf16"
    shutil.copytree(folders[0], bf16)
    meta = json.loads((bf16 / "classifier.json").read_text())
    (bf16 / "classifier.json").write_text(json.dumps({**meta, "inference_dtype": "bfloat16"}))
    register(store, bf16, "tickets-bf16")
    monkeypatch.setattr(dtypes, "cpu_bf16_native", lambda: False)
    with (
        caplog.at_level("WARNING", logger="tunegate.serve"),
        running_server(create_app(store, settings())) as url,
    ):
        r = httpx.post(f"{url}/v1/classify", json={"model": "tickets-bf16", "input": TEXTS}, headers=AUTH)
        assert r.status_code == 200, r.text
    warnings = [rec.getMessage() for rec in caplog.records if "bfloat16" in rec.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("tickets-bf16@1 inference_dtype: bfloat16")


def test_split_batches_answer_like_the_model_under_concurrent_load(store, folders) -> None:
    texts = [f"{TEXTS[i % 4]} {'and again ' * (i % 7)}".strip() for i in range(48)]
    expected = TextClassifier.load(folders[0]).predict(texts)
    app = create_app(store, settings(split_batches=True, inference_workers=2, batch_max_wait_ms=20))

    async def many(url: str) -> list[dict]:
        async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
            replies = await asyncio.gather(
                *(client.post(f"{url}/v1/classify", json={"model": "tickets", "input": [t]}) for t in texts)
            )
        assert all(r.status_code == 200 for r in replies)
        return [r.json()["results"][0] for r in replies]

    with running_server(app) as url:
        results = asyncio.run(many(url))
        batcher = app.state.ctx.holder.deployments["tickets"].production.batcher
    assert [r["label"] for r in results] == [p.label for p in expected]
    np.testing.assert_allclose(
        [r["confidence"] for r in results], [p.confidence for p in expected], rtol=1e-5
    )
    assert batcher.split is not None and batcher.batches_run < len(texts)  # shared, split batches


def test_an_onnxruntime_model_is_served_like_its_pytorch_twin_under_concurrent_load(
    store, folders, tmp_path
) -> None:
    pytest.importorskip("onnxruntime")
    twin = TextClassifier.load(folders[0])
    ort = TextClassifier(
        twin.encoder,
        twin.head,
        twin.labels,
        twin.max_length,
        {**twin.info, "inference_runtime": "onnxruntime"},
    )
    ort.save(tmp_path / "onnx")
    register(store, tmp_path / "onnx", "tickets-onnx")
    texts = [f"{TEXTS[i % 4]} {'and again ' * (i % 5)}".strip() for i in range(24)]
    expected = twin.predict(texts)
    # Two workers share one ONNX Runtime session, one thread each.
    app = create_app(store, settings(split_batches=True, inference_workers=2, batch_max_wait_ms=20))

    async def many(url: str) -> list[dict]:
        async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
            replies = await asyncio.gather(
                *(
                    client.post(f"{url}/v1/classify", json={"model": "tickets-onnx", "input": [t]})
                    for t in texts
                )
            )
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200]
        return [r.json()["results"][0] for r in replies]

    with running_server(app) as url:
        results = asyncio.run(many(url))
        served = app.state.ctx.holder.deployments["tickets-onnx"].production.classifier
    assert served.inference_runtime == "onnxruntime" and served.onnx_path.name == "encoder.onnx"
    assert [r["label"] for r in results] == [p.label for p in expected]
    np.testing.assert_allclose(
        [r["confidence"] for r in results], [p.confidence for p in expected], atol=1e-4
    )
