"""A tiny random chat model for the SFT tests: byte-level tokenizer, ChatML template, 2-layer Llama.

Built in the test, saved as an ordinary local HF folder, so it goes through the same loading path as
any user's base model. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The end-of-turn token is emitted at the start of the *next* message, so the last assistant turn of a
# conversation never contains it: training on this template would never teach the model to stop.
EOT_IN_NEXT_TURN = (
    "{% for message in messages %}{% if not loop.first %}{{ '<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_end|>\n<|im_start|>assistant\n' }}{% endif %}"
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def make_tokenizer(chat_template: str = CHATML):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=SPECIALS,
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def make_model(vocab_size: int, seed: int = 0, eos_id: int = 2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return LlamaForCausalLM(config)


def save_tiny_base(folder: Path, chat_template: str = CHATML, seed: int = 0) -> Path:
    """A complete local base-model folder (config, safetensors weights, tokenizer, chat template)."""
    tokenizer = make_tokenizer(chat_template)
    model = make_model(len(tokenizer), seed=seed, eos_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def conversation(i: int) -> dict:
    """A short, varied conversation; `i` picks the words so rows differ."""
    words = ["ocean", "harbor", "signal", "anchor", "lantern", "compass", "tide", "reef", "sail", "dock"]
    a, b = words[i % len(words)], words[(i * 3 + 1) % len(words)]
    return {
        "id": f"c{i}",
        "messages": [
            {"role": "user", "content": f"Tell me about the {a} number {i}."},
            {"role": "assistant", "content": f"The {a} {i} sits next to the {b}."},
        ],
    }


def write_chat_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
