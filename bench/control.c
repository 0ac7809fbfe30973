/*
 * The benchmark's control: the least a server can do to turn GET /users/{id} into a
 * PostgreSQL point read. One thread, one h2o event loop (HTTP/1.1 and h2c), one libpq
 * connection in pipeline mode with up to DEPTH calls in flight (the rest wait in a
 * FIFO), one prepared statement, each call with its own Sync, rows written as JSON with
 * every value a string. No limits, no routing, no pools, no observing: if tollgate is
 * slower than this, what it adds costs more than it should.
 *
 *   control PORT 'CONNINFO' [DEPTH]        (DEPTH: 128)
 *
 * Not part of the product: bench/read.sh builds and runs it beside the gateway.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <h2o.h>
#include <libpq-fe.h>

#define SQL "SELECT id, email, name, settings, created_at, active FROM users WHERE id = $1"

typedef struct st_call_t {
    struct st_call_t *next;
    h2o_req_t *req;      /* NULL once its client left */
    void **hook;         /* the request's pointer back here */
    char id[24];
} call_t;

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
static PGconn *pg;
static h2o_socket_t *pg_sock;
static call_t *sent_head, **sent_tail = &sent_head, *wait_head, **wait_tail = &wait_head;
static int in_flight, depth = 128;

static void die(const char *what)
{
    fprintf(stderr, "control: %s: %s\n", what, pg != NULL ? PQerrorMessage(pg) : "");
    exit(1);
}

static void append_json_string(h2o_buffer_t **b, const char *s, size_t n)
{
    h2o_buffer_reserve(b, n * 6 + 2);
    char *p = (*b)->bytes + (*b)->size;
    *p++ = '"';
    for (size_t i = 0; i != n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            p += sprintf(p, "\\u%04x", c);
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    (*b)->size = (size_t)(p - (*b)->bytes);
}

static void append(h2o_buffer_t **b, const char *s, size_t n)
{
    h2o_buffer_reserve(b, n);
    memcpy((*b)->bytes + (*b)->size, s, n);
    (*b)->size += n;
}

static void respond(call_t *call, PGresult *res)
{
    h2o_req_t *req = call->req;
    if (req == NULL)
        return;
    *call->hook = NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        req->res.status = PQresultStatus(res) == PGRES_TUPLES_OK ? 404 : 500;
        req->res.reason = "Error";
        h2o_send_inline(req, H2O_STRLIT("{}"));
        return;
    }
    h2o_buffer_t *b;
    h2o_buffer_init(&b, &h2o_socket_buffer_prototype);
    append(&b, "{", 1);
    for (int i = 0; i != PQnfields(res); ++i) {
        if (i != 0)
            append(&b, ",", 1);
        const char *name = PQfname(res, i);
        append_json_string(&b, name, strlen(name));
        append(&b, ":", 1);
        if (PQgetisnull(res, 0, i))
            append(&b, "null", 4);
        else
            append_json_string(&b, PQgetvalue(res, 0, i), (size_t)PQgetlength(res, 0, i));
    }
    append(&b, "}", 1);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    req->res.content_length = b->size;
    h2o_send_inline(req, b->bytes, b->size);
    h2o_buffer_dispose(&b);
}

static void pg_flush(void);

static void send_waiting(void)
{
    while (wait_head != NULL && in_flight < depth) {
        call_t *call = wait_head;
        if ((wait_head = call->next) == NULL)
            wait_tail = &wait_head;
        const char *values[1] = {call->id};
        if (!PQsendQueryPrepared(pg, "get_user", 1, values, NULL, NULL, 0) || !PQpipelineSync(pg))
            die("send");
        call->next = NULL;
        *sent_tail = call;
        sent_tail = &call->next;
        ++in_flight;
    }
    pg_flush();
}

static void on_pg_write(h2o_socket_t *sock, const char *err)
{
    pg_flush();
}

static void pg_flush(void)
{
    int r = PQflush(pg);
    if (r < 0)
        die("flush");
    if (r == 1 && !h2o_socket_is_writing(pg_sock))
        h2o_socket_notify_write(pg_sock, on_pg_write);
}

static void on_pg_read(h2o_socket_t *sock, const char *err)
{
    if (err != NULL || !PQconsumeInput(pg))
        die("read");
    while (sent_head != NULL && !PQisBusy(pg)) {
        PGresult *r = PQgetResult(pg);
        if (r == NULL)
            continue; /* the end of the statement's results */
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            call_t *call = sent_head;
            if ((sent_head = call->next) == NULL)
                sent_tail = &sent_head;
            --in_flight;
            free(call);
        } else {
            respond(sent_head, r);
        }
        PQclear(r);
    }
    send_waiting();
}

static void on_dispose(void *p)
{
    call_t *call = *(call_t **)p;
    if (call != NULL)
        call->req = NULL;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    static const char prefix[] = "/users/";
    size_t n = sizeof(prefix) - 1;
    if (req->path_normalized.len <= n || memcmp(req->path_normalized.base, prefix, n) != 0 ||
        req->path_normalized.len - n >= sizeof(((call_t *)0)->id))
        return -1;
    call_t *call = calloc(1, sizeof(*call));
    memcpy(call->id, req->path_normalized.base + n, req->path_normalized.len - n);
    call->req = req;
    call->hook = h2o_mem_alloc_shared(&req->pool, sizeof(*call->hook), on_dispose);
    *call->hook = call;
    *wait_tail = call;
    wait_tail = &call->next;
    send_waiting();
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;
    if (err == NULL && (sock = h2o_evloop_socket_accept(listener)) != NULL)
        h2o_accept(&accept_ctx, sock);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: control PORT CONNINFO [DEPTH]\n");
        return 2;
    }
    if (argc > 3)
        depth = atoi(argv[3]) > 0 ? atoi(argv[3]) : depth;
    signal(SIGPIPE, SIG_IGN);

    pg = PQconnectdb(argv[2]);
    if (PQstatus(pg) != CONNECTION_OK)
        die("connect");
    PGresult *r = PQprepare(pg, "get_user", SQL, 1, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("prepare");
    PQclear(r);
    if (PQsetnonblocking(pg, 1) != 0 || !PQenterPipelineMode(pg))
        die("pipeline mode");

    h2o_config_init(&config);
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;
    h2o_context_init(&ctx, h2o_evloop_create(), &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;

    pg_sock = h2o_evloop_socket_create(ctx.loop, dup(PQsocket(pg)), H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(pg_sock, on_pg_read);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001), .sin_port = htons((uint16_t)atoi(argv[1]))};
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, SOMAXCONN) != 0) {
        perror("control: listen");
        return 1;
    }
    h2o_socket_t *listener = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);
    fprintf(stderr, "control: listening on 127.0.0.1:%s, pipeline depth %d\n", argv[1], depth);
    while (h2o_evloop_run(ctx.loop, INT32_MAX) == 0)
        ;
    return 0;
}
