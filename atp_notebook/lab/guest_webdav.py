"""The guest's end of Spice folder sharing: Debian's ``spice-webdavd``, started on demand.

:func:`add_guest_webdav` adds to the initramfs

- ``/usr/sbin/spice-webdavd`` (Debian's spice-webdavd, from phodav) and the libraries ldd
  names (GLib, GIO and avahi's client libraries: 3.5 MB);
- ``/usr/lib/atp/webdavd-no-avahi.so``, preloaded into it (``guest_src/webdavd-no-avahi.c``):
  the daemon announces itself over mDNS at start and exits when avahi-daemon is not on a
  D-Bus system bus ("Failed to create avahi client: Daemon not running", exit 1, measured on
  this host). The guest runs neither; the shim makes that one call succeed without
  connecting, and the daemon then serves as it would with them;
- ``/usr/bin/atp-webdavd start|wait|stop``: brings the loopback up (the daemon listens on
  127.0.0.1), waits for the port device, starts the daemon in its own session and writes
  its pid; ``wait`` retries a GET of ``/`` until one is answered (after each unshare or
  lost channel the daemon restarts its side and resets connections made meanwhile);
  ``stop`` kills it (the guest then closes the port: a Spice PORT_EVENT CLOSED);
- ``/usr/bin/atp-dav-request METHOD PATH [FILE]``: one raw HTTP/1.1 request through busybox
  ``nc``, printing the response (busybox ``wget`` does GET and POST only), after
  ``atp-webdavd wait``. spice-webdavd does not close a guest
  socket when the host ends its side, so ``nc`` never sees EOF: the request waits
  :data:`DAV_REQUEST_WAIT_S` and is then ended by ``timeout``.

Reading is ``wget -O FILE http://127.0.0.1:9843/PATH``. The VM needs the port: a
``spiceport`` chardev named ``org.spice-space.webdav.0`` on a guest virtio-serial port of
that name, the display VM setting ``webdav`` (:data:`~atp_notebook.lab.display_vms.
WEBDAV_SETTING`).

Example::

    tree = Tree()
    add_guest_webdav(tree)      # spice-webdavd, its shim, atp-webdavd, atp-dav-request
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from atp_notebook.errors import LabError
from atp_notebook.lab.guest_programs import compile_c

if TYPE_CHECKING:
    from atp_notebook.lab.guest import Tree

WEBDAVD = Path("/usr/sbin/spice-webdavd")
WEBDAVD_PORT = 9843  # Debian's unit starts it with -p 9843; clients look there
SHIM_SOURCE = "webdavd-no-avahi.c"
SHIM_PATH = "usr/lib/atp/webdavd-no-avahi.so"
PACKAGE_HINT = "apt-get install spice-webdavd gcc"
# deterministic output, as guest_programs: stripped, no build id, source through stdin
SHIM_CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-s",
               "-Wl,--build-id=none")
DAV_REQUEST_WAIT_S = 4

ATP_WEBDAVD = f"""#!/bin/sh
# atp-webdavd start|wait|stop: spice-webdavd on 127.0.0.1:{WEBDAVD_PORT}, forwarding over the
# virtio port org.spice-space.webdav.0 (prints its pid on start).
PIDFILE=/run/atp-webdavd.pid
DEV=/dev/virtio-ports/org.spice-space.webdav.0
running() {{ [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }}
case "$1" in
start)
    ifconfig lo 127.0.0.1 up || exit 1
    i=0
    until /usr/bin/atp-link-ports; [ -c $DEV ]; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "atp-webdavd: no $DEV after 10 s; does the VM have the webdav spiceport?" >&2
            exit 1
        fi
        sleep 0.1
    done
    if running; then cat $PIDFILE; exit 0; fi
    LD_PRELOAD=/{SHIM_PATH} setsid /usr/sbin/spice-webdavd -p {WEBDAVD_PORT} \\
        </dev/null >/run/atp-webdavd.log 2>&1 &
    echo $! >$PIDFILE
    i=0
    until netstat -ltn | grep -q ":{WEBDAVD_PORT} "; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! running; then
            echo "atp-webdavd: spice-webdavd is not listening:" >&2
            cat /run/atp-webdavd.log >&2
            exit 1
        fi
        sleep 0.1
    done
    cat $PIDFILE ;;
wait)
    # until a GET of / through the daemon works: after the host side went away, it drops
    # the connections it accepts until it sees the host again (measured: a connection
    # made within a second of a new share was reset)
    i=0
    until timeout 5 wget -q -O /dev/null "http://127.0.0.1:{WEBDAVD_PORT}/" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 50 ]; then
            echo "atp-webdavd: no answer through spice-webdavd within 10 s; is a folder" \
                "shared?" >&2
            exit 1
        fi
        sleep 0.2
    done ;;
stop)
    if running; then kill "$(cat $PIDFILE)"; fi
    rm -f $PIDFILE ;;
*)
    echo "usage: atp-webdavd start|wait|stop" >&2; exit 2 ;;
esac
"""

ATP_DAV_REQUEST = f"""#!/bin/sh
# atp-dav-request METHOD PATH [FILE]: one HTTP/1.1 request to spice-webdavd with FILE as
# its body; prints the whole response. Takes {DAV_REQUEST_WAIT_S} s: the daemon leaves the
# socket open after the response, so nc is ended by timeout.
[ $# -ge 2 ] || {{ echo "usage: atp-dav-request METHOD PATH [FILE]" >&2; exit 2; }}
body=${{3:-/dev/null}}
size=$(wc -c <"$body") || exit 1
# the raw request below has only its fixed wait: first make sure the daemon answers
/usr/bin/atp-webdavd wait || exit 1
head='%s %s HTTP/1.1\\r\\nHost: 127.0.0.1:{WEBDAVD_PORT}\\r\\nContent-Length: %s\\r\\n\\r\\n'
{{ printf "$head" "$1" "$2" "$size"; cat "$body"; sleep {DAV_REQUEST_WAIT_S}; }} |
    timeout {DAV_REQUEST_WAIT_S} nc 127.0.0.1 {WEBDAVD_PORT}
exit 0
"""


def compile_shim(cc: str = "gcc") -> bytes:
    """The shim's shared object, compiled now (once per process: the image's digest is
    computed on every ``atp-lab up``)."""
    ref = resources.files("atp_notebook.lab").joinpath("guest_src", SHIM_SOURCE)
    return compile_c("guest webdav shim", SHIM_SOURCE, ref.read_bytes(), SHIM_CFLAGS, cc=cc)


def add_guest_webdav(tree: Tree) -> None:
    """Add spice-webdavd with its libraries and shim, ``atp-webdavd`` and
    ``atp-dav-request`` to ``tree``."""
    from atp_notebook.lab.guest import (  # noqa: PLC0415 - guest.py imports this module
        add_host_path,
        ldd_paths,
    )

    if not WEBDAVD.is_file():
        raise LabError(f"{WEBDAVD} is missing: the guest's end of folder sharing is "
                       "Debian's spice-webdavd", hint=PACKAGE_HINT)
    add_host_path(tree, WEBDAVD)
    for lib in ldd_paths(WEBDAVD):
        add_host_path(tree, lib)
    tree.file(SHIM_PATH, compile_shim(), 0o755)
    tree.file("usr/bin/atp-webdavd", ATP_WEBDAVD.encode(), 0o755)
    tree.file("usr/bin/atp-dav-request", ATP_DAV_REQUEST.encode(), 0o755)
