"""POST /v1/classify, /v1/embeddings and /v1/feedback: the encoder endpoints and the feedback channel.

Classify and embeddings share one micro-batcher per served version (an embedding is the first half
of a classification, so both ride the same forward). Inputs over the token limit are refused with
400 rather than silently truncated: a truncated text would be answered about a different text.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tunegate.serve.context import ServeContext, new_request_id, now_s, record, record_route
from tunegate.serve.errors_http import ApiError
from tunegate.serve.escalation import needs_review
from tunegate.serve.events import FeedbackEvent
from tunegate.serve.holder import Served, TextResult

MAX_TEXTS_PER_REQUEST = 256

router = APIRouter()


class _Lenient(BaseModel):
    # OpenAI clients send fields we do not use (user, dimensions, ...); ignoring them is compatibility.
    model_config = ConfigDict(extra="ignore")


class ClassifyRequest(_Lenient):
    model: str | None = Field(None, description="name, name@production (default) or name@staging.")
    input: str | list[str]


class EmbeddingsRequest(_Lenient):
    model: str | None = None
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


class FeedbackRequest(_Lenient):
    request_id: str = Field(min_length=1, max_length=64)
    correct: bool | None = Field(None, description="Was the answer right?")
    label: str | None = Field(None, max_length=200, description="The right label, when the answer was wrong.")
    comment: str | None = Field(None, max_length=4000)


def _texts(value: str | list[str]) -> list[str]:
    texts = [value] if isinstance(value, str) else list(value)
    if not texts:
        raise ApiError(400, "input is empty", param="input")
    if len(texts) > MAX_TEXTS_PER_REQUEST:
        raise ApiError(
            400, f"{len(texts)} inputs in one request; the limit is {MAX_TEXTS_PER_REQUEST}", param="input"
        )
    return texts


async def _encode(ctx: ServeContext, served: Served, texts: list[str]) -> tuple[list[TextResult], int]:
    if served.classifier is None or served.batcher is None:
        raise ApiError(400, f"{served.ref} is a generation model; use /v1/chat/completions", param="model")
    counts = served.count_tokens(texts)
    longest = max(counts)
    if longest > ctx.settings.max_input_tokens:
        raise ApiError(
            400,
            f"input {counts.index(longest)} has {longest} tokens; this server accepts at most "
            f"{ctx.settings.max_input_tokens} per input",
            param="input",
            code="context_length_exceeded",
        )
    try:
        results = await asyncio.wait_for(served.batcher.submit(texts), ctx.settings.request_timeout_s)
    except TimeoutError:
        raise ApiError(
            504, f"no answer within {ctx.settings.request_timeout_s:g} s", code="timeout"
        ) from None
    return results, sum(counts)


@router.post("/v1/classify")
async def classify(body: ClassifyRequest, request: Request) -> dict[str, Any]:
    ctx: ServeContext = request.app.state.ctx
    user = ctx.authenticate(request)
    texts = _texts(body.input)
    request_id = new_request_id()
    async with ctx.holder.lease(body.model) as (served, route):
        record_route(
            request, endpoint="classify", request_id=request_id, served=served, route=route, user=user
        )
        results, tokens = await _encode(ctx, served, texts)
        classifier = served.classifier
        assert classifier is not None
        outputs, confidences, labels, escalated = [], [], [], 0
        threshold = ctx.settings.confidence_threshold
        for text, result in zip(texts, results, strict=True):
            best = int(result.probabilities.argmax())
            confidence = float(result.probabilities[best])
            flagged = needs_review(confidence, threshold)
            output = {
                "label": classifier.labels[best],
                "confidence": confidence,
                "escalated": flagged,
                "probabilities": {
                    k: float(p) for k, p in zip(classifier.labels, result.probabilities, strict=True)
                },
            }
            if flagged:
                escalated += 1
                ctx.signals.escalate(
                    request_id=request_id,
                    model_ref=served.ref,
                    endpoint="classify",
                    text=text,
                    output=output,
                    signal="confidence",
                    value=confidence,
                    threshold=threshold,
                )
                ctx.metrics.escalations.labels(served.version.name, "classify").inc()
            ctx.metrics.confidence.labels(served.version.name).observe(confidence)
            outputs.append(output)
            confidences.append(confidence)
            labels.append(output["label"])
        ctx.remember(request_id, served.ref)
        record(
            request,
            texts=tuple(texts),
            labels=tuple(labels),
            confidences=tuple(confidences),
            escalated=escalated,
            embeddings=np.stack([r.embedding for r in results]),
        )
        return {
            "id": request_id,
            "object": "classification",
            "created": now_s(),
            "model": served.ref,
            "route": route,
            "results": outputs,
            "escalated": escalated > 0,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
    ctx: ServeContext = request.app.state.ctx
    user = ctx.authenticate(request)
    texts = _texts(body.input)
    request_id = new_request_id("emb")
    async with ctx.holder.lease(body.model) as (served, route):
        record_route(
            request, endpoint="embeddings", request_id=request_id, served=served, route=route, user=user
        )
        results, tokens = await _encode(ctx, served, texts)
        vectors = [r.embedding.astype(np.float32) for r in results]
        record(request, texts=tuple(texts), embeddings=np.stack(vectors))
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.tobytes()).decode()
                if body.encoding_format == "base64"
                else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": served.ref,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


@router.post("/v1/feedback")
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    ctx: ServeContext = request.app.state.ctx
    user = ctx.authenticate(request)
    if body.correct is None and body.label is None and body.comment is None:
        raise ApiError(400, "feedback needs at least one of correct, label, comment", param="correct")
    model_ref = ctx.recent.get(body.request_id)
    ctx.signals.feedback(
        request_id=body.request_id,
        model_ref=model_ref,
        correct=body.correct,
        label=body.label,
        comment=body.comment,
        user=user,
    )
    verdict = "unknown" if body.correct is None else ("correct" if body.correct else "wrong")
    ctx.metrics.feedback.labels(verdict).inc()
    record(request, endpoint="feedback", user=user)
    ctx.notify(
        FeedbackEvent(
            body.request_id,
            request.state.arrived_s if hasattr(request.state, "arrived_s") else float(now_s()),
            body.correct,
            body.label,
            model_ref,
        )
    )
    return {"object": "feedback", "request_id": body.request_id, "model": model_ref, "recorded": True}
