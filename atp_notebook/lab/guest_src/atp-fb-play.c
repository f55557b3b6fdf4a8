/* atp-fb-play FILE FRAMES FB ROW MAX [FPS]: atp-fb-animate (templates/guest-init.sh) in one
 * process.  FILE holds FRAMES frames one after the other, each whole rows of /dev/fbFB's
 * format; each is written at row ROW, frame after frame, one pwrite() apiece (so the qxl
 * driver sees one dirty rectangle and sends one image per frame), until
 * /run/atp-fb-animate.PID.stop exists (PID: this process's, which guest-exec reports) or MAX
 * frames are written (0: no limit), at most FPS frames a second (absent or 0: as fast as
 * the guest can; an animation that ran late starts its schedule again rather than burst
 * to catch up, as a player dropping frames would).  The last frame of FILE is always the last one written,
 * so the screen ends known.  Prints the number of frames written.
 *
 * Why not the shell loop: it starts one dd per frame, and under TCG the process start and
 * dd's read of the frame cost about as much as the 3 MiB write itself.  Here the frames are
 * read once and each frame is one system call.
 *
 * Exit status: 0 done, 1 a failed system call, 2 bad arguments (as atp-fb-animate).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "atp-fb-play: %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

static int usage(void)
{
    fputs("usage: atp-fb-play FILE FRAMES FB ROW MAX [FPS] (FILE a regular file, FPS at "
          "most 1000)\n", stderr);
    return 2;
}

/* a decimal number without sign or junk, or -1 */
static long number(const char *text)
{
    char *end;
    if (!*text || strspn(text, "0123456789") != strlen(text))
        return -1;
    errno = 0;
    long value = strtol(text, &end, 10);
    return errno ? -1 : value;
}

/* the first number in a sysfs file (virtual_size is "W,H": skip to after the comma when
 * after_comma), or -1 */
static long sysfs_number(const char *path, int after_comma)
{
    char text[64] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, text, sizeof text - 1);
    close(fd);
    if (got <= 0)
        return -1;
    char *at = text;
    if (after_comma) {
        at = strchr(text, ',');
        if (!at)
            return -1;
        at++;
    }
    return strtol(at, NULL, 10);
}

static void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0) { /* best effort, as the shell's */ }
        close(fd);
    }
}

/* the text console off the framebuffer and its cursor still, as atp-fb-animate's
 * quiet_fbcon: else an 8x16 cell keeps changing under the animation */
static void quiet_fbcon(void)
{
    DIR *dir = opendir("/sys/class/vtconsole");
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir(dir))) {
            if (strncmp(entry->d_name, "vtcon", 5))
                continue;
            char path[PATH_MAX], name[128] = {0};
            snprintf(path, sizeof path, "/sys/class/vtconsole/%s/name", entry->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t got = read(fd, name, sizeof name - 1);
            close(fd);
            if (got > 0 && strstr(name, "frame buffer")) {
                snprintf(path, sizeof path, "/sys/class/vtconsole/%s/bind", entry->d_name);
                write_text(path, "0");
            }
        }
        closedir(dir);
    }
    write_text("/sys/class/graphics/fbcon/cursor_blink", "0");
}

/* t plus ns nanoseconds */
static struct timespec later(struct timespec t, long ns)
{
    t.tv_nsec += ns;
    while (t.tv_nsec >= 1000000000L) {
        t.tv_nsec -= 1000000000L;
        t.tv_sec++;
    }
    return t;
}

static int before(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/* wait for frame time *due, then set it one period on; a frame more than a period late
 * restarts the schedule from now */
static void pace(struct timespec *due, long period)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (before(later(*due, period), now)) {
        *due = later(now, period);
        return;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, due, NULL) == EINTR) {
    }
    *due = later(*due, period);
}

static int write_frame(int fb, const char *device, const unsigned char *frame, size_t bytes,
                       off_t at)
{
    size_t done = 0;
    while (done < bytes) {
        ssize_t put = pwrite(fb, frame + done, bytes - done, at + (off_t)done);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return fail("cannot write", device);
        done += (size_t)put;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7)
        return usage();
    const char *file = argv[1];
    long frames = number(argv[2]), fbn = number(argv[3]), row = number(argv[4]);
    long max = number(argv[5]), fps = argc == 7 ? number(argv[6]) : 0;
    struct stat st;
    if (frames <= 0 || fbn < 0 || row < 0 || max < 0 || fps < 0 || fps > 1000 || stat(file, &st)
        || !S_ISREG(st.st_mode))
        return usage();

    char device[64], sys[96];
    snprintf(device, sizeof device, "/dev/fb%ld", fbn);
    snprintf(sys, sizeof sys, "/sys/class/graphics/fb%ld/stride", fbn);
    long stride = sysfs_number(sys, 0);
    snprintf(sys, sizeof sys, "/sys/class/graphics/fb%ld/virtual_size", fbn);
    long height = sysfs_number(sys, 1);
    if (access(device, W_OK) || stride <= 0 || height <= 0) {
        fprintf(stderr, "atp-fb-play: no /dev/fb%ld (atp-fb-on first)\n", fbn);
        return 1;
    }
    long size = (long)st.st_size, bytes = size / frames, rows = bytes / stride;
    if (rows <= 0 || rows * stride * frames != size || row + rows > height) {
        fprintf(stderr, "atp-fb-play: %ld bytes are not %ld frames of whole %ld-byte rows "
                "fitting fb%ld's %ld rows from row %ld\n", size, frames, stride, fbn, height,
                row);
        return 2;
    }

    int in = open(file, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return fail("cannot open", file);
    /* read once; MAP_POPULATE: no page faults inside the loop */
    unsigned char *all = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, in, 0);
    close(in);
    if (all == MAP_FAILED)
        return fail("cannot map", file);
    int fb = open(device, O_WRONLY | O_CLOEXEC);
    if (fb < 0)
        return fail("cannot open", device);
    quiet_fbcon();

    char stop[64];
    snprintf(stop, sizeof stop, "/run/atp-fb-animate.%ld.stop", (long)getpid());
    off_t at = (off_t)row * stride;
    long n = 0, i = 0, period = fps ? 1000000000L / fps : 0;
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    while (access(stop, F_OK) && (max == 0 || n < max)) {
        if (period)
            pace(&due, period);
        if (write_frame(fb, device, all + i * bytes, (size_t)bytes, at))
            return 1;
        n++;
        i = (i + 1) % frames;
    }
    /* i is the next frame: 0 after the last one */
    if (i != 0) {
        if (write_frame(fb, device, all + (frames - 1) * bytes, (size_t)bytes, at))
            return 1;
        n++;
    }
    unlink(stop);
    printf("%ld\n", n);
    return 0;
}
