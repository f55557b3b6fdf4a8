#!/bin/sh
# The lab guest's /init and its helper commands, in one file.
#
# The kernel runs this as /init (PID 1).  /usr/bin/atp-* are symlinks to it and it picks its
# job from the name it was started under, so all of the guest's shell lives in one place.
# atp_notebook/lab/guest.py fills in the placeholders below when it builds the initramfs.
#
# Nothing here may write to /dev/console: that is tty1 (the last console= on the kernel
# command line) and typing tests read tty1.  Boot progress goes to /dev/ttyS0 instead, which
# the lab points at a file, so a guest whose agent never answers can be debugged from there.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root

BOOT_MODULES="@BOOT_MODULES@"
FB_MODULES="@FB_MODULES@"
AGENT_PORT="@AGENT_PORT@"
TEST_PORT="@TEST_PORT@"

log() {
    echo "atp-guest: $*"
}

# Load kernel modules in the order given (the builder already sorted them by dependency);
# modules that are already loaded are skipped so that the commands can be run twice.
load_modules() {
    for ko in "$@"; do
        name=$(basename "$ko" .ko | tr - _)
        [ -d "/sys/module/$name" ] && continue
        insmod "$ko" || { log "insmod $ko failed" >&2; return 1; }
    done
}

# There is no udev: make /dev/virtio-ports/<name> -> ../vportNpM ourselves.  A port's name
# arrives from the host a little after the port itself, so an empty name is skipped and
# picked up by the next call.
link_ports() {
    mkdir -p /dev/virtio-ports
    for f in /sys/class/virtio-ports/*/name; do
        [ -r "$f" ] || continue
        name=$(cat "$f")
        [ -n "$name" ] || continue
        dev=${f%/name}
        dev=${dev##*/}
        [ "$(readlink "/dev/virtio-ports/$name")" = "../$dev" ] ||
            ln -sfn "../$dev" "/dev/virtio-ports/$name"
    done
}

# Wait (for as long as it takes) until the named port exists; services start from
# busybox init in parallel with the virtio driver still probing.
wait_port() {
    while :; do
        link_ports
        [ -c "/dev/virtio-ports/$1" ] && return 0
        # the ports probe within seconds of boot; a VM without this one (atp-sasl has no
        # test port) must not spin on it: once the guest is 15 s up, look every 5 s
        read -r up _ </proc/uptime
        if [ "${up%%.*}" -lt 15 ]; then sleep 0.2; else sleep 5; fi
    done
}

boot() {
    mount -t proc -o nosuid,nodev,noexec proc /proc
    mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
    mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
    # Only now does /dev/ttyS0 exist; until here nothing was printed.
    if [ -c /dev/ttyS0 ]; then
        exec </dev/null >/dev/ttyS0 2>&1
    else
        exec </dev/null >/dev/null 2>&1
    fi
    log "init on kernel $(uname -r)"
    # Start tty1 blank rather than with the BIOS's leftovers: tests read that screen.
    printf '\033[H\033[2J' >/dev/tty1

    mkdir -p /dev/pts /dev/shm
    mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
    mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
    ln -sfn /proc/self/fd /dev/fd
    ln -sfn /proc/self/fd/0 /dev/stdin
    ln -sfn /proc/self/fd/1 /dev/stdout
    ln -sfn /proc/self/fd/2 /dev/stderr

    # atp.hostname= has a dot, so the kernel treats it as a module parameter and does not
    # pass it to init; /proc/cmdline still has it.
    host=atp-guest
    for arg in $(cat /proc/cmdline); do
        case $arg in
            atp.hostname=?*) host=${arg#atp.hostname=} ;;
        esac
    done
    hostname "$host"
    echo "$host" >/etc/hostname
    log "hostname $host"

    load_modules $BOOT_MODULES && log "virtio modules loaded"

    # busybox init (still PID 1) respawns the shells and services listed in /etc/inittab.
    # Its own messages go to its stderr, which is the serial port set up above.
    log "starting busybox init"
    exec /sbin/init
}

# Run by busybox init (respawn): qemu-ga in the foreground so that init notices if it dies.
# With -d it would fork away and init would start a second one at once.
agent() {
    # atp-agent-off holds the agent down for as long as its flag file exists.
    while [ -e /run/qemu-ga.off ]; do
        sleep 0.2
    done
    wait_port "$AGENT_PORT"
    # init respawns immediately; a crashing agent must not spin the CPU.
    [ -e /run/qemu-ga.started ] && sleep 1
    : >/run/qemu-ga.started
    log "starting qemu-ga on $AGENT_PORT"
    echo $$ >/run/qemu-ga.pid
    exec qemu-ga -m virtio-serial -p "/dev/virtio-ports/$AGENT_PORT" -t /run
}

