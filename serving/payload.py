"""What the data plane is handed: a decoded request and the transport's input source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ml.manifest import InputSchema

if TYPE_CHECKING:
    from serving.codecs import InputCodec


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured bounds on one request's input."""

    max_batch_rows: int
    max_audio_seconds: float


@dataclass(slots=True)
class InputRecord:
    """What the trace records of the input, filled in as it is decoded (even a bad one)."""

    value: Any = None


@dataclass(slots=True)
class Payload:
    """An input understood: the instances to predict and what the trace records."""

    kind: str
    instances: list[Any]
    record: Any
    is_batch: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    """Facts about the input to return to the client (audio duration and sample rate)."""


class InputSource(Protocol):
    """A transport's undecoded input: it decodes once the model, and so its codec, is known."""

    async def decode(
        self, codec: InputCodec, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload: ...


@dataclass(slots=True)  # not frozen: one per request, and a frozen __init__ costs 3 times more
class PredictRequest:
    """One prediction request as every transport hands it to the data plane."""

    model: str | None
    """The model reference as sent (``name``, ``name@version``); None for the default."""
    source: InputSource
    request_id: str
    protocol: str = "rest"
    """Which transport took the request (``rest``, ``v2``): a column of the trace row."""
