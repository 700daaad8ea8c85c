"""The spec sections of generative fine-tuning (task `sft`): training, generation, glossary, voice, regression.

`schema.Spec` holds these as optional sections; they are only read when `task: sft`. Like the rest of
the spec they forbid unknown keys, so a misspelled key is an error naming its dotted path.

Only description and validation live here; what the glossary and voice rules *mean* when scoring an
output is in `evaluate/generation_terms.py` and `evaluate/generation_style.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraSpec(_Strict):
    """Low-rank adapters (PEFT LoRA) on the named linear layers."""

    r: int = Field(16, ge=1, le=1024, description="Rank of each adapter.")
    alpha: int = Field(32, ge=1, description="Scaling numerator: the update is scaled by alpha / r.")
    dropout: Fraction = Field(
        0.0,
        description="Dropout on the adapter input during training (0: PEFT's default; above 0 the GPU engine "
        "is not used, see docs/sft.md).",
    )
    targets: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        min_length=1,
        description="Module names to adapt (the Llama / Qwen / Mistral / Gemma projection names).",
    )
    top_layers: int | None = Field(
        None,
        ge=1,
        description="Adapt only the top N transformer layers (None: all). Backpropagation then stops below "
        "them, which saves up to a third of the training compute.",
    )


class SftSpec(_Strict):
    """How to fine-tune a causal LM on conversations. Defaults fit SmolLM2-135M on 2 CPU cores."""

    method: Literal["lora", "full"] = Field("lora", description="lora: train adapters; full: every weight.")
    engine: Literal["auto", "trl", "tunegate"] = Field(
        "auto",
        description="Training path. trl: TRL's SFTTrainer (checkpoints, --resume); tunegate: tunegate's "
        "packed engine (fast on GPUs, eager on CPU; refused settings are errors naming the key); auto: "
        "the engine when CUDA is present and it accepts the spec, else trl. `--gpus N` needs the engine.",
    )
    lora: LoraSpec = Field(default_factory=LoraSpec)
    max_length: int = Field(
        384, ge=16, le=131072, description="Tokens per conversation; longer are truncated."
    )
    precision: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Training number format of TRL's path. float32: exact, and --resume continues to the "
        "last bit; bfloat16: matmuls in bf16 under autocast over float32 adapters (about 1.5x faster on "
        "CPUs with AVX512-BF16 or AMX, and on GPUs). The tunegate engine always computes in bf16 on GPUs.",
    )
    inference_dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Number format the trained model is evaluated, served and predicted in (stored with "
        "it; the base model is evaluated in the same one). bfloat16 generates about twice as fast in "
        "batches on CPUs with AVX512-BF16 or AMX; adapters are merged in float32 first.",
    )
    packing: bool = Field(
        True, description="Run a batch as one row without padding; attention never crosses conversations."
    )
    epochs: float = Field(2.0, gt=0, le=100, description="Passes over the training conversations.")
    batch_size: int = Field(8, ge=1, description="Conversations per optimisation step (per device).")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Batches summed before each step.")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate (AdamW, linear decay).")
    warmup_ratio: Fraction = Field(0.05, description="Share of the steps spent warming the learning rate up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    save_steps: int = Field(50, ge=1, description="Write a resumable checkpoint every this many steps.")
    eval_steps: int = Field(50, ge=1, description="Compute the validation loss every this many steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Completed checkpoints kept in the run folder.")
    validation_fraction: float = Field(
        0.1,
        ge=0.0,
        le=0.5,
        description="Training conversations held out for the validation loss (never the test set).",
    )
    seed: int = Field(42, description="Seed for the split, shuffling, adapter initialisation and dropout.")
    end_of_turn_token: str | None = Field(
        None,
        description="Token that ends an assistant turn (default: the tokenizer's EOS); it must be trained.",
    )
    estimated_tokens_per_s: float = Field(
        150.0, gt=0, description="Training speed assumed by the data check's cost estimate (measured later)."
    )


class GenerationSpec(_Strict):
    """How evaluation and `tunegate predict` generate."""

    max_new_tokens: int = Field(128, ge=1, le=8192, description="Most tokens generated per answer.")
    batch_size: int = Field(16, ge=1, description="Prompts generated together.")
    do_sample: bool = Field(False, description="false: greedy (reproducible); true: sample.")
    temperature: float = Field(0.7, gt=0, le=5, description="Sampling temperature (do_sample only).")
    top_p: Fraction = Field(1.0, description="Nucleus sampling mass (do_sample only).")
    latency_requests: int = Field(
        12, ge=3, description="Timed single requests per model for TTFT and tokens/s."
    )
    json_schema: str | None = Field(
        None, description="JSON schema file: every test answer must be a JSON document valid under it."
    )


class GlossarySpec(_Strict):
    """The domain's terminology, scored on every test answer."""

    required: list[str] = Field(
        default_factory=list,
        description="Terms an answer must use whenever its reference answer uses them (case-sensitive).",
    )
    forbidden: list[str] = Field(
        default_factory=list, description="Words an answer must never use (case-insensitive, whole words)."
    )
    preferred: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Preferred spelling -> variants that count as wrong (case-sensitive, whole words).",
    )


