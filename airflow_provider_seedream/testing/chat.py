"""Novita's OpenAI-compatible chat completions (``/openai/v1/chat/completions``) as the sandbox serves
them, for LLM-written prompts: one non-streaming completion per request, answered with a prompt
derived deterministically from the last user message (what pydantic-ai sends for a plain-text
``@task.llm``). No streaming, tools, structured output, token counting or other OpenAI endpoints:
those requests get a 400."""

from __future__ import annotations

import hashlib
import time
from typing import Any

CHAT_COMPLETIONS_PATH = "/openai/v1/chat/completions"
"""Where Novita serves its OpenAI-compatible chat API (base URL ``https://api.novita.ai/openai/v1``)."""
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def chat_request(body: Any) -> tuple[str, str]:
    """The model and the last user message's text of a chat-completions body; ``ValueError`` says what
    is wrong with it."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("'model' must be a non-empty string")
    if body.get("stream"):
        raise ValueError("the sandbox does not stream: send 'stream': false")
    if body.get("n", 1) != 1:
        raise ValueError("the sandbox answers one choice: 'n' must be 1")
    if body.get("tools") or (body.get("response_format") or {}).get("type", "text") != "text":
        raise ValueError("the sandbox answers plain text only: no tools or structured output")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    texts: dict[str, str] = {}
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES:
            raise ValueError(f"messages[{position}] needs a 'role', one of {', '.join(sorted(CHAT_ROLES))}")
        content = message.get("content")
        if isinstance(content, list):
            parts = [part.get("text") for part in content if isinstance(part, dict)]
            texts_only = [text for text in parts if isinstance(text, str)]
            if not parts or len(texts_only) != len(content):
                raise ValueError(f"messages[{position}].content: only text parts are supported")
            content = "\n".join(texts_only)
        if not isinstance(content, str):
            raise ValueError(f"messages[{position}].content must be a string or a list of text parts")
        texts[message["role"]] = content
    if "user" not in texts:
        raise ValueError("no message has the role 'user'")
    return model, texts["user"]


def chat_error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _prompt_from(question: str) -> str:
    """A deterministic image prompt for a user message: its words, tidied, with a photographer's brief."""
    words = " ".join(question.split())
    return f"{words[:400].rstrip('.')}. Photorealistic, soft natural light, clean composition."


def completion(model: str, question: str) -> dict[str, Any]:
    """The chat-completion document answering ``question``."""
    answer = _prompt_from(question)
    created = int(time.time())
    return {
        "id": f"chatcmpl-{hashlib.sha256(question.encode()).hexdigest()[:24]}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": len(question.split()),
            "completion_tokens": len(answer.split()),
            "total_tokens": len(question.split()) + len(answer.split()),
        },
    }
