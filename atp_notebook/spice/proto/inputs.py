"""The inputs channel (spice.proto ``channel InputsChannel``): keys, locks, mouse.

Keys are PC XT set-1 scancodes. Extended keys (sent after an 0xE0 prefix) are written the
spice-gtk way, ``0x100 | code`` (e.g. Right Ctrl = 0x11D, Up = 0x148). On the wire:

- KEY_DOWN / KEY_UP carry a u32 whose little-endian bytes the server pushes to the
  keyboard one by one up to the first zero byte (spice-server inputs-channel.cpp), so an
  extended key is ``0xE0 | code << 8`` and a release sets 0x80 in the code byte
  (spice-gtk spice_make_scancode).
- KEY_SCANCODE (needs the server's KEY_SCANCODE inputs cap) carries raw scancode bytes:
  press and release of one key in one message, or any sequence (Pause: E1 1D 45 E1 9D C5).

Mouse flow control: the server sends MOUSE_MOTION_ACK after every
SPICE_INPUT_MOTION_ACK_BUNCH (4) motion/position messages. Like spice-gtk we allow up to
two bunches (8) in flight; beyond that we do not refuse but *coalesce*: relative motions
add up, positions keep the latest, and the next ACK sends them. Button presses and
releases flush the coalesced motion first (ignoring the window) so a click lands where
the pointer was sent.

Example::

    inputs = InputsProtocol.from_link(linked)
    inputs.key_press_release(0x1E)          # "a"
    inputs.position(100, 200)               # client mouse mode
    inputs.button_press(MouseButton.LEFT); inputs.button_release(MouseButton.LEFT)
    writer.write(inputs.data_to_send())
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from atp_notebook.errors import LocalProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent, unpack_body
from atp_notebook.spice.proto.constants import (
    INPUT_MOTION_ACK_BUNCH,
    ChannelType,
    InputsCap,
    InputsMsg,
    InputsMsgc,
    KeyModifier,
    MouseButton,
    MouseButtonMask,
)
from atp_notebook.spice.proto.framing import RawMessage

# spice.proto InputsChannel
MODIFIERS = struct.Struct("<H")  # init / key_modifiers (both ways): flags16
KEY_CODE = struct.Struct("<I")  # key_down / key_up: uint32 code
MOUSE_MOTION = struct.Struct("<iiH")  # dx, dy, buttons_state
MOUSE_POSITION = struct.Struct("<IIHB")  # x, y, buttons_state, display_id
MOUSE_BUTTON = struct.Struct("<BH")  # mouse_press / mouse_release: button, buttons_state

EXTENDED = 0x100  # spice-gtk's marker for an 0xE0-prefixed scancode
RELEASE = 0x80  # set-1 break code bit
_INT32 = (-(2**31), 2**31 - 1)
_BUTTON_MASKS = {  # spice-gtk changes buttons_state only for these three
    MouseButton.LEFT: MouseButtonMask.LEFT,
    MouseButton.MIDDLE: MouseButtonMask.MIDDLE,
    MouseButton.RIGHT: MouseButtonMask.RIGHT,
}


@dataclass(frozen=True, slots=True)
class InputsInit(ChannelEvent):
    modifiers: KeyModifier  # the guest's lock state


@dataclass(frozen=True, slots=True)
class KeyModifiersChanged(ChannelEvent):
    modifiers: KeyModifier


@dataclass(frozen=True, slots=True)
class MouseMotionAck(ChannelEvent):
    pass


def _modifiers(value: int) -> KeyModifier:
    return KeyModifier(value & (KeyModifier.SCROLL_LOCK | KeyModifier.NUM_LOCK
                                | KeyModifier.CAPS_LOCK))


def parse_init(body: bytes) -> InputsInit:
    return InputsInit(_modifiers(unpack_body(MODIFIERS, body, "INPUTS_INIT")[0]))


def parse_key_modifiers(body: bytes) -> KeyModifiersChanged:
    return KeyModifiersChanged(
        _modifiers(unpack_body(MODIFIERS, body, "INPUTS_KEY_MODIFIERS")[0]))


def _check_scancode(scancode: int) -> int:
    code = scancode & ~EXTENDED
    if not 0 < code < RELEASE or scancode & ~(EXTENDED | 0x7F):
        raise LocalProtocolError(
            f"scancode {scancode:#x}: want a set-1 make code 0x01-0x7f, or 0x100 | code "
            "for an 0xE0-prefixed key")
    return code


def key_code(scancode: int, *, release: bool = False) -> int:
    """The KEY_DOWN / KEY_UP u32 for a scancode (``0x100 | code`` for extended keys)."""
    code = _check_scancode(scancode) | (RELEASE if release else 0)
    return 0xE0 | code << 8 if scancode & EXTENDED else code


def key_bytes(scancode: int, *, release: bool = False) -> bytes:
    """The raw scancode bytes for one key event (KEY_SCANCODE payload)."""
    code = _check_scancode(scancode) | (RELEASE if release else 0)
    return bytes((0xE0, code)) if scancode & EXTENDED else bytes((code,))


def build_key_down(scancode: int) -> bytes:
    return KEY_CODE.pack(key_code(scancode))


def build_key_up(scancode: int) -> bytes:
    return KEY_CODE.pack(key_code(scancode, release=True))


def build_key_modifiers(modifiers: KeyModifier) -> bytes:
    return MODIFIERS.pack(modifiers)


def build_mouse_motion(dx: int, dy: int, buttons: MouseButtonMask) -> bytes:
    return MOUSE_MOTION.pack(dx, dy, buttons)


def build_mouse_position(x: int, y: int, buttons: MouseButtonMask, display_id: int) -> bytes:
    return MOUSE_POSITION.pack(x, y, buttons, display_id)


def build_mouse_button(button: MouseButton, buttons: MouseButtonMask) -> bytes:
    return MOUSE_BUTTON.pack(button, buttons)


class InputsProtocol(ChannelProtocol):
    """The inputs channel: typed key and mouse commands, motion flow control, lock state.

    ``max_unacked_motions`` (default 2 * 4, as spice-gtk) bounds motion/position
    messages in flight; more are coalesced until the next MOUSE_MOTION_ACK.
    """

    channel_kind = ChannelType.INPUTS

    def __init__(
        self, *args: Any, max_unacked_motions: int = 2 * INPUT_MOTION_ACK_BUNCH, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_unacked_motions = max_unacked_motions
        self.modifiers: KeyModifier | None = None  # the guest's locks, once the server said
        self.buttons = MouseButtonMask(0)  # buttons we hold down
        self.unacked_motions = 0
        self.motions_sent = 0
        self.motions_coalesced = 0
        self._dx = self._dy = 0
        self._position: tuple[int, int, int] | None = None

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        if message.msg_type == InputsMsg.INIT:
            init = parse_init(message.body)
            self.modifiers = init.modifiers
            return init
        if message.msg_type == InputsMsg.KEY_MODIFIERS:
            changed = parse_key_modifiers(message.body)
            self.modifiers = changed.modifiers
            return changed
        if message.msg_type == InputsMsg.MOUSE_MOTION_ACK:
            self.unacked_motions = max(0, self.unacked_motions - INPUT_MOTION_ACK_BUNCH)
            self._flush_motion()
            return MouseMotionAck()
        return None

    # --- keyboard ---------------------------------------------------------------------

    def key_down(self, scancode: int) -> None:
        self.send_message(InputsMsgc.KEY_DOWN, build_key_down(scancode))

    def key_up(self, scancode: int) -> None:
        self.send_message(InputsMsgc.KEY_UP, build_key_up(scancode))

    def key_press_release(self, scancode: int) -> None:
        """Press and release; one KEY_SCANCODE message when the server can take it."""
        if self.has_channel_cap(InputsCap.KEY_SCANCODE):
            self.send_scancodes(key_bytes(scancode) + key_bytes(scancode, release=True))
        else:
            self.key_down(scancode)
            self.key_up(scancode)

    def send_scancodes(self, data: bytes) -> None:
        """Raw set-1 bytes in one KEY_SCANCODE message (needs the KEY_SCANCODE cap)."""
        if not self.has_channel_cap(InputsCap.KEY_SCANCODE):
            raise LocalProtocolError("the server lacks the KEY_SCANCODE inputs cap")
        if not data:
            raise LocalProtocolError("KEY_SCANCODE needs at least one byte")
        self.send_message(InputsMsgc.KEY_SCANCODE, data)

    def set_modifiers(self, modifiers: KeyModifier) -> None:
        """Set the guest's Scroll/Num/Caps Lock state."""
        self.send_message(InputsMsgc.KEY_MODIFIERS, build_key_modifiers(modifiers))

    # --- mouse ------------------------------------------------------------------------

    def motion(self, dx: int, dy: int) -> bool:
        """Relative motion (server mouse mode). True if sent now, False if coalesced."""
        if dx == dy == 0:
            return True
        self._dx = min(max(self._dx + dx, _INT32[0]), _INT32[1])
        self._dy = min(max(self._dy + dy, _INT32[0]), _INT32[1])
        return self._send_or_coalesce()

    def position(self, x: int, y: int, display_id: int = 0) -> bool:
        """Absolute position (client mouse mode). True if sent now, False if coalesced."""
        if not (0 <= x < 2**32 and 0 <= y < 2**32 and 0 <= display_id < 256):
            raise LocalProtocolError(f"mouse position {x},{y} on display {display_id} is "
                                     "out of range")
        self._position = (x, y, display_id)
        return self._send_or_coalesce()

    def button_press(self, button: MouseButton) -> None:
        # coalesced motion happened before the press: flush it with the buttons as they were
        self._flush_motion(force=True)
        self.buttons |= _BUTTON_MASKS.get(button, MouseButtonMask(0))
        self.send_message(InputsMsgc.MOUSE_PRESS, build_mouse_button(button, self.buttons))

    def button_release(self, button: MouseButton) -> None:
        self._flush_motion(force=True)
        self.buttons &= ~_BUTTON_MASKS.get(button, MouseButtonMask(0))
        self.send_message(InputsMsgc.MOUSE_RELEASE, build_mouse_button(button, self.buttons))

    def scroll(self, clicks: int) -> None:
        """Wheel: positive scrolls up, negative down; a press and release per click."""
        button = MouseButton.UP if clicks > 0 else MouseButton.DOWN
        for _ in range(abs(clicks)):
            self.button_press(button)
            self.button_release(button)

    @property
    def motion_pending(self) -> bool:
        """Coalesced motion waiting for a MOUSE_MOTION_ACK."""
        return bool(self._dx or self._dy or self._position)

    def _send_or_coalesce(self) -> bool:
        if self.unacked_motions < self.max_unacked_motions:
            self._flush_motion()
            return True
        self.motions_coalesced += 1
        return False

    def _flush_motion(self, *, force: bool = False) -> None:
        # spice-gtk inputs_handle_ack: relative motion first, then the position
        if (self._dx or self._dy) and (force or self.unacked_motions < self.max_unacked_motions):
            self.send_message(InputsMsgc.MOUSE_MOTION,
                              build_mouse_motion(self._dx, self._dy, self.buttons))
            self._dx = self._dy = 0
            self._count_motion()
        if self._position and (force or self.unacked_motions < self.max_unacked_motions):
            x, y, display_id = self._position
            self.send_message(InputsMsgc.MOUSE_POSITION,
                              build_mouse_position(x, y, self.buttons, display_id))
            self._position = None
            self._count_motion()

    def _count_motion(self) -> None:
        self.unacked_motions += 1
        self.motions_sent += 1
