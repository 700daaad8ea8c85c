"""Export a trained chat model to the formats large-scale servers load.

- `export_adapter`: a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) that
  servers serving LoRA adapters on a base model load (vLLM `--lora-modules`, TGI, PEFT itself), with
  the tokenizer and the chat template beside it. `base_model_name_or_path` names the local base folder.
- `export_merged`: a plain HF folder with the adapter merged into the base weights (safetensors),
  the tokenizer carrying the trained chat template, and a generation config whose EOS is the
  end-of-turn token, so `AutoModelForCausalLM` + `apply_chat_template` + `generate` behave as trained.

Both round-trip: reloading the export gives the same greedy answers (tests/test_sft_export.py).
GGUF export for llama.cpp is not done here (llama.cpp's own converter reads the merged folder).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tunegate.errors import ModelError
from tunegate.models.causal_lm import load_chat_model, read_artifact_info, resolve_causal_lm


def _fresh(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise ModelError(f"{out} exists and is not empty; export into a new folder")
    out.mkdir(parents=True, exist_ok=True)


def export_adapter(artifact: Path, out: Path, cache_dir: Path, base_dir: Path | None = None) -> Path:
    info = read_artifact_info(artifact)
    if info["method"] != "lora":
        raise ModelError(f"{artifact}: a full fine-tune has no adapter; export it merged")
    _fresh(out)
    for item in (artifact / "adapter").iterdir():
        shutil.copy2(item, out / item.name)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(resolve_causal_lm(info["base_model"], cache_dir, base_dir))
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    for item in (artifact / "tokenizer").iterdir():
        shutil.copy2(item, out / item.name)
    shutil.copy2(artifact / "chat_template.jinja", out / "chat_template.jinja")
    return out


def export_merged(artifact: Path, out: Path, cache_dir: Path, base_dir: Path | None = None) -> Path:
    _fresh(out)
    # float32, as trained: the stored inference dtype is how tunegate runs it, not what it exports.
    chat = load_chat_model(artifact, cache_dir, base_dir, merge=True, dtype="float32")
    chat.model.generation_config.eos_token_id = chat.eot_id
    chat.model.generation_config.pad_token_id = chat.pad_id
    chat.model.save_pretrained(str(out), safe_serialization=True)
    # The tokenizer carries the trained template, so any server applying "the model's chat template"
    # applies this one.
    chat.tokenizer.chat_template = chat.template.source
    chat.tokenizer.save_pretrained(str(out))
    return out
