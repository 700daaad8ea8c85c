"""POST /v1/chat/completions, OpenAI-compatible, whole or streamed (server-sent events).

Generation runs on its own worker thread, token by token (`ChatModel.stream`); a streamed answer is
relayed chunk by chunk through an asyncio queue. The mean token log-probability of the answer is its
confidence signal: under the spec's threshold the answer is flagged (`tunegate.escalated`, on the
last chunk when streaming) and queued for review. A stream holds its version lease, and its
concurrency slot, until the last chunk; a client that disconnects stops the generation.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tunegate.serve.chat import TokenPiece
from tunegate.serve.context import ServeContext, new_request_id, now_s, record, record_route
from tunegate.serve.errors_http import ApiError
from tunegate.serve.escalation import needs_review
from tunegate.serve.holder import Served

router = APIRouter()


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = ""

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="One choice per request.")


def _validate(ctx: ServeContext, served: Served, body: ChatRequest) -> tuple[list[int], int]:
    if served.chat is None:
        raise ApiError(400, f"{served.ref} is a classifier; use /v1/classify", param="model")
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages
    ]
    prompt_ids = served.chat.prompt_ids(messages)
    if len(prompt_ids) > ctx.settings.max_input_tokens:
        raise ApiError(
            400,
            f"the messages have {len(prompt_ids)} tokens; this server accepts at most "
            f"{ctx.settings.max_input_tokens}",
            param="messages",
            code="context_length_exceeded",
        )
    max_tokens = body.max_completion_tokens or body.max_tokens or min(256, ctx.settings.max_output_tokens)
    if max_tokens > ctx.settings.max_output_tokens:
        raise ApiError(
            400,
            f"max_tokens {max_tokens} is over this server's limit of {ctx.settings.max_output_tokens}",
            param="max_tokens",
        )
    return prompt_ids, max_tokens


async def _pieces(
    ctx: ServeContext,
    served: Served,
    prompt_ids: list[int],
    max_tokens: int,
    body: ChatRequest,
    cancel: threading.Event,
) -> AsyncIterator[TokenPiece]:
    """Run the generation on the generation thread and hand its tokens to the event loop as they come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[TokenPiece | BaseException | None] = asyncio.Queue()
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    chat = served.chat
    assert chat is not None

    def produce() -> None:
        try:
            for piece in chat.stream(
                prompt_ids,
                max_tokens=max_tokens,
                temperature=body.temperature,
                top_p=body.top_p,
                stop=stop,
                seed=body.seed,
            ):
                loop.call_soon_threadsafe(queue.put_nowait, piece)
                if cancel.is_set():
                    break
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except BaseException as exc:  # handed to the request, which answers 500
            loop.call_soon_threadsafe(queue.put_nowait, exc)

    loop.run_in_executor(ctx.generation, produce)
    while True:
        item = await queue.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _escalate(
    ctx: ServeContext, request_id: str, served: Served, body: ChatRequest, text: str, logprobs: list[float]
) -> dict[str, Any]:
    mean_logprob = sum(logprobs) / len(logprobs) if logprobs else 0.0
    flagged = needs_review(mean_logprob, ctx.settings.mean_logprob_threshold)
    if flagged:
        prompt = "\n".join(f"{m.role}: {m.text()}" for m in body.messages)
        ctx.signals.escalate(
            request_id=request_id,
            model_ref=served.ref,
            endpoint="chat",
            text=prompt,
            output={"content": text},
            signal="mean_logprob",
            value=mean_logprob,
            threshold=ctx.settings.mean_logprob_threshold,
        )
        ctx.metrics.escalations.labels(served.version.name, "chat").inc()
    return {"request_id": request_id, "escalated": flagged, "mean_logprob": mean_logprob}


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, request: Request) -> dict[str, Any] | StreamingResponse:
    ctx: ServeContext = request.app.state.ctx
    user = ctx.authenticate(request)
    served, route = ctx.holder.acquire(body.model)
    try:
        prompt_ids, max_tokens = _validate(ctx, served, body)
    except BaseException:
        ctx.holder.release(served)
        raise
    request_id = new_request_id("chatcmpl")
    record_route(request, endpoint="chat", request_id=request_id, served=served, route=route, user=user)
    created = now_s()
    cancel = threading.Event()
    ctx.remember(request_id, served.ref)

    def done(text: str, logprobs: list[float], finish: str | None) -> dict[str, Any]:
        signal = _escalate(ctx, request_id, served, body, text, logprobs)
        record(
            request,
            texts=(body.messages[-1].text(),),
            confidences=(signal["mean_logprob"],),
            escalated=int(signal["escalated"]),
        )
        return signal

    if not body.stream:
        try:
            text, logprobs, finish = "", [], None
            async with asyncio.timeout(ctx.settings.request_timeout_s):
                async for piece in _pieces(ctx, served, prompt_ids, max_tokens, body, cancel):
                    text += piece.text
                    logprobs.append(piece.logprob)
                    finish = piece.finish_reason or finish
        except TimeoutError:
            cancel.set()
            raise ApiError(
                504, f"no answer within {ctx.settings.request_timeout_s:g} s", code="timeout"
            ) from None
        finally:
            ctx.holder.release(served)
        signal = done(text, logprobs, finish)
        return {
            "id": request_id,
            "object": "chat.completion",
            "created": created,
            "model": served.ref,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish or "length",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": len(logprobs),
                "total_tokens": len(prompt_ids) + len(logprobs),
            },
            "tunegate": {**signal, "route": route},
        }

    def chunk(delta: dict[str, Any], finish: str | None, extra: dict[str, Any] | None = None) -> bytes:
        payload = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": served.ref,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **(extra or {}),
        }
        return f"data: {json.dumps(payload)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        text, logprobs, finish = "", [], None
        try:
            yield chunk({"role": "assistant", "content": ""}, None)
            async with asyncio.timeout(ctx.settings.request_timeout_s):
                async for piece in _pieces(ctx, served, prompt_ids, max_tokens, body, cancel):
                    text += piece.text
                    logprobs.append(piece.logprob)
                    finish = piece.finish_reason or finish
                    if piece.text:
                        yield chunk({"content": piece.text}, None)
        except TimeoutError:
            finish = "length"  # headers are sent: a stream can only end early, not turn into a 504
        finally:
            cancel.set()  # also reached when the client disconnects (the generator is closed)
            ctx.holder.release(served)
        signal = done(text, logprobs, finish)
        usage = {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": len(logprobs),
            "total_tokens": len(prompt_ids) + len(logprobs),
        }
        yield chunk({}, finish or "length", {"usage": usage, "tunegate": {**signal, "route": route}})
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"x-request-id": request_id})
