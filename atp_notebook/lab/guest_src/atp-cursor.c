/*
 * atp-cursor: give the guest's qxl display a known hardware cursor, for the lab's tests of
 * the Spice cursor channel.  A VGA text console never sets one, and no X server runs in the
 * lab guest, so this program talks to the kernel's DRM device directly.
 *
 *   atp-cursor hold            keep /dev/dri/card0 open (in the background) without being
 *                              DRM master; see below why
 *   atp-cursor set HX HY X Y   the known 64x64 shape with its hot spot at (HX, HY), the hot
 *                              spot on screen at (X, Y)
 *   atp-cursor move X Y        the hot spot to (X, Y)
 *   atp-cursor hide            no cursor
 *
 * The shape is atp_cursor_pixel() below; atp_notebook/lab/cursor_guest.py computes the same
 * pixels on the host.  Run `atp-fb-on` first: qxl's DRM driver must be loaded.
 *
 * Why "hold": when the last file descriptor of a DRM device closes, the kernel's fbdev
 * emulation restores its own mode and disables every plane but the primary, so the cursor
 * would vanish as this program exits (seen in the lab: a SET, then a HIDE at once).  The holder keeps one descriptor open; it drops DRM
 * master at once so that each later command can become master (the cursor ioctls need it).
 * The cursor itself outlives the command that set it: the plane holds its framebuffer.
 *
 * Only the kernel's uapi is used.  Debian's linux-libc-dev does not ship the DRM headers
 * (libdrm-dev does), so the few structures needed are written out here from the kernel's
 * include/uapi/drm/drm.h and drm_mode.h; their sizes are checked at compile time.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <linux/types.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CARD "/dev/dri/card0"
#define HOLD_PID "/run/atp-cursor.hold"
#define HOTSPOT_FILE "/run/atp-cursor.hotspot"
#define SIZE 64

struct mode_card_res {
    __u64 fb_id_ptr, crtc_id_ptr, connector_id_ptr, encoder_id_ptr;
    __u32 count_fbs, count_crtcs, count_connectors, count_encoders;
    __u32 min_width, max_width, min_height, max_height;
};

struct mode_modeinfo {
    __u32 clock;
    __u16 hdisplay, hsync_start, hsync_end, htotal, hskew;
    __u16 vdisplay, vsync_start, vsync_end, vtotal, vscan;
    __u32 vrefresh, flags, type;
    char name[32];
};

struct mode_crtc {
    __u64 set_connectors_ptr;
    __u32 count_connectors, crtc_id, fb_id, x, y, gamma_size, mode_valid;
    struct mode_modeinfo mode;
};

struct mode_cursor2 {
    __u32 flags, crtc_id;
    __s32 x, y;
    __u32 width, height, handle;
    __s32 hot_x, hot_y;
};

struct mode_create_dumb {
    __u32 height, width, bpp, flags, handle, pitch;
    __u64 size;
};

struct mode_map_dumb {
    __u32 handle, pad;
    __u64 offset;
};

_Static_assert(sizeof(struct mode_card_res) == 64, "drm_mode_card_res");
_Static_assert(sizeof(struct mode_modeinfo) == 68, "drm_mode_modeinfo");
_Static_assert(sizeof(struct mode_crtc) == 104, "drm_mode_crtc");
_Static_assert(sizeof(struct mode_cursor2) == 36, "drm_mode_cursor2");
_Static_assert(sizeof(struct mode_create_dumb) == 32, "drm_mode_create_dumb");
_Static_assert(sizeof(struct mode_map_dumb) == 16, "drm_mode_map_dumb");

#define DRM_BASE 'd'
#define IOCTL_DROP_MASTER _IO(DRM_BASE, 0x1f)
#define IOCTL_GETRESOURCES _IOWR(DRM_BASE, 0xA0, struct mode_card_res)
#define IOCTL_GETCRTC _IOWR(DRM_BASE, 0xA1, struct mode_crtc)
#define IOCTL_CREATE_DUMB _IOWR(DRM_BASE, 0xB2, struct mode_create_dumb)
#define IOCTL_MAP_DUMB _IOWR(DRM_BASE, 0xB3, struct mode_map_dumb)
#define IOCTL_CURSOR2 _IOWR(DRM_BASE, 0xBB, struct mode_cursor2)
#define CURSOR_BO 0x01
#define CURSOR_MOVE 0x02

static void die(const char *what)
{
    fprintf(stderr, "atp-cursor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: atp-cursor hold | set HX HY X Y | move X Y | hide\n");
    exit(2);
}

/* The known shape, 0xAARRGGBB: an opaque 40x48 block whose colour encodes the pixel's
 * place (so a shifted or mirrored copy shows), with a transparent notch at its top right
 * and everything else transparent.  Only alpha 0 and 255: straight or premultiplied alpha
 * then mean the same pixels. */
