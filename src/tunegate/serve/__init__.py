"""Serve stage: the HTTP server (classify, OpenAI-compatible chat and embeddings, feedback, metrics)."""

from tunegate.serve.app import create_app
from tunegate.serve.events import FeedbackEvent, Observer, RequestEvent
from tunegate.serve.holder import ModelHolder, Served
from tunegate.serve.settings import ServeSettings

__all__ = [
    "FeedbackEvent",
    "ModelHolder",
    "Observer",
    "RequestEvent",
    "ServeSettings",
    "Served",
    "create_app",
]
