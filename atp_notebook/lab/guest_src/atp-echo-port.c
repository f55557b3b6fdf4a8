/* atp-echo-port DEVICE: echo every byte read from a virtio-serial port (DEVICE, e.g.
 * /dev/virtio-ports/com.atp.test.0) back to it, for as long as the guest runs.
 *
 * Why not the shell's `while :; do cat <&3 >&3; sleep 0.1; done`: while no host program
 * holds the port open, a read returns end-of-file at once, so that loop started a cat and
 * a sleep ten times a second; under TCG that cost each lab guest ~170 ms of host CPU a
 * second doing nothing.  Here an end-of-file waits, without a process or a busy loop, for
 * the SIGIO the virtio console driver sends when the host side opens the port (O_ASYNC),
 * or one second at most should that signal be missed.
 *
 * Exit status: 1 the device cannot be opened, 2 bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void on_sigio(int sig)
{
    (void)sig; /* only to end ppoll() */
}

/* all of buf to fd; 0, or -1 when the port closed under us (the bytes are lost, as the
 * shell's cat lost them) */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t put = write(fd, buf, len);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return -1;
        buf += put;
        len -= (size_t)put;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] != '/') {
        fputs("usage: atp-echo-port DEVICE (an absolute path)\n", stderr);
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "atp-echo-port: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    /* SIGIO stays blocked but while waiting in ppoll, so it can only end that wait */
    sigset_t blocked, waiting;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGIO);
    sigprocmask(SIG_BLOCK, &blocked, &waiting);
    sigdelset(&waiting, SIGIO);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigio;
    sigaction(SIGIO, &action, NULL);
    if (fcntl(fd, F_SETOWN, getpid()) == 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);

    char buf[65536];
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got > 0) {
            write_all(fd, buf, (size_t)got);
            continue;
        }
        if (got < 0 && errno == EINTR)
            continue;
        /* end of file (no host side) or an error: wait for the host to open the port */
        struct timespec second = {1, 0};
        ppoll(NULL, 0, &second, &waiting);
    }
}
