/*
 * An abusive client, for tests/integration/abuse.c and bench/abuse.sh: opens CONNS
 * connections to HOST:PORT and misbehaves on each for at most SECONDS, then prints one
 * line of what happened:
 *
 *   mode=M conns=N opened=N refused=N closed=N goaway=N goaway_code=C frames=N requests=N answers=N resets=N aborted=N
 *
 * (refused: could not connect; closed: the server closed the connection; goaway:
 * GOAWAY frames received, goaway_code the last one's error code; frames: frames sent;
 * answers: HTTP/2 HEADERS frames, or HTTP/1.1 status lines, received; resets: RST_STREAM
 * frames received; aborted: connections the server reset, ECONNRESET or EPIPE, instead of
 * ending them with a FIN.)
 *
 *   abuse_client MODE HOST PORT CONNS SECONDS [PATH] [HEADER]
 *
 * MODE is one of
 *   rapid-reset   HTTP/2: HEADERS for PATH then RST_STREAM, as fast as it can
 *   reset-late    HTTP/2: HEADERS for PATH, and its RST_STREAM 5 ms later, one after another
 *   h1-then-reset HTTP/1.1 GET of PATH, then in the same write the HTTP/2 preface and 500
 *                 HEADERS + RST_STREAM pairs (h2o takes the connection over to HTTP/2
 *                 and would parse them itself)
 *   h2c-then-reset the same behind an HTTP/1.1 GET asking to upgrade (Upgrade: h2c),
 *                 sent before the 101 (the upgrade's stream is 1, so the pairs start at 3)
 *   ping-flood    HTTP/2: PING frames, never reading the acks
 *   settings-flood HTTP/2: SETTINGS frames
 *   empty-data    HTTP/2: a request with a body that never comes, and empty DATA frames
 *   streams       HTTP/2: opens 300 streams (the server advertises 100), bodies never sent
 *   big-headers   HTTP/2: a header block of 512 KB in CONTINUATION frames
 *   slow-body     HTTP/2: a request with a body, one byte every 2 s
 *   h2-idle       HTTP/2: the preface and SETTINGS, then nothing
 *   slow-headers  HTTP/1.1: a request's headers one byte a second
 *   idle          HTTP/1.1: connects and sends nothing
 *   no-read       HTTP/1.1: pipelines requests for PATH and never reads an answer
 *
 * HEADER is one "name: value" added to every request (an API key). With ABUSE_RECONNECT=1
 * in the environment, a connection the server closes is opened again (a persistent
 * attacker), and "closed" counts every close.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int open;
    uint32_t next_stream;
    uint64_t next_at_ms;
    size_t sent;            /* bytes of a slow send already out */
    uint8_t in[16384 + 9];  /* HTTP/2: a frame being read */
    size_t in_len;
    int reset;              /* a send failed with ECONNRESET or EPIPE: the server reset it */
} conn_t;

static const char *mode, *path = "/healthz", *header;
static unsigned long frames, requests, answers, resets, goaways, closed, refused, opened, aborted;
static unsigned goaway_code;
static int reads; /* this mode reads what the server sends */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t frame(uint8_t *p, size_t len, uint8_t type, uint8_t flags, uint32_t id)
{
    p[0] = (uint8_t)(len >> 16), p[1] = (uint8_t)(len >> 8), p[2] = (uint8_t)len;
    p[3] = type, p[4] = flags;
    p[5] = (uint8_t)(id >> 24) & 0x7f, p[6] = (uint8_t)(id >> 16), p[7] = (uint8_t)(id >> 8), p[8] = (uint8_t)id;
    ++frames;
    return 9;
}

/* HPACK: a literal without indexing, its name from the static table (index 1 to 61) or given (0). */
static size_t literal(uint8_t *p, unsigned index, const char *name, const char *value)
{
    size_t n = 0, vl = strlen(value);
    if (index < 15) {
        p[n++] = (uint8_t)index;
    } else {
        p[n++] = 15; /* a 4-bit prefix, then the rest */
        p[n++] = (uint8_t)(index - 15);
    }
    if (index == 0) {
        size_t nl = strlen(name);
        p[n++] = (uint8_t)nl;
        memcpy(p + n, name, nl), n += nl;
    }
    if (vl < 127) {
        p[n++] = (uint8_t)vl;
    } else {
        p[n++] = 127;
        size_t rest = vl - 127;
        while (rest >= 128)
            p[n++] = (uint8_t)(rest | 0x80), rest >>= 7;
        p[n++] = (uint8_t)rest;
    }
    memcpy(p + n, value, vl);
    return n + vl;
}

