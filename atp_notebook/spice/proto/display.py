"""The display channel, first part (spice.proto ``channel DisplayChannel``): DISPLAY_INIT and
the surfaces' geometry.

Here: SURFACE_CREATE / SURFACE_DESTROY (the primary surface is the screen), the legacy MODE,
MARK and RESET, and DRAW_COPY's geometry and source image (descriptor and compressed
payload, not decoded: that is the codecs' work). Every other message of the channel is
parsed beside this module and dispatched from here: the other draws (display_draw.py,
display_vector.py), cache invalidation (display_cache.py), streams (display_stream.py) and
MONITORS_CONFIG (display_monitors.py); GL and QUALITY_INDICATOR stay ``UnknownMessage``.
By default no display caps are announced, so the server sends nothing we would have to
promise to understand (never GL_SCANOUT).

The server waits up to 30 s for DISPLAY_INIT after the link and drops the channel without
it (spice-server dcc.cpp): the adapter sends :meth:`DisplayProtocol.start` right after the
link. By default a pixmap cache of 0 and a GLZ window of 0 keep the server from caching
images in the client or sending GLZ (research/display.md §1.9, §8). :class:`DisplayOptions`
asks for more — a GLZ dictionary shared by the session's display channels, the LZ4 cap, an
image compression preference — for captures and for the codecs as they arrive.

Example::

    display = DisplayProtocol.from_link(linked)
    display.start(DisplayOptions())
    writer.write(display.data_to_send())
    for event in display.receive_data(chunk):
        if isinstance(event, SurfaceCreated) and event.primary:
            print(event.width, event.height)        # 720 400
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent, unpack_body
from atp_notebook.spice.proto.constants import (
    ChannelType,
    DisplayCap,
    DisplayMsg,
    DisplayMsgc,
    ImageCompression,
    SurfaceFlags,
    VideoCodecType,
)
from atp_notebook.spice.proto.display_cache import CACHE_PARSERS
from atp_notebook.spice.proto.display_draw import DRAW_PARSERS
from atp_notebook.spice.proto.display_monitors import MONITORS_PARSERS
from atp_notebook.spice.proto.display_stream import (
    STREAM_PARSERS,
    build_preferred_video_codec_type,
)
from atp_notebook.spice.proto.display_vector import VECTOR_PARSERS
from atp_notebook.spice.proto.display_wire import (
    MAX_SIDE,
    BodyReader,
    QMask,
    Rect,
    SpiceImage,
    read_display_base,
    read_image,
    read_mask,
    read_rect,
    read_rop,
    read_scale_mode,
)
from atp_notebook.spice.proto.framing import RawMessage

# Rect, SpiceImage and QMask live in display_wire (every draw uses them) and stay
# importable from here
__all__ = [
    "DISPLAY_INIT", "DISPLAY_MAX_MESSAGE_SIZE", "MAX_GLZ_WINDOW", "MAX_SIDE", "MODE",
    "SURFACE_CREATE", "SURFACE_DESTROY", "DisplayOptions", "DisplayProtocol", "DisplayReset",
    "DrawCopy", "Mark", "ModeChanged", "QMask", "Rect", "SpiceImage", "SurfaceCreated",
    "SurfaceDestroyed", "parse_draw_copy", "parse_mode", "parse_surface_create",
    "parse_surface_destroy",
]

# spice.proto DisplayChannel
DISPLAY_INIT = struct.Struct("<BqBi")  # pixmap cache id, size (pixels), glz id, window (px)
SURFACE_CREATE = struct.Struct("<IIIII")  # surface id, width, height, format, flags
SURFACE_DESTROY = struct.Struct("<I")
MODE = struct.Struct("<III")  # x_res, y_res, bits
U8 = struct.Struct("<B")
# spice-server refuses a bigger GLZ window and fails the channel's init (lz_common.h
# LZ_MAX_WINDOW_SIZE, pixels)
MAX_GLZ_WINDOW = 1 << 25
# image-compression=off sends every image as a raw BITMAP, the initial whole screen too: a
# 1024x768 screen is a 3 MiB message (measured), so the display channel takes messages up to
# an uncompressed 32-bit 4096x4096 surface; the other channels keep framing's 1 MiB
DISPLAY_MAX_MESSAGE_SIZE = 4096 * 4096 * 4 + 64 * 1024


# what every preset announces: MONITORS_CONFIG is parsed (vm.display.monitors)
_BASE_CAPS = (DisplayCap.MONITORS_CONFIG,)
_CODEC_CAPS = (DisplayCap.CODEC_MJPEG, DisplayCap.CODEC_VP8, DisplayCap.CODEC_H264,
               DisplayCap.CODEC_VP9, DisplayCap.CODEC_H265)
# pixels the server may make us cache (FROM_CACHE): 16 MiB of decoded images; Linux guests
# never flag images for caching, Windows and X QXL drivers do
DEFAULT_PIXMAP_CACHE = 4 << 20


@dataclass(frozen=True, slots=True)
class DisplayOptions:
    """What a display channel asks of the server (research/display.md §1.6 to §1.9).

    ``caps`` are announced at the link on top of what the toolkit itself handles (none so
    far); LZ4_COMPRESSION must be among them before the server sends LZ4. DISPLAY_INIT
    carries the pixmap cache size and the GLZ dictionary (both in pixels): channels of one
    session that name the same ``glz_dictionary_id`` share one dictionary, so a GLZ image on
    one channel may copy from images sent on another; a ``glz_window`` of 0 means no GLZ.
    ``preferred_compression`` goes out right after DISPLAY_INIT (the initial screen image
    is already chosen by then: it stays LZ or QUIC). The bare constructor asks for nothing;
    :meth:`lossless` (the default of ``vm.display``), :meth:`lossy` and
    :meth:`server_choice` are the presets.

    Example::

        DisplayOptions(caps=(DisplayCap.LZ4_COMPRESSION,),
                       preferred_compression=ImageCompression.LZ4)
    """

    caps: tuple[DisplayCap, ...] = ()
    pixmap_cache_size: int = 0
    glz_dictionary_id: int = 0
    glz_window: int = 0
    preferred_compression: ImageCompression | None = None

    @classmethod
    def lossless(cls, *, pixmap_cache_size: int = DEFAULT_PIXMAP_CACHE) -> DisplayOptions:
        """What ``vm.display`` asks by default: exact pixels. LZ4 is preferred, LZ where
        the server lacks it (:meth:`DisplayProtocol.start`): neither is ever turned into
        JPEG, unlike the QUIC that AUTO_GLZ picks for photos when the server's
        jpeg-wan-compression applies, and LZ4 costs the server a fifth of LZ's time (a
        1024x768 photo frame under TCG: 2.2 ms against 12.8; our decode is as fast). Images
        that are not RGB (palettes) stay LZ. MULTI_CODEC without any codec keeps the server
        from streaming (frames come as ordinary lossless draws). No GLZ dictionary: the
        window would cost up to 3 windows of 4-byte pixels."""
        return cls(caps=(*_BASE_CAPS, DisplayCap.MULTI_CODEC, DisplayCap.LZ4_COMPRESSION),
                   pixmap_cache_size=pixmap_cache_size,
                   preferred_compression=ImageCompression.LZ4)

    @classmethod
    def lossy(cls, *, pixmap_cache_size: int = DEFAULT_PIXMAP_CACHE, glz_window: int = 0
              ) -> DisplayOptions:
        """The server's own choice, JPEG included, and MJPEG video streams: less bandwidth
        and CPU for moving content; the still screen may differ from the guest's pixels."""
        return cls(caps=(*_BASE_CAPS, DisplayCap.SIZED_STREAM, DisplayCap.MULTI_CODEC,
                         DisplayCap.CODEC_MJPEG),
                   pixmap_cache_size=pixmap_cache_size, glz_window=glz_window,
                   glz_dictionary_id=1 if glz_window else 0)

    @classmethod
    def server_choice(cls, *, glz_window: int = 0,
                      pixmap_cache_size: int = DEFAULT_PIXMAP_CACHE) -> DisplayOptions:
        """No preference sent: the server's image-compression setting decides (GLZ only
        with a ``glz_window``; JPEG where its jpeg-wan-compression says so); no streams."""
        return cls(caps=(*_BASE_CAPS, DisplayCap.MULTI_CODEC),
                   pixmap_cache_size=pixmap_cache_size, glz_window=glz_window,
                   glz_dictionary_id=1 if glz_window else 0)

    @property
    def streams(self) -> bool:
        """Whether the server may send video streams to a client asking this."""
        return (DisplayCap.MULTI_CODEC not in self.caps
                or any(c in self.caps for c in _CODEC_CAPS))

    def __post_init__(self) -> None:
        if DisplayCap.GL_SCANOUT in self.caps:
            # the server would send dma-buf fds over a unix socket: nothing a pure-Python
            # client can map (research/display.md §1.6)
            raise InvalidArgument("DisplayOptions: GL_SCANOUT is never announced")
        if not 0 <= self.glz_window <= MAX_GLZ_WINDOW:
            raise InvalidArgument(f"DisplayOptions: GLZ window {self.glz_window} px is outside "
                                  f"0..{MAX_GLZ_WINDOW} (spice-server refuses a bigger one)")
        if not 0 <= self.glz_dictionary_id <= 255:
            raise InvalidArgument(f"DisplayOptions: GLZ dictionary id {self.glz_dictionary_id} "
                                  "is not a byte")
        if not 0 <= self.pixmap_cache_size < 1 << 63:
            raise InvalidArgument(f"DisplayOptions: pixmap cache size {self.pixmap_cache_size}")


