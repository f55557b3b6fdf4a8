"""spice-gtk's Inputs channel connect time: the anchor of ``spice_connect`` (bench_spice).

Runs under the system interpreter, which has spice-gtk's SpiceClientGLib through GObject
introspection (Debian ``gir1.2-spiceclientglib-2.0`` and ``python3-gi``; the project's venv
does not see them), and never imports ``atp_notebook``. It reads its settings as one JSON
object on stdin, so the password appears in no command line::

    {"host": "127.0.0.1", "port": 5901, "tls_port": null, "ca_file": null,
     "password": null, "n": 50, "timeout": 60}

and prints one JSON object on stdout: ``{"spice_gtk": "0.42", "connect_ns": [...]}``, where
``spice_gtk`` is the library's own ``spice_util_get_version_string()``: bench_spice records
it in the figure's line, since another spice-gtk is another anchor.

What is timed matches ``SpiceChannel.open`` in ``time_connect``: the session's Main channel
is linked and has given the connection id (its channels list has arrived) before anything is
timed; each sample is a fresh Inputs channel, from ``spice_channel_connect`` until its
``channel-event`` says ``SPICE_CHANNEL_OPENED`` (spice-channel.c emits it once the link
result is OK, before the channel's first message). The channel is then disconnected and the
next one starts after its ``SPICE_CHANNEL_CLOSED`` (its socket is gone), as ours awaits
``close``. Everything runs on
a GLib main loop, as in any spice-gtk client; a failure prints why on stderr and exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject, SpiceClientGLib  # noqa: E402


@dataclass
class ConnectRun:
    """The samples of one run and where it is: waiting for Main, timing, or done."""

    session: Any
    n: int
    loop: Any = field(default_factory=GLib.MainLoop)
    samples: list[int] = field(default_factory=list)
    error: str | None = None
    ready: bool = False
    channel: Any = None
    started_ns: int = 0
    closing: bool = False

    def fail(self, why: str) -> None:
        if self.error is None:
            self.error = why
        self.loop.quit()

    # --- the session's Main channel ---------------------------------------------------

    def on_channel_new(self, _session: Any, channel: Any) -> None:
        if isinstance(channel, SpiceClientGLib.MainChannel):
            GObject.Object.connect(channel, "channel-event", self.on_main_event)
        elif isinstance(channel, SpiceClientGLib.InputsChannel) and not self.ready:
            # the session makes (without connecting) one channel per entry of Main's
            # CHANNELS_LIST, which the server sends after MAIN_INIT: the connection id is
            # known, so an Inputs link will be accepted
            self.ready = True
            GLib.idle_add(self.next_sample)

    def on_main_event(self, _channel: Any, event: Any) -> None:
        if event != SpiceClientGLib.ChannelEvent.OPENED:
            self.fail(f"the Main channel reported {event.value_nick}")

    # --- one timed Inputs channel -----------------------------------------------------

    def next_sample(self) -> bool:
        if len(self.samples) == self.n:
            self.loop.quit()
            return False
        self.channel = SpiceClientGLib.Channel.new(
            self.session, SpiceClientGLib.Channel.string_to_type("inputs"), 0)
        GObject.Object.connect(self.channel, "channel-event", self.on_inputs_event)
        self.started_ns = time.perf_counter_ns()
        if not self.channel.connect():  # spice_channel_connect, not GObject's connect
            self.fail("spice_channel_connect refused the Inputs channel")
        return False

    def on_inputs_event(self, channel: Any, event: Any) -> None:
        if channel is not self.channel:
            return
        if event == SpiceClientGLib.ChannelEvent.OPENED and not self.closing:
            self.samples.append(time.perf_counter_ns() - self.started_ns)
            self.closing = True
            channel.disconnect(SpiceClientGLib.ChannelEvent.NONE)
        elif event == SpiceClientGLib.ChannelEvent.CLOSED and self.closing:
            # emitted once the channel's coroutine has ended and its socket is closed
            self.closing = False
            GLib.idle_add(self.next_sample)
        else:
            self.fail(f"the Inputs channel reported {event.value_nick}")


def new_session(settings: dict[str, Any]) -> Any:
    session = SpiceClientGLib.Session()
    session.set_property("host", settings["host"])
    if settings.get("port") is not None:
        session.set_property("port", str(settings["port"]))
    if settings.get("tls_port") is not None:
        session.set_property("tls-port", str(settings["tls_port"]))
    if settings.get("ca_file") is not None:
        session.set_property("ca-file", settings["ca_file"])
    if settings.get("password") is not None:
        session.set_property("password", settings["password"])
    return session


def measure(settings: dict[str, Any]) -> list[int]:
    session = new_session(settings)
    run = ConnectRun(session, int(settings["n"]))
    GObject.Object.connect(session, "channel-new", run.on_channel_new)

    def timed_out() -> bool:
        run.fail(f"no result within {settings['timeout']} s ({len(run.samples)} of {run.n} "
                 "samples)")
        return False

    GLib.timeout_add(int(float(settings["timeout"]) * 1000), timed_out)
    if not session.connect():  # spice_session_connect
        raise RuntimeError("spice_session_connect refused to start")
    run.loop.run()
    session.disconnect()
    if run.error is not None:
        raise RuntimeError(run.error)
    return run.samples


def main() -> int:
    settings = json.load(sys.stdin)
    try:
        samples = measure(settings)
    except RuntimeError as exc:
        where = settings.get("tls_port") or settings.get("port")
        print(f"spice-gtk {settings['host']}:{where}: {exc}", file=sys.stderr)
        return 1
    json.dump({"spice_gtk": SpiceClientGLib.util_get_version_string(),
               "connect_ns": samples}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
