"""Spice protocol numbers, checked one by one against spice-protocol.

Sources (spice-protocol 969baca, spice-common de79bac): ``spice/enums.h`` for channel
types, link errors, message numbers and flag values; ``spice/protocol.h`` for the link
constants and capability bits; ``spice.proto`` for field widths (noted where they bite).
Enums are ``IntEnum``/``IntFlag`` so they go on the wire as plain ints.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import TypeVar

_E = TypeVar("_E", bound=IntEnum)

# --- link (protocol.h) ----------------------------------------------------------------
MAGIC = b"REDQ"  # SPICE_MAGIC, the first 4 bytes of every link header, both ways
VERSION_MAJOR = 2  # SPICE_VERSION_MAJOR
VERSION_MINOR = 2  # SPICE_VERSION_MINOR
TICKET_KEY_BITS = 1024  # SPICE_TICKET_KEY_PAIR_LENGTH
TICKET_PUBKEY_BYTES = TICKET_KEY_BITS // 8 + 34  # 162: DER SubjectPublicKeyInfo, RSA-1024
TICKET_BYTES = TICKET_KEY_BITS // 8  # 128: SpiceLinkEncryptedTicket
MAX_PASSWORD_LENGTH = 60  # SPICE_MAX_PASSWORD_LENGTH (bytes, without the NUL)
INPUT_MOTION_ACK_BUNCH = 4  # SPICE_INPUT_MOTION_ACK_BUNCH: one MOTION_ACK per 4 motions


class ChannelType(IntEnum):
    """enums.h: SPICE_CHANNEL_*."""

    MAIN = 1
    DISPLAY = 2
    INPUTS = 3
    CURSOR = 4
    PLAYBACK = 5
    RECORD = 6
    TUNNEL = 7  # obsolete: no server offers it any more
    SMARTCARD = 8
    USBREDIR = 9
    PORT = 10
    WEBDAV = 11


class LinkError(IntEnum):
    """enums.h: SpiceLinkErr, in SpiceLinkReply.error and the 4-byte link result."""

    OK = 0
    ERROR = 1
    INVALID_MAGIC = 2
    INVALID_DATA = 3
    VERSION_MISMATCH = 4
    NEED_SECURED = 5
    NEED_UNSECURED = 6
    PERMISSION_DENIED = 7
    BAD_CONNECTION_ID = 8
    CHANNEL_NOT_AVAILABLE = 9


class CommonCap(IntEnum):
    """protocol.h: SPICE_COMMON_CAP_* (bit numbers). AUTH_SPICE/AUTH_SASL double as the
    SpiceLinkAuthMechanism value the client sends after the link reply."""

    PROTOCOL_AUTH_SELECTION = 0
    AUTH_SPICE = 1
    AUTH_SASL = 2
    MINI_HEADER = 3


class MainCap(IntEnum):
    """protocol.h: SPICE_MAIN_CAP_*."""

    SEMI_SEAMLESS_MIGRATE = 0
    NAME_AND_UUID = 1
    AGENT_CONNECTED_TOKENS = 2
    SEAMLESS_MIGRATE = 3


class DisplayCap(IntEnum):
    """protocol.h: SPICE_DISPLAY_CAP_*."""

    SIZED_STREAM = 0
    MONITORS_CONFIG = 1
    COMPOSITE = 2
    A8_SURFACE = 3
    STREAM_REPORT = 4
    LZ4_COMPRESSION = 5
    PREF_COMPRESSION = 6
    GL_SCANOUT = 7
    MULTI_CODEC = 8
    CODEC_MJPEG = 9
    CODEC_VP8 = 10
    CODEC_H264 = 11
    PREF_VIDEO_CODEC_TYPE = 12
    CODEC_VP9 = 13
    CODEC_H265 = 14


class InputsCap(IntEnum):
    """protocol.h: SPICE_INPUTS_CAP_*."""

    KEY_SCANCODE = 0


class PlaybackCap(IntEnum):
    """protocol.h: SPICE_PLAYBACK_CAP_*."""

    CELT_0_5_1 = 0
    VOLUME = 1
    LATENCY = 2
    OPUS = 3


class RecordCap(IntEnum):
    """protocol.h: SPICE_RECORD_CAP_*."""

    CELT_0_5_1 = 0
    VOLUME = 1
    OPUS = 2


# --- messages every channel shares (enums.h) ------------------------------------------


class Msg(IntEnum):
    """Server -> client, any channel: SPICE_MSG_*."""

    MIGRATE = 1
    MIGRATE_DATA = 2
    SET_ACK = 3
    PING = 4
    WAIT_FOR_CHANNELS = 5
    DISCONNECTING = 6
    NOTIFY = 7
    LIST = 8
    BASE_LAST = 100  # channel-specific numbers start at 101


class Msgc(IntEnum):
    """Client -> server, any channel: SPICE_MSGC_*."""

    ACK_SYNC = 1
    ACK = 2
    PONG = 3
    MIGRATE_FLUSH_MARK = 4
    MIGRATE_DATA = 5
    DISCONNECTING = 6


class MainMsg(IntEnum):
    """Server -> client on the main channel: SPICE_MSG_MAIN_*."""

    MIGRATE_BEGIN = 101
    MIGRATE_CANCEL = 102
    INIT = 103
    CHANNELS_LIST = 104
    MOUSE_MODE = 105
    MULTI_MEDIA_TIME = 106
    AGENT_CONNECTED = 107
    AGENT_DISCONNECTED = 108
    AGENT_DATA = 109
    AGENT_TOKEN = 110
    MIGRATE_SWITCH_HOST = 111
    MIGRATE_END = 112
    NAME = 113
    UUID = 114
    AGENT_CONNECTED_TOKENS = 115
    MIGRATE_BEGIN_SEAMLESS = 116
    MIGRATE_DST_SEAMLESS_ACK = 117
    MIGRATE_DST_SEAMLESS_NACK = 118


class MainMsgc(IntEnum):
    """Client -> server on the main channel: SPICE_MSGC_MAIN_*."""

    CLIENT_INFO = 101
    MIGRATE_CONNECTED = 102
    MIGRATE_CONNECT_ERROR = 103
    ATTACH_CHANNELS = 104
    MOUSE_MODE_REQUEST = 105
    AGENT_START = 106
    AGENT_DATA = 107
    AGENT_TOKEN = 108
    MIGRATE_END = 109
    MIGRATE_DST_DO_SEAMLESS = 110
    MIGRATE_CONNECTED_SEAMLESS = 111
    QUALITY_INDICATOR = 112


class InputsMsg(IntEnum):
    """Server -> client on the inputs channel: SPICE_MSG_INPUTS_*."""

    INIT = 101
    KEY_MODIFIERS = 102
    MOUSE_MOTION_ACK = 111


class InputsMsgc(IntEnum):
    """Client -> server on the inputs channel: SPICE_MSGC_INPUTS_*."""

    KEY_DOWN = 101
    KEY_UP = 102
    KEY_MODIFIERS = 103
    KEY_SCANCODE = 104
    MOUSE_MOTION = 111
    MOUSE_POSITION = 112
    MOUSE_PRESS = 113
    MOUSE_RELEASE = 114


class DisplayMsg(IntEnum):
    """Server -> client on display channels: SPICE_MSG_DISPLAY_* (enums.h)."""

    MODE = 101  # legacy
    MARK = 102
    RESET = 103
    COPY_BITS = 104
    INVAL_LIST = 105
    INVAL_ALL_PIXMAPS = 106
    INVAL_PALETTE = 107
    INVAL_ALL_PALETTES = 108
    STREAM_CREATE = 122
    STREAM_DATA = 123
    STREAM_CLIP = 124
    STREAM_DESTROY = 125
    STREAM_DESTROY_ALL = 126
    DRAW_FILL = 302
    DRAW_OPAQUE = 303
    DRAW_COPY = 304
    DRAW_BLEND = 305
    DRAW_BLACKNESS = 306
    DRAW_WHITENESS = 307
    DRAW_INVERS = 308
    DRAW_ROP3 = 309
    DRAW_STROKE = 310
    DRAW_TEXT = 311
    DRAW_TRANSPARENT = 312
    DRAW_ALPHA_BLEND = 313
    SURFACE_CREATE = 314
    SURFACE_DESTROY = 315
    STREAM_DATA_SIZED = 316
    MONITORS_CONFIG = 317
    DRAW_COMPOSITE = 318
    STREAM_ACTIVATE_REPORT = 319
    GL_SCANOUT_UNIX = 320  # never: GL_SCANOUT is not announced
    GL_DRAW = 321
    QUALITY_INDICATOR = 322


class VideoCodecType(IntEnum):
    """SpiceVideoCodecType (enum8 video_codec_type): STREAM_CREATE's codec and the body of
    PREFERRED_VIDEO_CODEC_TYPE."""

    MJPEG = 1
    VP8 = 2
    H264 = 3
    VP9 = 4
    H265 = 5


class SurfaceFlags(IntFlag):
    """SpiceSurfaceFlags in SURFACE_CREATE."""

    PRIMARY = 1
    STREAMING_MODE = 2


class DisplayMsgc(IntEnum):
    """Client -> server on display channels: SPICE_MSGC_DISPLAY_*."""

    INIT = 101
    STREAM_REPORT = 102
    PREFERRED_COMPRESSION = 103
    GL_DRAW_DONE = 104
    PREFERRED_VIDEO_CODEC_TYPE = 105


class ImageType(IntEnum):
    """SpiceImageType: an image descriptor's ``type`` (spice.proto ``image_type``)."""

    BITMAP = 0
    QUIC = 1
    RESERVED = 2
    LZ_PLT = 100
    LZ_RGB = 101
    GLZ_RGB = 102
    FROM_CACHE = 103
    SURFACE = 104
    JPEG = 105
    FROM_CACHE_LOSSLESS = 106
    ZLIB_GLZ_RGB = 107
    JPEG_ALPHA = 108
    LZ4 = 109