static uint32_t atp_cursor_pixel(int x, int y)
{
    if (x >= 40 || y >= 48 || (x >= 30 && y < 10))
        return 0;
    return 0xFF000000u | (uint32_t)(x * 6) << 16 | (uint32_t)(y * 5) << 8 |
           (uint32_t)(0x80 | ((x + y) & 0x3F));
}

static int number(const char *text)
{
    char *end;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno || *text == '\0' || *end != '\0' || value < -32768 || value > 32767)
        usage();
    return (int)value;
}

/* The CRTC that shows something (fbdev set a mode on it), as DRM numbers them. */
static __u32 active_crtc(int fd)
{
    struct mode_card_res res;
    __u32 ids[32];
    __u32 i;

    memset(&res, 0, sizeof res);
    if (ioctl(fd, IOCTL_GETRESOURCES, &res))
        die("DRM_IOCTL_MODE_GETRESOURCES");
    if (res.count_crtcs == 0 || res.count_crtcs > 32) {
        fprintf(stderr, "atp-cursor: %u CRTCs\n", res.count_crtcs);
        exit(1);
    }
    memset(&res, 0, sizeof res);
    res.crtc_id_ptr = (__u64)(uintptr_t)ids;
    res.count_crtcs = 32;
    if (ioctl(fd, IOCTL_GETRESOURCES, &res))
        die("DRM_IOCTL_MODE_GETRESOURCES");
    for (i = 0; i < res.count_crtcs; i++) {
        struct mode_crtc crtc;

        memset(&crtc, 0, sizeof crtc);
        crtc.crtc_id = ids[i];
        if (ioctl(fd, IOCTL_GETCRTC, &crtc))
            die("DRM_IOCTL_MODE_GETCRTC");
        if (crtc.mode_valid)
            return crtc.crtc_id;
    }
    fprintf(stderr, "atp-cursor: no CRTC has a mode (run atp-fb-on first)\n");
    exit(1);
}

static int open_card(void)
{
    int fd = open(CARD, O_RDWR | O_CLOEXEC);

    if (fd < 0)
        die("open " CARD " (run atp-fb-on first)");
    return fd;
}

static void save_hotspot(int hx, int hy)
{
    FILE *f = fopen(HOTSPOT_FILE, "w");

    if (!f || fprintf(f, "%d %d\n", hx, hy) < 0 || fclose(f))
        die("write " HOTSPOT_FILE);
}

static void load_hotspot(int *hx, int *hy)
{
    FILE *f = fopen(HOTSPOT_FILE, "r");

    if (!f || fscanf(f, "%d %d", hx, hy) != 2) {
        fprintf(stderr, "atp-cursor: no cursor set yet (atp-cursor set first)\n");
        exit(1);
    }
    fclose(f);
}

