"""What a voice message says and what an image shows, in words, from Groq.

A voice message goes to speech-to-text (`audio.transcriptions`, GROQ_TRANSCRIPTION_MODEL); an
image to a vision model (GROQ_VISION_MODEL) as a chat completion with an `image_url` part: the
image itself as a data URL when that fits Groq's 4 MB limit for one, else its URL, which Groq
fetches. The same client as the replies' (conversations.llm), so the same key, base URL,
timeout and no retries of its own; errors are its typed ones. Each call is counted and timed
in /metrics.
"""

import base64
import contextlib
import mimetypes
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import groq
from django.conf import settings

from conversations import pacing
from conversations.insights.metrics import MEDIA_CALLS, MEDIA_LATENCY
from conversations.llm import (
    PermanentLLMError,
    TransientLLMError,
    get_groq_client,
    groq_error_typed,
    groq_refusal_recorded,
)
from conversations.text import text_storable

# Groq takes a base64 image of at most 4 MB in a request; a larger one goes as its URL.
DATA_URL_MAX_CHARS = 4 * 1024 * 1024
# A description longer than this is the model rambling: cut, and the prompt budget cuts again.
_TEXT_MAX_CHARS = 4000
VISION_INSTRUCTION = (
    "A customer sent this image to a business's support chat. Describe it for the support "
    "assistant, who cannot see it: what it shows, any text in it word for word (order numbers, "
    "labels, error messages), and anything that looks damaged, wrong or missing. Plain text, at "
    "most 120 words, no preamble."
)
# Groq tells the audio format by the file name's extension; Messenger's voice notes are MP4.
_AUDIO_EXTENSIONS = (".flac", ".mp3", ".mp4", ".mpeg", ".mpga", ".m4a", ".ogg", ".opus", ".wav", ".webm")


@dataclass(frozen=True)
class Understanding:
    text: str
    model: str
    latency_ms: int


def audio_transcribe(*, body: bytes, content_type: str) -> Understanding:
    """The words spoken in the audio file `body`; an LLMError when Groq could not say."""
    model = settings.GROQ_TRANSCRIPTION_MODEL
    client = get_groq_client()
    filename = "voice" + _audio_extension(content_type)
    with _call(kind="audio", client=client, model=model) as timing:
        raw = client.audio.transcriptions.with_raw_response.create(
            model=model, file=(filename, body), response_format="json"
        )
        timing.headers, response = raw.headers, raw.parse()
    text = getattr(response, "text", None)
    if not isinstance(text, str):
        raise PermanentLLMError("Groq's response is not a transcription (unexpected response)")
    if not text.strip():
        raise PermanentLLMError("No words could be made out in it")
    return Understanding(text=_storable(text), model=model, latency_ms=timing.latency_ms)


def image_describe(*, body: bytes, content_type: str, url: str) -> Understanding:
    """What the image `body` (fetched from `url`) shows, in words; an LLMError when Groq could not say."""
    model = settings.GROQ_VISION_MODEL
    client = get_groq_client()
    image_type = content_type if content_type.startswith("image/") else "image/jpeg"
    data_url = f"data:{image_type};base64,{base64.b64encode(body).decode()}"
    content = [
        {"type": "text", "text": VISION_INSTRUCTION},
        {"type": "image_url", "image_url": {"url": data_url if len(data_url) <= DATA_URL_MAX_CHARS else url}},
    ]
    with _call(kind="image", client=client, model=model) as timing:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": content}]
        )
        timing.headers, response = raw.headers, raw.parse()
    try:
        text = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError) as error:
        raise PermanentLLMError("Groq's response is not a chat completion (unexpected response)") from error
    if not isinstance(text, str) or not text.strip():
        raise TransientLLMError("Groq described the image with no words")
    return Understanding(
        text=_storable(text), model=getattr(response, "model", None) or model, latency_ms=timing.latency_ms
    )


@dataclass
class _Timing:
    latency_ms: int = 0
    headers: Mapping[str, str] | None = None


@contextlib.contextmanager
def _call(*, kind: str, client: groq.Groq, model: str) -> Iterator[_Timing]:
    """Time one Groq call into /metrics, record what its answer says of `model`'s quota
    (conversations.pacing), and turn the SDK's errors into typed LLMErrors."""
    timing, started, outcome = _Timing(), time.monotonic(), "error"
    try:
        yield timing
        outcome = "ok"
        pacing.budget_observe(model=model, headers=timing.headers, refused=False)
    except groq.APIStatusError as error:
        groq_refusal_recorded(model=model, error=error)
        raise groq_error_typed(error, api_key=client.api_key) from error
    except groq.GroqError as error:
        raise groq_error_typed(error, api_key=client.api_key) from error
    except ValueError as error:  # e.g. a 2xx body that is not JSON
        raise PermanentLLMError("Groq's response is not JSON (unexpected response)") from error
    finally:
        latency = time.monotonic() - started
        timing.latency_ms = round(latency * 1000)
        MEDIA_LATENCY.labels(kind=kind).observe(latency)
        MEDIA_CALLS.labels(kind=kind, outcome=outcome).inc()


def _audio_extension(content_type: str) -> str:
    extension = mimetypes.guess_extension(content_type) or ""
    if content_type in ("audio/mp4", "video/mp4", "audio/x-m4a"):
        extension = ".mp4"
    return extension if extension in _AUDIO_EXTENSIONS else ".mp4"


def _storable(text: str) -> str:
    text = text_storable(text).strip()
    return text if len(text) <= _TEXT_MAX_CHARS else text[: _TEXT_MAX_CHARS - 1] + "…"