# atp-agent-off SECONDS: make the agent unavailable for SECONDS, to test how the host copes.
# It runs through guest-exec, so it must return at once and leave the agent answering long
# enough for the caller to collect its exit status (guest-exec-status): the stop happens in
# the background, a second later.  Killing qemu-ga makes busybox init respawn the wrapper
# above, which waits while the flag exists.  The flag holds this command's PID, so an earlier
# atp-agent-off that ends first does not lift a later one's hold.  The background job keeps
# none of the guest-exec pipes open, or qemu-ga would wait for it before reporting "exited".
agent_off() {
    case ${1:-} in
        '' | *[!0-9]*)
            echo "usage: atp-agent-off SECONDS" >&2
            exit 2
            ;;
    esac
    echo $$ >/run/qemu-ga.off
    (
        sleep 1
        kill "$(cat /run/qemu-ga.pid)"
        sleep "$1"
        # $$ is still the parent's PID inside ( ): the one written to the flag
        [ "$(cat /run/qemu-ga.off 2>/dev/null)" = "$$" ] && rm -f /run/qemu-ga.off
    ) </dev/null >/dev/null 2>&1 &
    log "agent off for $1 s"
}

# Echo everything the host sends on the test port back to it.  A virtio port reads EOF while
# the host side is not connected, so the port is opened once, read-write, and cat is simply
# restarted after each EOF; reopening would lose the host's data in between.
echo_service() {
    wait_port "$TEST_PORT"
    log "echo service on $TEST_PORT"
    # one C process (guest_src/atp-echo-port.c): a shell loop of cat restarted at every
    # end-of-file spun while no host side held the port open
    exec /usr/bin/atp-echo-port "/dev/virtio-ports/$TEST_PORT"
}

# Load the qxl DRM stack so that /dev/fb0 appears (fbdev emulation, XRGB8888), and one more
# framebuffer per further qxl device (a VM with two qxl cards gets fb0 and fb1; fbcon takes
# fb0 only).  Not done at boot: the framebuffer console would take over tty1 and tests want
# to choose when.  Prints "fbN NAME W,H BPPbpp" per framebuffer.
fb_on() {
    load_modules $FB_MODULES || exit 1
    # qxl is PCI 1b36:0100; each one probes on its own, a little after the module loads
    want=0
    for dev in /sys/bus/pci/devices/*; do
        [ "$(cat "$dev/vendor"):$(cat "$dev/device")" = 0x1b36:0x0100 ] && want=$((want + 1))
    done
    [ $want -gt 0 ] || want=1
    i=0
    while [ "$(ls -d /sys/class/graphics/fb[0-9]* 2>/dev/null | wc -l)" -lt $want ]; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "atp-fb-on: $want qxl devices but only" \
                "$(ls -d /sys/class/graphics/fb[0-9]* 2>/dev/null | wc -l) framebuffers" \
                "10 s after loading qxl; is the VM's video qxl?" >&2
            exit 1
        fi
        sleep 0.1
    done
    for fb in /sys/class/graphics/fb[0-9]*; do
        [ -c "/dev/${fb##*/}" ] || sleep 0.2
        echo "${fb##*/} $(cat $fb/name) $(cat $fb/virtual_size) $(cat $fb/bits_per_pixel)bpp"
    done
}

# Unbind the framebuffer console and stop its cursor blink, so that nothing but our own
# writes changes the framebuffer (an 8x16 cell at the old text cursor blinks otherwise).
quiet_fbcon() {
    for con in /sys/class/vtconsole/vtcon*; do
        grep -q 'frame buffer' "$con/name" && echo 0 >"$con/bind"
    done
    echo 0 >/sys/class/graphics/fbcon/cursor_blink
}