/* A request's header block: GET or POST PATH, and HEADER. */
static size_t header_block(uint8_t *p, int post)
{
    size_t n = 0;
    p[n++] = post ? 0x83 : 0x82; /* :method */
    p[n++] = 0x86;               /* :scheme http */
    n += literal(p + n, 4, NULL, path);
    n += literal(p + n, 1, NULL, "localhost");
    if (header != NULL) {
        char name[128];
        const char *colon = strchr(header, ':');
        if (colon != NULL && (size_t)(colon - header) < sizeof(name)) {
            size_t nl = (size_t)(colon - header);
            for (size_t i = 0; i != nl; ++i)
                name[i] = (char)(header[i] >= 'A' && header[i] <= 'Z' ? header[i] + 32 : header[i]);
            name[nl] = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                ++v;
            n += literal(p + n, 0, name, v);
        }
    }
    if (post)
        n += literal(p + n, 31, NULL, "application/json"); /* content-type */
    return n;
}

static int send_all(conn_t *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len != 0) {
        ssize_t r = send(c->fd, p, len, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0; /* the server does not read: what did not fit is dropped, the flood goes on */
            return -1;
        }
        p += r, len -= (size_t)r;
    }
    return 0;
}

/* by_server: 0 the client closes, 1 the server ended the connection, 2 it reset it */
static void close_conn(conn_t *c, int by_server)
{
    if (!c->open)
        return;
    if (by_server == 2 || (by_server && c->reset))
        ++aborted;
    c->open = 0;
    close(c->fd);
    if (by_server)
        ++closed;
}

static int is_h2(void)
{
    return strcmp(mode, "slow-headers") != 0 && strcmp(mode, "idle") != 0 && strcmp(mode, "no-read") != 0 &&
           strcmp(mode, "h1-then-reset") != 0 && strcmp(mode, "h2c-then-reset") != 0;
}

static int connect_to(const struct addrinfo *ai, conn_t *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        ++refused;
        return -1;
    }
    int on = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (strcmp(mode, "no-read") == 0 || strcmp(mode, "ping-flood") == 0) {
        int small = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->open = 1;
    c->next_stream = 1;
    ++opened;
    if (is_h2()) {
        uint8_t p[64];
        size_t n = 0;
        memcpy(p, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), n = 24;
        n += frame(p + n, 0, 4, 0, 0); /* SETTINGS, none */
        if (send_all(c, p, n) != 0)
            close_conn(c, 1);
    }
    return 0;
}

/* Reads what the server sent (when this mode reads): counts answers, GOAWAYs, and the close. */
static void drain(conn_t *c)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            close_conn(c, r < 0 && errno == ECONNRESET ? 2 : 1);
            return;
        }
        if (r < 0)
            return;
        if (!is_h2()) {
            for (ssize_t i = 0; i + 8 < r; ++i)
                if (memcmp(buf + i, "HTTP/1.1 ", 9) == 0)
                    ++answers;
            continue;
        }
        /* Walk the frames (types only). */
        for (ssize_t i = 0; i != r;) {
            size_t want = c->in_len < 9 ? 9 - c->in_len : 9 + (((size_t)c->in[0] << 16) | ((size_t)c->in[1] << 8) | c->in[2]) - c->in_len;
            size_t take = (size_t)(r - i) < want ? (size_t)(r - i) : want;
            if (c->in_len + take > sizeof(c->in)) {
                c->in_len = 0; /* a frame larger than we keep: skip its bytes */
                i += take;
                continue;
            }
            memcpy(c->in + c->in_len, buf + i, take);
            c->in_len += take, i += (ssize_t)take;
            size_t plen = ((size_t)c->in[0] << 16) | ((size_t)c->in[1] << 8) | c->in[2];
            if (c->in_len >= 9 && c->in_len == 9 + plen) {
                if (c->in[3] == 1)
                    ++answers;
                if (c->in[3] == 3)
                    ++resets;
                if (c->in[3] == 7 && plen >= 8) {
                    ++goaways;
                    goaway_code = ((unsigned)c->in[13] << 24) | ((unsigned)c->in[14] << 16) | ((unsigned)c->in[15] << 8) | c->in[16];
                }
                c->in_len = 0;
            }
        }
    }
}

