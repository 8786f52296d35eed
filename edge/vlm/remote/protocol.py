"""Remote VLM wire format: ONE ZeroMQ message part each way, every limit checked before any work.

    request (robot → server):  b"EVq1" | header length (uint32, big-endian) | header JSON (RequestHeader) | frame bytes
                               frames back to back, in header order: rgb8 = H×W×3 uint8 RGB row-major (the default),
                               jpeg = one baseline JPEG file of H×W (opt-in for slow links, vlm.remote.jpeg_quality)
    reply   (server → robot):  Reply JSON

Why one part: libzmq's ZMQ_MAXMSGSIZE is checked per message part, before the part is allocated, and a multipart
message is only handed to the application once complete (docs/remote.md §1). With one part, the cap bounds the whole
request. The limits (config section `remote`, edge.common.config.RemoteConfig) are checked in the order that costs
least: total size, header size, header fields, frame count and sides, decoded pixel budget (JPEG sizes from their
headers), byte counts — and only then is a pixel decoded (by the server's worker, not here).
Both schemas are strict: no type coercion ("7" is not an int), finite numbers only, unknown fields refused.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.common.config import RemoteConfig
from engines.vlm.models import VlmFrame

MAGIC = b"EVq1"
PREFIX = struct.Struct(">4sI")  # magic, header length
CURVE_OVERHEAD = 33  # bytes CURVE adds per part: "\x07MESSAGE" + nonce 8 + flags 1 + MAC 16 (docs/remote.md §1)
REFUSAL_MARGIN = 4096  # bytes over a cap that still arrive and get a clear refusal; beyond, libzmq drops the peer
MAX_ERROR_CHARS = 1024
MAX_BUDGET_MS = 600_000
INT64 = 2**63


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class FrameSpec(Strict):
    frame_id: int = Field(ge=-INT64, lt=INT64)  # camera frame id; −1 = black padding
    height: int = Field(gt=0)  # px
    width: int = Field(gt=0)  # px
    encoding: Literal["rgb8", "jpeg"] = "rgb8"
    nbytes: int = Field(gt=0)  # bytes of this frame in the payload (rgb8: exactly height × width × 3)


class RequestHeader(Strict):
    request_id: int = Field(ge=0, lt=INT64)  # unique per robot process; a resend (link retry) keeps it
    instruction: str
    reset: bool = False  # start a new episode on the server even if the instruction is unchanged
    budget_ms: int = Field(gt=0, le=MAX_BUDGET_MS)  # what was left of the robot's deadline when it sent this
    frames: list[FrameSpec] = Field(min_length=1)


ReplyCode = Literal["", "refused", "busy", "expired", "superseded", "revoked", "model"]


class Reply(Strict):
    """ok: the fields of engines.vlm.models.VlmAnswer + server timings. not ok: `code` says why, `error` in words:
    refused (the request broke a limit or is malformed), busy (no room for another robot), expired (the robot's
    deadline passed before the work started), superseded (a newer request from the same robot replaced it),
    revoked (the robot's key was removed from the clients folder), model (the model failed)."""

    request_id: int = Field(ge=-1, lt=INT64)  # −1: the request could not be read
    ok: bool
    code: ReplyCode = ""
    error: str = Field("", max_length=MAX_ERROR_CHARS)
    text: str = ""  # ≤ RemoteConfig.max_answer_chars (checked by decode_reply)
    frame_ids: tuple[int, ...] = ()
    vision_s: float = Field(0.0, ge=0)
    prefill_s: float = Field(0.0, ge=0)
    decode_s: float = Field(0.0, ge=0)
    total_s: float = Field(0.0, ge=0)
    vision_calls: int = Field(0, ge=0)
    cache_hits: int = Field(0, ge=0)
    new_tokens: int = Field(0, ge=0)
    server_s: float = Field(0.0, ge=0)  # request received → reply sent, on the server
    queue_s: float = Field(0.0, ge=0)  # of which waiting for the model (queue + batch fill)
    batch_size: int = Field(0, ge=0)  # robots answered by the same model call
    session_reset: bool = False  # the server started a new episode for this robot with this request


class RequestRefused(ValueError):
    """A request that breaks a limit or is malformed; the message names the limit and the values. `request_id` is
    the header's when it could be read, else −1."""

    def __init__(self, message: str, request_id: int = -1):
        super().__init__(message)
        self.request_id = request_id


class BadReply(ValueError):
    """A reply the robot refuses (size, parts, types, non-finite numbers, answer length)."""


@dataclass(frozen=True)
class ParsedRequest:
    header: RequestHeader
    payloads: tuple[memoryview, ...]  # one view per frame into the received buffer (no copy)
    nbytes: int


def first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(map(str, err["loc"])) or "body"
    return f"{where}: {err['msg']}" + (f" ({e.error_count() - 1} more)" if e.error_count() > 1 else "")


# ---- requests --------------------------------------------------------------------------------------------------


def check_frames(specs: Sequence[FrameSpec], limits: RemoteConfig) -> None:
    """Frame count, sides and the decoded pixel budget (from the header alone); raises RequestRefused."""
    if len(specs) > limits.max_frames:
        raise RequestRefused(f"{len(specs)} frames > remote.max_frames {limits.max_frames}")
    for s in specs:
        if max(s.height, s.width) > limits.max_side_px:
            raise RequestRefused(
                f"frame {s.frame_id}: {s.width}×{s.height} px, a side over remote.max_side_px {limits.max_side_px}"
            )
    pixels = sum(s.height * s.width for s in specs)
    if pixels > limits.max_pixels:
        raise RequestRefused(f"{pixels} px in {len(specs)} frames > remote.max_pixels {limits.max_pixels}")


def encode_request(
    request_id: int,
    instruction: str,
    frames: Sequence[VlmFrame],
    budget_ms: int,
    limits: RemoteConfig,
    *,
    reset: bool = False,
    jpeg_quality: int | None = None,
) -> bytes:
    """The one-part request for H×W×3 uint8 frames; raises RequestRefused (over a limit: nothing to send) or
    ValueError (not an H×W×3 uint8 frame). The robot checks the same limits as the server, so nothing it sends is
    refused for size."""
    if len(instruction) > limits.max_instruction_chars:
        raise RequestRefused(
            f"instruction of {len(instruction)} chars > remote.max_instruction_chars {limits.max_instruction_chars}"
        )
    specs: list[FrameSpec] = []
    bufs: list[bytes | memoryview] = []
    for f in frames:
        rgb = np.ascontiguousarray(f.rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"frame {f.frame_id}: expected H×W×3 uint8, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f"frame {f.frame_id}: empty ({h}×{w})")
        buf: bytes | memoryview = rgb.data.cast("B") if jpeg_quality is None else _encode_jpeg(rgb, jpeg_quality)
        encoding: Literal["rgb8", "jpeg"] = "rgb8" if jpeg_quality is None else "jpeg"
        specs.append(FrameSpec(frame_id=f.frame_id, height=h, width=w, encoding=encoding, nbytes=len(buf)))
        bufs.append(buf)
    if not specs:
        raise ValueError("no frames")
    check_frames(specs, limits)
    header = RequestHeader(
        request_id=request_id, instruction=instruction, reset=reset, budget_ms=budget_ms, frames=specs
    ).model_dump_json()
    head = header.encode()
    if len(head) > limits.max_header_bytes:
        raise RequestRefused(f"header of {len(head)} bytes > remote.max_header_bytes {limits.max_header_bytes}")
    total = PREFIX.size + len(head) + sum(len(b) for b in bufs)
    if total > limits.max_request_bytes:
        raise RequestRefused(f"request of {total} bytes > remote.max_request_bytes {limits.max_request_bytes}")
    return b"".join([PREFIX.pack(MAGIC, len(head)), head, *bufs])


def parse_request(buf: bytes | memoryview, limits: RemoteConfig) -> ParsedRequest:
    """Check a received request against every limit, cheapest first, without decoding any pixel (JPEG frames: their
    headers only). Raises RequestRefused naming the limit; never anything else."""
    view = memoryview(buf).cast("B")
    n = len(view)
    if n > limits.max_request_bytes:
        raise RequestRefused(f"request of {n} bytes > remote.max_request_bytes {limits.max_request_bytes}")
    if n < PREFIX.size or bytes(view[:4]) != MAGIC:
        raise RequestRefused("not an edge-vln request (expected the EVq1 prefix; an older multipart client?)")
    _, hlen = PREFIX.unpack_from(view)
    if hlen > limits.max_header_bytes:
        raise RequestRefused(f"header of {hlen} bytes > remote.max_header_bytes {limits.max_header_bytes}")
    if PREFIX.size + hlen > n:
        raise RequestRefused(f"header length {hlen} runs past the end of the {n}-byte request")
    try:
        header = RequestHeader.model_validate_json(bytes(view[PREFIX.size : PREFIX.size + hlen]))
    except ValidationError as e:
        raise RequestRefused(f"header: {first_error(e)}") from None
    try:
        return _check_body(view, hlen, header, limits)
    except RequestRefused as e:
        e.request_id = header.request_id
        raise


def _check_body(view: memoryview, hlen: int, header: RequestHeader, limits: RemoteConfig) -> ParsedRequest:
    n = len(view)
    if len(header.instruction) > limits.max_instruction_chars:
        raise RequestRefused(
            f"instruction of {len(header.instruction)} chars > remote.max_instruction_chars "
            f"{limits.max_instruction_chars}"
        )
    check_frames(header.frames, limits)
    payload = n - PREFIX.size - hlen
    listed = sum(s.nbytes for s in header.frames)
    if listed != payload:
        raise RequestRefused(f"header lists {listed} frame bytes, the request carries {payload}")
    views = []
    at = PREFIX.size + hlen
    for s in header.frames:
        part = view[at : at + s.nbytes]
        at += s.nbytes
        if s.encoding == "rgb8" and s.nbytes != s.height * s.width * 3:
            need = s.height * s.width * 3
            raise RequestRefused(f"frame {s.frame_id}: {s.nbytes} bytes, rgb8 {s.width}×{s.height} needs {need}")
        if s.encoding == "jpeg":
            _check_jpeg_header(part, s)
        views.append(part)
    return ParsedRequest(header, tuple(views), n)


def decode_frames(req: ParsedRequest) -> list[VlmFrame]:
    """The request's frames as H×W×3 uint8 arrays: rgb8 zero-copy (read-only views), JPEG decoded (sizes were
    checked by parse_request, so the decode stays within max_pixels). Raises RequestRefused for a corrupt JPEG."""
    out = []
    for s, part in zip(req.header.frames, req.payloads):
        if s.encoding == "rgb8":
            rgb = np.frombuffer(part, np.uint8).reshape(s.height, s.width, 3)
        else:
            rgb = _decode_jpeg(part, s)
        out.append(VlmFrame(frame_id=s.frame_id, rgb=rgb))
    return out


def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=quality)  # baseline (progressive is refused)
    return out.getvalue()


def _check_jpeg_header(part: memoryview, s: FrameSpec) -> None:
    """PIL reads only the header at open (lazy); size, mode and progressive are known before any pixel is decoded."""
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(part), formats=["JPEG"])
    except Exception as e:  # UnidentifiedImageError, DecompressionBombError, truncated header …
        raise RequestRefused(f"frame {s.frame_id}: not a JPEG ({type(e).__name__})") from None
    with im:
        if im.size != (s.width, s.height):
            w, h = im.size
            raise RequestRefused(f"frame {s.frame_id}: JPEG is {w}×{h}, header says {s.width}×{s.height}")
        if im.info.get("progressive") or im.info.get("progression"):
            raise RequestRefused(f"frame {s.frame_id}: progressive JPEG refused (decode cost grows with its scans)")
        if im.mode not in ("RGB", "L"):
            raise RequestRefused(f"frame {s.frame_id}: JPEG mode {im.mode}, expected RGB")