class ImageCompression(IntEnum):
    """SpiceImageCompression: the body of PREFERRED_COMPRESSION (spice.proto
    ``image_compression``; INVALID = 0 is refused by the server)."""

    OFF = 1
    AUTO_GLZ = 2
    AUTO_LZ = 3
    QUIC = 4
    GLZ = 5
    LZ = 6
    LZ4 = 7


class CursorMsg(IntEnum):
    """Server -> client on the cursor channel: SPICE_MSG_CURSOR_*."""

    INIT = 101
    RESET = 102
    SET = 103
    MOVE = 104
    HIDE = 105
    TRAIL = 106
    INVAL_ONE = 107
    INVAL_ALL = 108


# --- flags and values inside messages (enums.h; widths from spice.proto) --------------


class MouseMode(IntFlag):
    """SpiceMouseMode: flags16 in MAIN_MOUSE_MODE and MOUSE_MODE_REQUEST, u32 in MAIN_INIT."""

    SERVER = 1  # relative motion (MOUSE_MOTION)
    CLIENT = 2  # absolute position (MOUSE_POSITION); needs a tablet or the agent


class MouseButton(IntEnum):
    """SpiceMouseButton: enum8 in MOUSE_PRESS / MOUSE_RELEASE."""

    INVALID = 0
    LEFT = 1
    MIDDLE = 2
    RIGHT = 3
    UP = 4  # wheel up
    DOWN = 5  # wheel down
    SIDE = 6
    EXTRA = 7