class VoiceRules(_Strict):
    """Checkable rules of the brand voice; each set rule is one pass/fail check per answer."""

    starts_with_any: list[str] = Field(
        default_factory=list, description="The answer opens with one of these."
    )
    ends_with_any: list[str] = Field(default_factory=list, description="The answer closes with one of these.")
    includes_any: list[str] = Field(default_factory=list, description="The answer contains one of these.")
    forbidden_phrases: list[str] = Field(
        default_factory=list, description="Phrases the voice never uses (case-insensitive)."
    )
    max_sentence_words: int | None = Field(None, ge=1, description="No sentence longer than this many words.")
    max_words: int | None = Field(None, ge=1, description="No answer longer than this many words.")
    max_exclamations: int | None = Field(None, ge=0, description="At most this many '!' per answer.")


class VoiceSpec(_Strict):
    """Brand voice: rule checks plus similarity to exemplar answers (packaged sentence encoder)."""

    rules: VoiceRules = Field(default_factory=VoiceRules)
    exemplars: list[str] = Field(default_factory=list, description="Answers written in the voice.")


class RegressionSpec(_Strict):
    """What the candidate must not forget: general text and general prompts, scored against the base."""

    general_text: str | None = Field(
        None, description="JSONL of {'text': ...}: held-out general text for perplexity, candidate vs base."
    )
    general_prompts: str | None = Field(
        None,
        description="JSONL of chat prompts with a 'reference' answer, scored by chrF, candidate vs base.",
    )


class GenerationTargets(_Strict):
    """Targets of task sft. 'beats base' means non-overlapping 95% intervals, candidate above base."""

    terminology_beats_base: bool = Field(True, description="Glossary adherence above the base model's.")
    style_beats_base: bool = Field(True, description="Voice-rule adherence above the base model's.")
    terminology_min: Fraction | None = Field(None, description="Glossary adherence must reach this.")
    style_min: Fraction | None = Field(None, description="Voice-rule adherence must reach this.")
    voice_similarity_min: float | None = Field(
        None, ge=-1, le=1, description="Mean cosine similarity to the voice exemplars must reach this."
    )
    chrf_min: float | None = Field(None, ge=0, le=100, description="chrF against the test references.")
    rouge_l_min: Fraction | None = Field(None, description="ROUGE-L F1 against the test references.")
    format_validity_min: Fraction | None = Field(None, description="Share of answers valid under the schema.")
    perplexity_increase_max: float | None = Field(
        0.25,
        ge=0,
        le=100,
        description="General-text perplexity may grow by at most this fraction over the base's.",
    )
    general_chrf_drop_max: float | None = Field(
        None, ge=0, le=100, description="chrF on general prompts may fall by at most this many points."
    )
    ttft_p95_ms_max: float | None = Field(None, gt=0, description="95th percentile time to first token (ms).")
    tokens_per_s_min: float | None = Field(None, gt=0, description="Median generation speed at batch 1.")
