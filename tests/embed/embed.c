/*
 * A program that embeds tollgate through its public API alone (<tollgate.h>, linked
 * against libtollgate.so), and checks what it promises: a gateway made from JSON text
 * serves a catalog query on a loopback port, its log comes through the program's
 * handler, a bad reload is refused with its reasons and changes nothing, a good one
 * (the catalog file rewritten) serves the new query, and a stop from another thread
 * ends it with every one of its threads gone.
 *
 * Usage: TG_PRIMARY_DSN=... embed     (tests/run.sh runs it; exit 0 when every check passed)
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <tollgate.h>

static int failures;

static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "embed: %s: ", ok ? "ok" : "FAILED");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (!ok)
        ++failures;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "embed: FAILED: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* --- the log, through the program's handler --- */

static _Atomic int log_lines, log_serving;

static void on_log(int level, const char *message, void *data)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    atomic_fetch_add(&log_lines, 1);
    if (strncmp(message, "serving ", 8) == 0)
        atomic_store(&log_serving, 1);
    fprintf(stderr, "%s[%s] %s\n", (const char *)data, level >= 0 && level <= 3 ? names[level] : "?", message);
}

/* --- a loopback port, files, and a one-shot HTTP/1.0 client --- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("no free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

/* GET `path` on 127.0.0.1:port (HTTP/1.0: the answer ends with the connection); the status, the body in *body (malloc'd) */
static int http_get(int port, const char *path, char **body)
{
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0)
        if ((len += (size_t)r) + 1 == cap)
            buf = realloc(buf, cap *= 2);
    close(fd);
    buf[len] = '\0';
    int status = -1;
    char *start = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || start == NULL) {
        free(buf);
        return -1;
    }
    *body = strdup(start + 4);
    free(buf);
    return status;
}

/* GET `path` until it answers 200 (the pool connects after the start) or `seconds` pass; the last status */
static int wait_200(int port, const char *path, double seconds, char **body)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int status = http_get(port, path, body);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (status == 200 || (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
            return status;
        free(*body);
        usleep(100 * 1000);
    }
}

/* the threads of this process */
static int threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

static void *stop_from_another_thread(void *gw)
{
    tg_gateway_stop(gw);
    return NULL;
}

/* --- the gateway --- */

static const char CATALOG_1[] =
    "{\"queries\": [\n"
    "  {\"name\": \"embed_user\", \"route\": \"GET /embed/users/{id}\",\n"
    "   \"sql\": \"SELECT id, email FROM users WHERE id = $1\",\n"
    "   \"params\": [{\"name\": \"id\", \"type\": \"int8\", \"min\": 1}], \"returns\": \"one\", \"access\": \"read\"}\n"
    "]}\n";

static const char CATALOG_2[] =
    "{\"queries\": [\n"
    "  {\"name\": \"embed_user\", \"route\": \"GET /embed/users/{id}\",\n"
    "   \"sql\": \"SELECT id, email FROM users WHERE id = $1\",\n"
    "   \"params\": [{\"name\": \"id\", \"type\": \"int8\", \"min\": 1}], \"returns\": \"one\", \"access\": \"read\"},\n"
    "  {\"name\": \"embed_count\", \"route\": \"GET /embed/count\", \"sql\": \"SELECT count(*) AS n FROM users\",\n"
    "   \"params\": [], \"returns\": \"one\", \"access\": \"read\"}\n"
    "]}\n";

/* A config on 127.0.0.1:port and admin_port with the primary alone and the catalog next to `name` (relative path). */
static char *config_json(int port, int admin_port, const char *primary)
{
    json_t *cfg = json_pack("{s:[{s:s,s:i}],s:{s:s,s:i},s:i,s:s,s:{s:i},s:i,s:{s:f,s:f},s:[s]}", "listen", "host", "127.0.0.1",
                            "port", port, "admin_listen", "host", "127.0.0.1", "port", admin_port, "threads", 2, "primary",
                            primary, "pool", "size", 4, "shutdown_grace_ms", 2000, "anonymous", "rate", 1e6, "burst", 1e6,
                            "catalog", "catalog.json");
    char *text = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    return text;
}