# atp-fb-show FILE [FB [ROW ROWS]]: show a raw image on /dev/fbFB (default 0), exactly as
# given: FILE holds whole rows of the framebuffer's format (qxl: 32 bpp, bytes B,G,R,X).
# With ROW and ROWS only those rows are written (FILE is still the whole screen's image).
# The text console is unbound and fbcon's cursor blink stopped first, or an 8x16 cell at the
# old text cursor keeps changing (DESIGN 6).  One write() call, so the qxl driver sees one
# dirty rectangle and sends it as one image.  /dev/zero as FILE clears the screen.
fb_show() {
    file=${1:-}
    fbn=${2:-0}
    case $fbn:${3:-0}:${4:-0} in *[!0-9:]* | :*) file= ;; esac
    if [ -z "$file" ] || [ $# -eq 3 ] || [ $# -gt 4 ]; then
        echo "usage: atp-fb-show FILE [FB [ROW ROWS]]" >&2
        exit 2
    fi
    fb_on >/dev/null || exit 1
    sys=/sys/class/graphics/fb$fbn
    if [ ! -c "/dev/fb$fbn" ] || [ ! -d "$sys" ]; then
        echo "atp-fb-show: no /dev/fb$fbn" >&2
        exit 1
    fi
    quiet_fbcon
    stride=$(cat "$sys/stride")
    height=$(cat "$sys/virtual_size")
    height=${height#*,}
    row=${3:-0}
    rows=${4:-$height}
    if [ $((row + rows)) -gt "$height" ] || [ "$rows" -le 0 ]; then
        echo "atp-fb-show: rows $row..$((row + rows)) are outside fb$fbn's $height" >&2
        exit 2
    fi
    at=$((row * stride))
    dd if="$file" of="/dev/fb$fbn" bs=$((rows * stride)) count=1 skip=$at seek=$at \
        iflag=skip_bytes,fullblock oflag=seek_bytes conv=notrunc status=none
}

# atp-fb-animate FILE FRAMES FB ROW MAX: an animation on /dev/fbFB as fast as the guest
# can write it. FILE holds FRAMES frames one after the other, each whole rows of the
# framebuffer's format; each is written at row ROW, frame after frame, one write() apiece
# (one dirty rectangle each, as atp-fb-show), until /run/atp-fb-animate.PID.stop exists
# (PID: this command's, which guest-exec reports) or MAX frames are written (0: no limit).
# The last frame of FILE is always the last one written, so the screen ends known. Prints
# the number of frames written.
fb_animate() {
    ok=$([ $# -eq 5 ] && [ -f "$1" ] && echo yes)
    for n in "${2:-}" "${3:-}" "${4:-}" "${5:-}"; do
        case $n in '' | *[!0-9]*) ok= ;; esac
    done
    [ -n "$ok" ] && [ "$2" -gt 0 ] || ok=
    if [ -z "$ok" ]; then
        echo "usage: atp-fb-animate FILE FRAMES FB ROW MAX (FILE a regular file)" >&2
        exit 2
    fi
    file=$1 frames=$2 fbn=$3 row=$4 max=$5
    sys=/sys/class/graphics/fb$fbn
    if [ ! -c "/dev/fb$fbn" ] || [ ! -d "$sys" ]; then
        echo "atp-fb-animate: no /dev/fb$fbn (atp-fb-on first)" >&2
        exit 1
    fi
    stride=$(cat "$sys/stride")
    height=$(cat "$sys/virtual_size")
    height=${height#*,}
    size=$(wc -c <"$file")
    bytes=$((size / frames))
    rows=$((bytes / stride))
    if [ "$rows" -le 0 ] || [ $((rows * stride * frames)) -ne "$size" ] ||
        [ $((row + rows)) -gt "$height" ]; then
        echo "atp-fb-animate: $size bytes are not $frames frames of whole $stride-byte rows" \
            "fitting fb$fbn's $height rows from row $row" >&2
        exit 2
    fi
    quiet_fbcon
    stop=/run/atp-fb-animate.$$.stop
    at=$((row * stride))
    n=0 i=0
    while [ ! -e "$stop" ] && { [ "$max" -eq 0 ] || [ $n -lt "$max" ]; }; do
        dd if="$file" of="/dev/fb$fbn" bs=$bytes count=1 skip=$((i * bytes)) seek=$at \
            iflag=skip_bytes,fullblock oflag=seek_bytes conv=notrunc status=none || exit 1
        n=$((n + 1))
        i=$(((i + 1) % frames))
    done
    # i is the next frame: 0 after the last one
    if [ $i -ne 0 ]; then
        dd if="$file" of="/dev/fb$fbn" bs=$bytes count=1 skip=$(((frames - 1) * bytes)) \
            seek=$at iflag=skip_bytes,fullblock oflag=seek_bytes conv=notrunc status=none ||
            exit 1
        n=$((n + 1))
    fi
    rm -f "$stop"
    echo "$n"
}

# atp-recv PORT FILE SIZE: store the next SIZE bytes the host sends on virtio-serial PORT in
# FILE.  The host opens its side first (a port whose host side is closed reads EOF) and may
# send at once: QEMU holds the data until the port is open here.  Under TCG this moves a
# 3 MiB screen image several times faster than guest-file-write's base64 requests.
recv_file() {
    case ${3:-} in
        '' | *[!0-9]*)
            echo "usage: atp-recv PORT FILE SIZE" >&2
            exit 2
            ;;
    esac
    i=0
    until link_ports; [ -c "/dev/virtio-ports/$1" ]; do
        i=$((i + 1))
        if [ $i -gt 50 ]; then
            echo "atp-recv: no virtio-serial port $1" >&2
            exit 1
        fi
        sleep 0.1
    done
    head -c "$3" <"/dev/virtio-ports/$1" >"$2" || exit 1
    got=$(wc -c <"$2")
    if [ "$got" -ne "$3" ]; then
        echo "atp-recv: $got of $3 bytes arrived on $1" >&2
        exit 1
    fi
}

case ${0##*/} in
    init) boot ;;
    atp-qemu-ga) agent ;;
    atp-echo) echo_service ;;
    atp-link-ports) link_ports ;;
    atp-fb-on) fb_on ;;
    atp-fb-show) fb_show "$@" ;;
    atp-fb-animate) fb_animate "$@" ;;
    atp-recv) recv_file "$@" ;;
    atp-agent-off) agent_off "$@" ;;
    *)
        echo "$0: unknown command name" >&2
        exit 2
        ;;
esac