/* A background process that keeps the card open, not as master; returns once it runs. */
static int hold(void)
{
    int ready[2];
    char byte = 0;
    pid_t pid;
    FILE *f;

    f = fopen(HOLD_PID, "r");
    if (f) {
        int old = 0;

        if (fscanf(f, "%d", &old) == 1 && old > 0 && kill(old, 0) == 0) {
            fclose(f);
            return 0;
        }
        fclose(f);
    }
    if (pipe(ready))
        die("pipe");
    pid = fork();
    if (pid < 0)
        die("fork");
    if (pid > 0) {
        close(ready[1]);
        /* the child writes one byte once it holds the card, or exits */
        return read(ready[0], &byte, 1) == 1 ? 0 : 1;
    }
    close(ready[0]);
    setsid();
    int fd = open_card();
    /* the first opener became master; give it up so that the commands can take it */
    if (ioctl(fd, IOCTL_DROP_MASTER, 0))
        die("DRM_IOCTL_DROP_MASTER");
    f = fopen(HOLD_PID, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f))
        die("write " HOLD_PID);
    /* guest-exec waits for every copy of its pipes to close before it reports an exit */
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || write(ready[1], &byte, 1) != 1)
        die("hold");
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close(ready[1]);
    for (;;)
        pause();
}

static int set(int hx, int hy, int x, int y)
{
    struct mode_create_dumb dumb;
    struct mode_map_dumb map;
    struct mode_cursor2 cursor;
    uint32_t *pixels;
    int fd, row, col;

    if (hx < 0 || hy < 0 || hx >= SIZE || hy >= SIZE)
        usage();
    fd = open_card();
    memset(&dumb, 0, sizeof dumb);
    dumb.width = SIZE;
    dumb.height = SIZE;
    dumb.bpp = 32;
    if (ioctl(fd, IOCTL_CREATE_DUMB, &dumb))
        die("DRM_IOCTL_MODE_CREATE_DUMB");
    memset(&map, 0, sizeof map);
    map.handle = dumb.handle;
    if (ioctl(fd, IOCTL_MAP_DUMB, &map))
        die("DRM_IOCTL_MODE_MAP_DUMB");
    pixels = mmap(NULL, dumb.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map.offset);
    if (pixels == MAP_FAILED)
        die("mmap");
    for (row = 0; row < SIZE; row++)
        for (col = 0; col < SIZE; col++)
            pixels[row * (dumb.pitch / 4) + col] = atp_cursor_pixel(col, row);
    munmap(pixels, dumb.size);

    memset(&cursor, 0, sizeof cursor);
    cursor.flags = CURSOR_BO | CURSOR_MOVE;
    cursor.crtc_id = active_crtc(fd);
    cursor.handle = dumb.handle;
    cursor.width = SIZE;
    cursor.height = SIZE;
    cursor.hot_x = hx;
    cursor.hot_y = hy;
    /* DRM places the shape's top left corner; qxl adds the hot spot for Spice */
    cursor.x = x - hx;
    cursor.y = y - hy;
    if (ioctl(fd, IOCTL_CURSOR2, &cursor))
        die("DRM_IOCTL_MODE_CURSOR2");
    save_hotspot(hx, hy);
    close(fd);
    return 0;
}

static int move(int x, int y)
{
    struct mode_cursor2 cursor;
    int hx, hy, fd;

    load_hotspot(&hx, &hy);
    fd = open_card();
    memset(&cursor, 0, sizeof cursor);
    cursor.flags = CURSOR_MOVE;
    cursor.crtc_id = active_crtc(fd);
    cursor.x = x - hx;
    cursor.y = y - hy;
    if (ioctl(fd, IOCTL_CURSOR2, &cursor))
        die("DRM_IOCTL_MODE_CURSOR2 (move)");
    close(fd);
    return 0;
}

static int hide(void)
{
    struct mode_cursor2 cursor;
    int fd = open_card();

    memset(&cursor, 0, sizeof cursor);
    cursor.flags = CURSOR_BO; /* handle 0: no shape */
    cursor.crtc_id = active_crtc(fd);
    if (ioctl(fd, IOCTL_CURSOR2, &cursor))
        die("DRM_IOCTL_MODE_CURSOR2 (hide)");
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "hold") == 0)
        return hold();
    if (argc == 6 && strcmp(argv[1], "set") == 0)
        return set(number(argv[2]), number(argv[3]), number(argv[4]), number(argv[5]));
    if (argc == 4 && strcmp(argv[1], "move") == 0)
        return move(number(argv[2]), number(argv[3]));
    if (argc == 2 && strcmp(argv[1], "hide") == 0)
        return hide();
    usage();
    return 2;
}