class MouseButtonMask(IntFlag):
    """SpiceMouseButtonMask: flags16 ``buttons_state`` in every mouse message."""

    LEFT = 1 << 0
    MIDDLE = 1 << 1
    RIGHT = 1 << 2
    UP = 1 << 3
    DOWN = 1 << 4
    SIDE = 1 << 5
    EXTRA = 1 << 6


class KeyModifier(IntFlag):
    """SpiceKeyboardModifierFlags: flags16 in INPUTS_INIT and KEY_MODIFIERS (the locks)."""

    SCROLL_LOCK = 1 << 0
    NUM_LOCK = 1 << 1
    CAPS_LOCK = 1 << 2


class MigrateFlags(IntFlag):
    """SpiceMigrateFlags: flags32 in SPICE_MSG_MIGRATE."""

    NEED_FLUSH = 1 << 0
    NEED_DATA_TRANSFER = 1 << 1


class NotifySeverity(IntEnum):
    """SpiceNotifySeverity."""

    INFO = 0
    WARN = 1
    ERROR = 2


class NotifyVisibility(IntEnum):
    """SpiceNotifyVisibility."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2


def enum_or_int(enum: type[_E], value: int) -> _E | int:
    """``enum(value)`` when the number is known, else the plain int (servers add values)."""
    try:
        return enum(value)
    except ValueError:
        return value