@dataclass(frozen=True, slots=True)
class SurfaceCreated(ChannelEvent):
    surface_id: int
    width: int
    height: int
    format: int  # SpiceSurfaceFmt: 32 = xRGB, 96 = ARGB, 16 = 555, 80 = 565, 8 = A8, 1 = A1
    flags: SurfaceFlags

    @property
    def primary(self) -> bool:
        return SurfaceFlags.PRIMARY in self.flags


@dataclass(frozen=True, slots=True)
class SurfaceDestroyed(ChannelEvent):
    surface_id: int


@dataclass(frozen=True, slots=True)
class ModeChanged(ChannelEvent):
    """The legacy MODE message (old servers): the screen's size and depth."""

    width: int
    height: int
    bits: int


@dataclass(frozen=True, slots=True)
class Mark(ChannelEvent):
    """The first full picture of the surface has been sent."""


@dataclass(frozen=True, slots=True)
class DisplayReset(ChannelEvent):
    """The server reset the display: surfaces and caches are gone."""


@dataclass(frozen=True, slots=True)
class DrawCopy(ChannelEvent):
    """DRAW_COPY: put ``image`` (its ``src_area``) at ``box`` of surface ``surface_id``,
    clipped to ``clip`` (empty: no clip), through ``mask`` when there is one."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    image: SpiceImage | None
    src_area: Rect
    rop: int
    scale_mode: int
    mask_flags: int
    has_mask: bool
    mask: QMask | None = None


def parse_draw_copy(body: bytes) -> DrawCopy:
    """DisplayBase (surface, box, clip) then the Copy fields: Image*, src_area, ropd,
    scale_mode, QMask; pointers are offsets into ``body`` (spice.proto ``draw_copy``)."""
    r = BodyReader(body, "DRAW_COPY")
    surface_id, box, clip = read_display_base(r)
    image = read_image(r, "source image")
    src_area = read_rect(r, "source area")
    rop = read_rop(r)
    scale = read_scale_mode(r)
    mask = read_mask(r)
    return DrawCopy(surface_id, box, clip, image, src_area, rop, scale,
                    0 if mask is None else int(mask.flags), mask is not None, mask)


def _size(what: str, width: int, height: int) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise RemoteProtocolError(f"{what}: impossible size {width}x{height}")


def parse_surface_create(body: bytes) -> SurfaceCreated:
    surface_id, width, height, fmt, flags = unpack_body(SURFACE_CREATE, body, "SURFACE_CREATE")
    _size("SURFACE_CREATE", width, height)
    return SurfaceCreated(surface_id, width, height, fmt, SurfaceFlags(flags & 0b11))


def parse_mode(body: bytes) -> ModeChanged:
    width, height, bits = unpack_body(MODE, body, "MODE")
    _size("MODE", width, height)
    return ModeChanged(width, height, bits)


class DisplayProtocol(ChannelProtocol):
    """One display channel; ``surfaces`` holds the geometry of every live surface and
    ``primary`` the screen's (None until the server created it)."""

    channel_kind = ChannelType.DISPLAY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_message_size", DISPLAY_MAX_MESSAGE_SIZE)
        super().__init__(*args, **kwargs)
        self.surfaces: dict[int, SurfaceCreated] = {}
        self.marked = False

    @property
    def primary(self) -> SurfaceCreated | None:
        return next((s for s in self.surfaces.values() if s.primary), None)

    def init(self, pixmap_cache_size: int = 0, glz_window: int = 0,
             glz_dictionary_id: int = 0) -> None:
        """Queue DISPLAY_INIT (pixmap cache id 1): the server sends nothing before it and
        drops the channel 30 s after the link without it."""
        self.send_message(DisplayMsgc.INIT, DISPLAY_INIT.pack(
            1, pixmap_cache_size, glz_dictionary_id, glz_window))

    def prefer_compression(self, compression: ImageCompression) -> bool:
        """Queue PREFERRED_COMPRESSION (the server switches this client's image compression
        at once); False, and nothing sent, when the server lacks the PREF_COMPRESSION cap
        (spice-server < 0.12.6 would not know the message)."""
        if not self.has_channel_cap(DisplayCap.PREF_COMPRESSION):
            return False
        self.send_message(DisplayMsgc.PREFERRED_COMPRESSION, U8.pack(compression))
        return True

    def prefer_video_codecs(self, codecs: Sequence[VideoCodecType]) -> bool:
        """Queue PREFERRED_VIDEO_CODEC_TYPE (the codecs the server should stream in, most
        wanted first); False, and nothing sent, without the server's PREF_VIDEO_CODEC_TYPE
        cap."""
        body = build_preferred_video_codec_type(codecs)
        if not self.has_channel_cap(DisplayCap.PREF_VIDEO_CODEC_TYPE):
            return False
        self.send_message(DisplayMsgc.PREFERRED_VIDEO_CODEC_TYPE, body)
        return True

    def start(self, options: DisplayOptions) -> None:
        """DISPLAY_INIT as ``options`` say, then their compression preference if any. LZ4
        goes after LZ: a spice-server built without LZ4 (which its caps do not tell) warns
        and keeps the setting it had, so it keeps LZ, never its own lossy choice."""
        self.init(options.pixmap_cache_size, options.glz_window, options.glz_dictionary_id)
        if options.preferred_compression is ImageCompression.LZ4:
            self.prefer_compression(ImageCompression.LZ)
        if options.preferred_compression is not None:
            self.prefer_compression(options.preferred_compression)

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        parse = _PARSERS.get(message.msg_type)
        if parse is None:
            return None
        event = parse(message.body)
        if isinstance(event, SurfaceCreated):
            self.surfaces[event.surface_id] = event
        elif isinstance(event, SurfaceDestroyed):
            self.surfaces.pop(event.surface_id, None)
        elif isinstance(event, Mark):
            self.marked = True
        elif isinstance(event, DisplayReset):
            self.surfaces.clear()
        return event


def parse_surface_destroy(body: bytes) -> SurfaceDestroyed:
    (surface_id,) = unpack_body(SURFACE_DESTROY, body, "SURFACE_DESTROY")
    return SurfaceDestroyed(surface_id)


_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    DisplayMsg.SURFACE_CREATE: parse_surface_create,
    DisplayMsg.SURFACE_DESTROY: parse_surface_destroy,
    DisplayMsg.MODE: parse_mode,
    DisplayMsg.MARK: lambda _body: Mark(),
    DisplayMsg.RESET: lambda _body: DisplayReset(),
    DisplayMsg.DRAW_COPY: parse_draw_copy,
    **DRAW_PARSERS,
    **VECTOR_PARSERS,
    **CACHE_PARSERS,
    **STREAM_PARSERS,
    **MONITORS_PARSERS,
}
