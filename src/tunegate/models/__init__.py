"""What a trained model is at run time: resolving base models, loading artifacts, predicting.

Every later stage (evaluate, serve, monitor) loads models through here; none imports `train`.
"""

from tunegate.models.base import PACKAGED_ENCODERS, resolve_encoder
from tunegate.models.classifier import (
    LinearHead,
    Prediction,
    TextClassifier,
    inference_autocast,
    load_encoder,
    softmax,
)

__all__ = [
    "PACKAGED_ENCODERS",
    "LinearHead",
    "Prediction",
    "TextClassifier",
    "inference_autocast",
    "load_encoder",
    "resolve_encoder",
    "softmax",
]
