/* Preloaded into spice-webdavd in the lab guest (LD_PRELOAD).
 *
 * Debian's spice-webdavd announces its port over mDNS at start and exits when that fails:
 * its call to libavahi-gobject's ga_client_start() needs a D-Bus system bus with
 * avahi-daemon on it ("Failed to create avahi client: Daemon not running", exit 1).
 * The lab guest has neither, and nothing there browses mDNS: the test client knows the
 * port. This ga_client_start() reports success without connecting; the client object then
 * never changes state, so nothing is ever announced, and the daemon serves as usual.
 */

typedef struct _GaClient GaClient;
typedef struct _GError GError;

int ga_client_start(GaClient *client, GError **error);

int ga_client_start(GaClient *client, GError **error)
{
    (void)client;
    (void)error;
    return 1; /* TRUE */
}