/* One round of this mode's abuse on a connection. */
static void act(conn_t *c, uint64_t now)
{
    static uint8_t p[600000];
    size_t n = 0;
    if (now < c->next_at_ms)
        return;
    if (strcmp(mode, "rapid-reset") == 0) {
        for (int i = 0; i != 50 && n + 600 < sizeof(p); ++i) {
            size_t at = n;
            n += 9;
            size_t hl = header_block(p + n, 0);
            frame(p + at, hl, 1, 0x5, c->next_stream); /* END_STREAM | END_HEADERS */
            n += hl;
            n += frame(p + n, 4, 3, 0, c->next_stream);
            p[n++] = 0, p[n++] = 0, p[n++] = 0, p[n++] = 8; /* CANCEL */
            c->next_stream += 2;
            ++requests;
        }
    } else if (strcmp(mode, "h1-then-reset") == 0 || strcmp(mode, "h2c-then-reset") == 0) {
        if (c->next_stream != 1) {
            c->next_at_ms = UINT64_MAX;
            return;
        }
        if (mode[1] == '1') {
            n = (size_t)snprintf((char *)p, 512, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
        } else {
            n = (size_t)snprintf((char *)p, 512,
                                 "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                                 "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
                                 path);
            c->next_stream = 3;
        }
        memcpy(p + n, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), n += 24;
        n += frame(p + n, 0, 4, 0, 0);
        for (int i = 0; i != 500; ++i) {
            size_t at = n;
            n += 9;
            size_t hl = header_block(p + n, 0);
            frame(p + at, hl, 1, 0x5, c->next_stream);
            n += hl;
            n += frame(p + n, 4, 3, 0, c->next_stream);
            p[n++] = 0, p[n++] = 0, p[n++] = 0, p[n++] = 8;
            c->next_stream += 2;
            ++requests;
        }
    } else if (strcmp(mode, "reset-late") == 0) {
        /* a request, and its reset 5 ms later in a packet of its own: the call has started */
        if (c->sent == 0) {
            size_t hl = header_block(p + 9, 0);
            frame(p, hl, 1, 0x5, c->next_stream), n = 9 + hl;
            ++requests;
            c->sent = 1;
        } else {
            n = frame(p, 4, 3, 0, c->next_stream);
            p[n++] = 0, p[n++] = 0, p[n++] = 0, p[n++] = 8;
            c->next_stream += 2;
            c->sent = 0;
        }
        c->next_at_ms = now + 5;
    } else if (strcmp(mode, "ping-flood") == 0) {
        for (int i = 0; i != 200; ++i) {
            n += frame(p + n, 8, 6, 0, 0);
            memset(p + n, i, 8), n += 8;
        }
    } else if (strcmp(mode, "settings-flood") == 0) {
        for (int i = 0; i != 200; ++i)
            n += frame(p + n, 0, 4, 0, 0);
    } else if (strcmp(mode, "empty-data") == 0) {
        if (c->next_stream == 1) {
            size_t hl = header_block(p + 9, 1);
            frame(p, hl, 1, 0x4, 1), n = 9 + hl;
            c->next_stream = 3;
            ++requests;
        }
        for (int i = 0; i != 200; ++i)
            n += frame(p + n, 0, 0, 0, 1);
    } else if (strcmp(mode, "streams") == 0) {
        if (c->next_stream < 600) {
            for (int i = 0; i != 300; ++i) {
                size_t hl = header_block(p + n + 9, 1);
                frame(p + n, hl, 1, 0x4, c->next_stream); /* END_HEADERS: the body never comes */
                n += 9 + hl;
                c->next_stream += 2;
                ++requests;
            }
        }
        c->next_at_ms = now + 1000;
    } else if (strcmp(mode, "big-headers") == 0) {
        if (c->next_stream < 3) {
            size_t hl = header_block(p + 9, 0);
            frame(p, hl, 1, 0x1, 1), n = 9 + hl; /* END_STREAM, not END_HEADERS */
            char junk[4000];
            memset(junk, 'j', sizeof(junk) - 1), junk[sizeof(junk) - 1] = '\0';
            /* 128 CONTINUATION frames of 4 KB: a 512 KB header block, past h2o's 400 KB */
            for (int i = 0; i != 128; ++i) {
                size_t at = n;
                n += 9;
                size_t l = literal(p + n, 0, "x-junk", junk);
                frame(p + at, l, 9, i == 127 ? 0x4 : 0, 1);
                n += l;
            }
            c->next_stream = 3;
            ++requests;
        }
        c->next_at_ms = now + 1000;
    } else if (strcmp(mode, "slow-body") == 0) {
        if (c->next_stream == 1) {
            size_t hl = header_block(p + 9, 1);
            frame(p, hl, 1, 0x4, 1), n = 9 + hl;
            c->next_stream = 3;
            ++requests;
        }
        n += frame(p + n, 1, 0, 0, 1);
        p[n++] = ' ';
        c->next_at_ms = now + 2000;
    } else if (strcmp(mode, "h2-idle") == 0 || strcmp(mode, "idle") == 0) {
        c->next_at_ms = UINT64_MAX;
        return;
    } else if (strcmp(mode, "slow-headers") == 0) {
        char req[512];
        int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n%s%s%sX-Pad: 0123456789012345678901234567890123456789\r\n\r\n",
                           path, header != NULL ? header : "", header != NULL ? "\r\n" : "", "");
        if (c->sent < (size_t)len) {
            p[n++] = (uint8_t)req[c->sent++];
        }
        c->next_at_ms = now + 1000;
    } else if (strcmp(mode, "no-read") == 0) {
        char req[512];
        int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n%s%s\r\n", path, header != NULL ? header : "",
                           header != NULL ? "\r\n" : "");
        for (int i = 0; i != 20 && n + (size_t)len < sizeof(p); ++i)
            memcpy(p + n, req, (size_t)len), n += (size_t)len, ++requests;
        c->next_at_ms = now + 200;
    }
    if (n != 0 && send_all(c, p, n) != 0) {
        /* a reset seen here is not seen again by recv, which then reads what is left and the end */
        c->reset = errno == ECONNRESET || errno == EPIPE;
        /* the server closed: what it sent before (a GOAWAY) is still there to read, as a real client would */
        if (reads)
            drain(c);
        close_conn(c, 1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: abuse_client MODE HOST PORT CONNS SECONDS [PATH] [HEADER]\n");
        return 2;
    }
    mode = argv[1];
    int nconns = atoi(argv[4]), seconds = atoi(argv[5]);
    if (argc > 6)
        path = argv[6];
    if (argc > 7)
        header = argv[7];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(argv[2], argv[3], &hints, &ai) != 0) {
        fprintf(stderr, "abuse: cannot resolve %s:%s\n", argv[2], argv[3]);
        return 2;
    }
    conn_t *conns = calloc((size_t)nconns, sizeof(*conns));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i != nconns; ++i) {
        if (connect_to(ai, &conns[i]) != 0)
            continue;
        /* Modes that never read learn of the close from a hang-up only. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    reads = strcmp(mode, "no-read") != 0 && strcmp(mode, "ping-flood") != 0;
    const char *again = getenv("ABUSE_RECONNECT");
    int reconnect = again != NULL && strcmp(again, "1") == 0;
    uint64_t end = now_ms() + (uint64_t)seconds * 1000;
    for (uint64_t now = now_ms(); now < end; now = now_ms()) {
        int left = 0;
        for (int i = 0; i != nconns; ++i) {
            if (!conns[i].open && reconnect && connect_to(ai, &conns[i]) == 0) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &conns[i]};
                epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
            }
            if (conns[i].open)
                act(&conns[i], now), left += conns[i].open;
        }
        if (left == 0)
            break;
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 10);
        for (int i = 0; i < n; ++i) {
            conn_t *c = evs[i].data.ptr;
            if (!c->open)
                continue;
            if (reads)
                drain(c);
            else if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                close_conn(c, evs[i].events & EPOLLERR ? 2 : 1);
        }
    }
    printf("mode=%s conns=%d opened=%lu refused=%lu closed=%lu goaway=%lu goaway_code=%u frames=%lu requests=%lu answers=%lu resets=%lu "
           "aborted=%lu\n",
           mode, nconns, opened, refused, closed, goaways, goaway_code, frames, requests, answers, resets, aborted);
    for (int i = 0; i != nconns; ++i)
        close_conn(&conns[i], 0);
    freeaddrinfo(ai);
    free(conns);
    return 0;
}
