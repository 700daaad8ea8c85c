"""The chat template: one object that turns conversations into tokens for training, evaluation and serving.

A `ChatTemplate` is the Jinja source of the base model's template plus the token that ends an
assistant turn. Training (`encode_conversation`), evaluation and serving (`prompt_ids`) all render
through `ChatTemplate.render`, and the trained artifact stores the same source, so the text a model
was trained on is the text it is prompted with.

Which tokens are the assistant's is found by rendering prefixes of the conversation, not by
`{% generation %}` markers: the assistant turn i spans from the end of
`render(messages[:i], add_generation_prompt=True)` to the end of `render(messages[:i+1])`. That works
for any template that renders a conversation's prefix as a prefix of the whole (the templates of the
Llama, Qwen, Mistral, Gemma and SmolLM families do), and it needs no hand-edited template per family.
A template that is not prefix-preserving is refused with a ModelError naming the turn.

Deliberately not here: loading models (causal_lm.py), the policy that the end-of-turn token must be
trained (train/sft_data.py decides that; this module only reports where each turn ends).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tunegate.errors import ModelError

Message = dict[str, str]


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template and the token that ends an assistant turn (and stops generation)."""

    source: str
    end_of_turn: str
    name: str = "chat template"  # where it came from, for error messages

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.end_of_turn}\x00{self.source}".encode()).hexdigest()

    def render(self, tokenizer: Any, messages: list[Message], add_generation_prompt: bool = False) -> str:
        # The template is always passed explicitly, never taken from the tokenizer: a tokenizer loaded
        # elsewhere may carry another template, and this object is the one that was trained.
        return tokenizer.apply_chat_template(
            messages, chat_template=self.source, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def prompt_ids(self, tokenizer: Any, messages: list[Message]) -> list[int]:
        """Token ids of a conversation followed by the opening of the assistant's reply."""
        text = self.render(tokenizer, messages, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def end_of_turn_id(self, tokenizer: Any) -> int:
        token_id = tokenizer.convert_tokens_to_ids(self.end_of_turn)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ModelError(f"{self.name}: end-of-turn token {self.end_of_turn!r} is not in the vocabulary")
        return int(token_id)


def template_of(tokenizer: Any, end_of_turn: str | None = None, name: str = "chat template") -> ChatTemplate:
    """The tokenizer's own template; the end-of-turn token defaults to its EOS token."""
    source = tokenizer.chat_template
    if isinstance(source, dict):  # templates shipped as named variants
        source = source.get("default")
    if not source:
        raise ModelError(f"{name}: the tokenizer has no chat template; a chat model needs one")
    eot = end_of_turn or tokenizer.eos_token
    if not eot:
        raise ModelError(
            f"{name}: no end-of-turn token (the tokenizer has no EOS); set sft.end_of_turn_token"
        )
    return ChatTemplate(source=source, end_of_turn=eot, name=name)


@dataclass(frozen=True)
class EncodedChat:
    """A tokenized conversation.

    `token_turns[t]` is the index (in the message list) of the assistant message token t belongs to,
    or -1 for every other token. `turn_last_ids` maps each assistant message index to the last token
    of its span: the token a model trained on the conversation learns to emit when it has finished.
    """

    input_ids: list[int]
    token_turns: list[int]
    turn_last_ids: dict[int, int]

    @property
    def assistant_mask(self) -> list[int]:
        return [int(turn >= 0) for turn in self.token_turns]

    @property
    def assistant_tokens(self) -> int:
        return sum(turn >= 0 for turn in self.token_turns)


def assistant_spans(
    template: ChatTemplate, tokenizer: Any, messages: list[Message]
) -> tuple[str, dict[int, tuple[int, int]]]:
    """The rendered conversation and the character span of every assistant message, by message index."""
    full = template.render(tokenizer, messages)
    spans = {}
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before = template.render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        through = template.render(tokenizer, messages[: i + 1])
        if not through.startswith(before) or not full.startswith(through):
            raise ModelError(
                f"{template.name} does not render a conversation's beginning as the beginning of the whole "
                f"(message {i + 1}, {message.get('role')}); tokens cannot be attributed to assistant turns"
            )
        end = len(through.rstrip())  # whitespace after the end-of-turn token is never generated
        spans[i] = (len(before), end)
    return full, spans


def encode_conversation(template: ChatTemplate, tokenizer: Any, messages: list[Message]) -> EncodedChat:
    """Tokenize a whole conversation and mark which assistant message each token belongs to."""
    text, spans = assistant_spans(template, tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    turns = [-1] * len(ids)
    last_ids: dict[int, int] = {}
    for t, (a, b) in enumerate(encoded["offset_mapping"]):
        if b <= a:
            continue
        for turn, (start, end) in spans.items():
            # A token belongs to the turn when its characters start inside the span; a token that
            # straddles the span's start (a merged space) stays with the prompt.
            if start <= a < end:
                turns[t] = turn
                last_ids[turn] = ids[t]
                break
    return EncodedChat(input_ids=ids, token_turns=turns, turn_last_ids=last_ids)


def turns_without_end_of_turn(encoded: EncodedChat, messages: list[Message], eot_id: int) -> list[int]:
    """Indices of trained assistant messages (weight not 0) whose span does not end on the end-of-turn token."""
    return [
        i
        for i, m in enumerate(messages)
        if m.get("role") == "assistant" and m.get("weight", 1) != 0 and encoded.turn_last_ids.get(i) != eot_id
    ]