int main(void)
{
    const char *primary = getenv("TG_PRIMARY_DSN");
    if (primary == NULL || *primary == '\0')
        die("TG_PRIMARY_DSN is not set (tests/run.sh sets it; or eval \"$(tests/pg.sh start)\")");
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-answer is the gateway's to handle, not a reason to exit */
    int threads_before = threads();

    check(strcmp(tg_version(), TOLLGATE_VERSION) == 0, "tg_version() is %s, the header's %s", tg_version(), TOLLGATE_VERSION);
    tg_set_log_handler(on_log, "embed: log ");

    /* A config file that is not there: TG_ERR_CONFIG, the reason as text naming the file. */
    tg_gateway_t *gw = (tg_gateway_t *)1;
    char *err = NULL;
    int r = tg_gateway_create("/nonexistent/tollgate-embed.json", &gw, &err);
    check(r == TG_ERR_CONFIG && gw == NULL && err != NULL && strstr(err, "/nonexistent/tollgate-embed.json") != NULL,
          "a missing config file is TG_ERR_CONFIG (%d) naming it: %s", r, err != NULL ? err : "(no text)");
    free(err);

    char dir[] = "/tmp/tollgate-embed-XXXXXX", name[300], catalog[300];
    if (mkdtemp(dir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    snprintf(name, sizeof(name), "%s/embed.json", dir);
    snprintf(catalog, sizeof(catalog), "%s/catalog.json", dir);
    write_file(catalog, CATALOG_1);

    /* From JSON text; `name` anchors "catalog.json". A port taken between the probe and the bind: another. */
    int port = 0, admin_port = 0;
    char *text = NULL;
    for (int tries = 0; tries != 5; ++tries) {
        port = free_port(), admin_port = free_port();
        free(text);
        text = config_json(port, admin_port, primary);
        err = NULL;
        r = tg_gateway_create_json(text, name, &gw, &err);
        if (r != TG_ERR_START)
            break;
        fprintf(stderr, "embed: port taken (%s); again\n", err);
        free(err);
    }
    if (r != TG_OK)
        die("tg_gateway_create_json: %d: %s", r, err != NULL ? err : "(no text)");
    check(err == NULL, "no error text on success");
    tg_gateway_start(gw);
    check(atomic_load(&log_serving), "the log came through the handler (%d lines, \"serving ...\" among them)", atomic_load(&log_lines));

    /* One catalog call, answered by PostgreSQL. */
    char *body;
    int status = wait_200(port, "/embed/users/1", 15, &body);
    json_t *j = body != NULL ? json_loads(body, 0, NULL) : NULL;
    check(status == 200 && json_integer_value(json_object_get(j, "id")) == 1 && json_is_string(json_object_get(j, "email")),
          "GET /embed/users/1 is 200 with the user: %d %s", status, body != NULL ? body : "");
    json_decref(j);
    free(body);

    /* A reload with a bad config is refused with its reasons, and the old config goes on. */
    char *msg = NULL;
    r = tg_gateway_reload(gw, "{\"listen\": 5, \"primary\": \"x\"}", &msg);
    check(r == TG_ERR_CONFIG && msg != NULL && strstr(msg, "listen") != NULL, "a bad reload is TG_ERR_CONFIG (%d) naming the field: %s",
          r, msg != NULL ? msg : "(no text)");
    free(msg);
    status = http_get(port, "/embed/count", &body);
    check(status == 404, "the refused reload changed nothing: GET /embed/count is %d", status);
    free(body);

    /* The catalog file rewritten, the same text reloaded: the new query is served, the old one still is. */
    write_file(catalog, CATALOG_2);
    msg = NULL;
    r = tg_gateway_reload(gw, NULL, &msg);
    check(r == TG_OK, "tg_gateway_reload is TG_OK (%d)%s%s", r, msg != NULL ? ": " : "", msg != NULL ? msg : "");
    free(msg);
    status = wait_200(port, "/embed/count", 5, &body);
    j = body != NULL ? json_loads(body, 0, NULL) : NULL;
    check(status == 200 && json_integer_value(json_object_get(j, "n")) > 0, "after the reload GET /embed/count is 200: %d %s", status,
          body != NULL ? body : "");
    json_decref(j);
    free(body);
    status = http_get(port, "/embed/users/2", &body);
    check(status == 200, "and GET /embed/users/2 still is: %d", status);
    free(body);

    /* Stopped from another thread; freed here, which waits for it. */
    pthread_t t;
    pthread_create(&t, NULL, stop_from_another_thread, gw);
    pthread_join(t, NULL);
    tg_gateway_free(gw);
    tg_set_log_handler(NULL, NULL);
    check(threads() == threads_before, "every thread of the gateway is gone (%d now, %d before it)", threads(), threads_before);
    status = http_get(port, "/embed/users/1", &body);
    check(status == -1, "nothing listens on its port any more (%d)", status);
    free(body);

    free(text);
    unlink(catalog);
    rmdir(dir);
    fprintf(stderr, "embed: %s\n", failures == 0 ? "all checks passed" : "some checks FAILED");
    return failures == 0 ? 0 : 1;
}