def _decode_jpeg(part: memoryview, s: FrameSpec) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(part), formats=["JPEG"]) as im:
            if im.size != (s.width, s.height):
                raise RequestRefused(f"frame {s.frame_id}: JPEG size changed")
            rgb = np.asarray(im.convert("RGB"))
    except RequestRefused:
        raise
    except Exception as e:  # corrupt entropy data, truncated file
        raise RequestRefused(f"frame {s.frame_id}: undecodable JPEG ({type(e).__name__}: {e})") from None
    return rgb


# ---- replies ---------------------------------------------------------------------------------------------------


def encode_reply(reply: Reply) -> bytes:
    return reply.model_dump_json().encode()


def decode_reply(parts: Sequence[bytes | memoryview], limits: RemoteConfig) -> Reply:
    """The robot's checks on what the server sent, before and after parsing; raises BadReply naming the problem."""
    if len(parts) != 1:
        raise BadReply(f"reply in {len(parts)} parts, the protocol has one")
    n = len(parts[0])
    if n > limits.max_reply_bytes:
        raise BadReply(f"reply of {n} bytes > remote.max_reply_bytes {limits.max_reply_bytes}")
    try:
        r = Reply.model_validate_json(bytes(parts[0]))
    except ValidationError as e:
        raise BadReply(f"unreadable reply: {first_error(e)}") from None
    if len(r.text) > limits.max_answer_chars:
        raise BadReply(f"answer of {len(r.text)} chars > remote.max_answer_chars {limits.max_answer_chars}")
    return r
