/*
 * faultproxy: a loopback TCP proxy for the test suite and the fault bench, standing
 * between the gateway and one PostgreSQL server, that can be told to misbehave.
 *
 *     faultproxy LISTEN_PORT TARGET_PORT CONTROL_PORT
 *
 * It listens on 127.0.0.1:LISTEN_PORT and forwards each connection to
 * 127.0.0.1:TARGET_PORT. A connection to 127.0.0.1:CONTROL_PORT sends one command
 * line and reads "ok\n" (or "error: ...\n") back:
 *
 *     pass        forward everything (the start); held data flows again
 *     blackhole   a network that drops every packet: nothing is read or forwarded
 *                 either way; new connections wait in the listen backlog (the kernel
 *                 completes their handshakes) and are taken when it passes again;
 *                 then what was held is delivered, as TCP would retransmit
 *     delay MS    every byte is forwarded MS milliseconds after it arrived
 *     cut         every open connection is reset (RST), both sides; new ones pass
 *     reject      new connections are reset at once; open ones go on
 *     count       answers "ok N": connections accepted so far
 *
 * A target that refuses connections (its server stopped) makes the proxy refuse too:
 * it stops listening, as a dead host's port would, until the target takes a
 * connection again (tried every 100 ms). A client such as libpq with a multi-host
 * string then moves on to its next host instead of seeing a session reset.
 *
 * One thread, poll(2), bounded buffers (a direction stops reading past 1 MiB held).
 * Loopback only; it exits when its parent (the test) dies.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 1024
#define MAX_HELD (1 << 20)
#define CHUNK 16384

enum mode { PASS, BLACKHOLE };

/* bytes read from one side, waiting to be written to the other, each chunk with the time it may go */
typedef struct chunk {
    struct chunk *next;
    uint64_t due_ms;
    size_t len, off;
    char data[];
} chunk_t;

typedef struct {
    int from, to;
    chunk_t *head, *tail;
    size_t held;
    int eof; /* `from` said EOF: shut `to` down for writing once everything held went */
} dir_t;

typedef struct {
    int used;
    int connecting; /* the upstream connect is in progress */
    dir_t d[2];     /* [0] client to server, [1] server to client */
} pair_t;

static pair_t pairs[MAX_PAIRS];
static enum mode mode = PASS;
static int delay_ms, rejecting;
static uint64_t accept_paused_until; /* out of descriptors: stop accepting for a while instead of spinning */
static unsigned long accepted;
static int target_port;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* a listening socket on 127.0.0.1:port, or -1 */
static int try_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 512) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_on(int port)
{
    int fd = try_listen(port);
    if (fd < 0) {
        fprintf(stderr, "faultproxy: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        exit(1);
    }
    return fd;
}

/* Does the target take a connection now? (within 100 ms: on loopback a refusal is immediate) */
static int target_up(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), err = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (!ok && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        socklen_t len = sizeof(err);
        ok = poll(&p, 1, 100) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    close(fd);
    return ok;
}

/* closes with a reset, as a cut network or a crashed host does */
static void reset_close(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

static void free_chunks(dir_t *d)
{
    while (d->head != NULL) {
        chunk_t *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->held = 0;
}

static void close_pair(pair_t *p, int reset)
{
    int a = p->d[0].from, b = p->d[0].to;
    if (reset) {
        reset_close(a);
        reset_close(b);
    } else {
        close(a);
        close(b);
    }
    free_chunks(&p->d[0]);
    free_chunks(&p->d[1]);
    memset(p, 0, sizeof(*p));
}

static void on_accept(int lfd)
{
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE)
                accept_paused_until = now_ms() + 100;
            return;
        }
        ++accepted;
        if (rejecting) {
            reset_close(c);
            continue;
        }
        pair_t *p = NULL;
        for (int i = 0; i != MAX_PAIRS && p == NULL; ++i)
            if (!pairs[i].used)
                p = &pairs[i];
        int s = p != NULL ? socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) : -1;
        if (s < 0) {
            reset_close(c);
            continue;
        }
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
            reset_close(c);
            close(s);
            continue;
        }
        *p = (pair_t){.used = 1, .connecting = 1, .d = {{.from = c, .to = s}, {.from = s, .to = c}}};
    }
}

/* reads what `from` has into the direction's queue; returns -1 when the pair must go */
static int pump_in(dir_t *d)
{
    while (d->held < MAX_HELD && !d->eof) {
        chunk_t *c = malloc(sizeof(*c) + CHUNK);
        ssize_t n = read(d->from, c->data, CHUNK);
        if (n <= 0) {
            free(c);
            if (n == 0) {
                d->eof = 1;
                return 0;
            }
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        c->next = NULL;
        c->len = (size_t)n;
        c->off = 0;
        c->due_ms = now_ms() + (uint64_t)delay_ms;
        if (d->tail != NULL)
            d->tail->next = c;
        else
            d->head = c;
        d->tail = c;
        d->held += (size_t)n;
    }
    return 0;
}

/* writes what is due; returns -1 when the pair must go */
static int pump_out(dir_t *d, uint64_t now)
{
    while (d->head != NULL && d->head->due_ms <= now) {
        chunk_t *c = d->head;
        ssize_t n = write(d->to, c->data + c->off, c->len - c->off);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->off += (size_t)n;
        d->held -= (size_t)n;
        if (c->off < c->len)
            return 0;
        d->head = c->next;
        if (d->head == NULL)
            d->tail = NULL;
        free(c);
    }
    if (d->head == NULL && d->eof == 1) {
        shutdown(d->to, SHUT_WR);
        d->eof = 2;
    }
    return 0;
}

static void control(int cfd)
{
    char line[128] = "";
    ssize_t n = 0;
    /* a test writes one short line: read it whole, blocking, within a second */
    struct timeval tv = {.tv_sec = 1};
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (n < (ssize_t)sizeof(line) - 1 && memchr(line, '\n', (size_t)n) == NULL) {
        ssize_t r = read(cfd, line + n, sizeof(line) - 1 - (size_t)n);
        if (r <= 0)
            break;
        n += r;
    }
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    char reply[64] = "ok\n";
    if (strcmp(line, "pass") == 0) {
        mode = PASS, delay_ms = 0, rejecting = 0;
    } else if (strcmp(line, "blackhole") == 0) {
        mode = BLACKHOLE;
    } else if (strncmp(line, "delay ", 6) == 0 && atoi(line + 6) >= 0) {
        mode = PASS, delay_ms = atoi(line + 6);
    } else if (strcmp(line, "cut") == 0) {
        for (int i = 0; i != MAX_PAIRS; ++i)
            if (pairs[i].used)
                close_pair(&pairs[i], 1);
    } else if (strcmp(line, "reject") == 0) {
        rejecting = 1;
    } else if (strcmp(line, "count") == 0) {
        snprintf(reply, sizeof(reply), "ok %lu\n", accepted);
    } else {
        snprintf(reply, sizeof(reply), "error: unknown command\n");
    }
    (void)!write(cfd, reply, strlen(reply));
    close(cfd);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: faultproxy LISTEN_PORT TARGET_PORT CONTROL_PORT\n");
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    /* two descriptors a pair: take what the hard limit allows */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    target_port = atoi(argv[2]);
    int listen_port = atoi(argv[1]);
    int lfd = listen_on(listen_port), cfd = listen_on(atoi(argv[3]));
    uint64_t next_target_try = 0; /* while the target refuses (lfd closed): when to try it again */
    static struct pollfd fds[2 + 2 * MAX_PAIRS];
    static int owner[2 + 2 * MAX_PAIRS];
    for (;;) {
        uint64_t now = now_ms(), next_due = UINT64_MAX;
        int n = 0;
        fds[n++] = (struct pollfd){.fd = cfd, .events = POLLIN};
        /* while blackholed, new connections are taken (a silent network still completes nothing): leave them in the backlog */
        if (lfd < 0 && now >= next_target_try) {
            if (target_up() && (lfd = try_listen(listen_port)) < 0)
                fprintf(stderr, "faultproxy: cannot listen on 127.0.0.1:%d again: %s (trying again)\n", listen_port, strerror(errno));
            next_target_try = now + 100;
        }
        fds[n++] = (struct pollfd){.fd = lfd, .events = mode == BLACKHOLE || now < accept_paused_until ? 0 : POLLIN};
        /* while blackholed nothing is read, written or even looked at (a reset is noticed once it passes again) */
        for (int i = 0; i != MAX_PAIRS && mode == PASS; ++i) {
            pair_t *p = &pairs[i];
            if (!p->used)
                continue;
            for (int k = 0; k != 2; ++k) {
                short ev = 0;
                dir_t *d = &p->d[k];
                if (p->connecting) {
                    if (k == 0)
                        ev = POLLOUT; /* the upstream socket (d[1].from) is d[0].to */
                } else {
                    if (d->held < MAX_HELD && !d->eof)
                        ev |= POLLIN;
                    if (d->head != NULL && d->head->due_ms > now && d->head->due_ms < next_due)
                        next_due = d->head->due_ms;
                }
                /*
                 * One slot per direction, for reading `from` (none once it said EOF: poll
                 * would report its hangup forever); writes to `to` are retried each round.
                 */
                int fd = p->connecting && k == 0 ? d->to : d->eof && !p->connecting ? -1 : d->from;
                fds[n] = (struct pollfd){.fd = fd, .events = ev};
                owner[n++] = i * 2 + k;
            }
        }
        int timeout = next_due == UINT64_MAX ? 100 : (int)(next_due - now);
        if (timeout > 100)
            timeout = 100;
        for (int i = 0; i != MAX_PAIRS; ++i)
            if (pairs[i].used && mode == PASS)
                for (int k = 0; k != 2; ++k)
                    if (pairs[i].d[k].head != NULL)
                        timeout = timeout > 5 ? 5 : timeout; /* data waiting for a full socket: try again soon */
        if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR)
            return 1;
        now = now_ms();
        for (int j = 2; j < n; ++j) {
            pair_t *p = &pairs[owner[j] / 2];
            int k = owner[j] % 2;
            if (!p->used)
                continue;
            if (p->connecting) {
                if (k == 0 && (fds[j].revents & (POLLOUT | POLLERR | POLLHUP))) {
                    int err = 0;
                    socklen_t len = sizeof(err);
                    getsockopt(p->d[0].to, SOL_SOCKET, SO_ERROR, &err, &len);
                    if (err != 0) {
                        close_pair(p, 1); /* the server refused: so does the proxy, from now on */
                        if (err == ECONNREFUSED && lfd >= 0) {
                            close(lfd);
                            lfd = -1;
                            next_target_try = now + 100;
                        }
                    } else
                        p->connecting = 0;
                }
                continue;
            }
            if (mode != PASS)
                continue;
            dir_t *d = &p->d[k];
            /* a reset: nothing more can pass */
            if (fds[j].revents & POLLERR) {
                close_pair(p, 1);
                continue;
            }
            if ((fds[j].revents & (POLLIN | POLLHUP)) && pump_in(d) != 0) {
                close_pair(p, 1);
                continue;
            }
            if (pump_out(d, now) != 0) {
                close_pair(p, 1);
                continue;
            }
            if (p->d[0].eof == 2 && p->d[1].eof == 2)
                close_pair(p, 0);
        }
        /* chunks that came due with no read event */
        if (mode == PASS)
            for (int i = 0; i != MAX_PAIRS; ++i)
                for (int k = 0; k != 2 && pairs[i].used && !pairs[i].connecting; ++k)
                    if (pump_out(&pairs[i].d[k], now) != 0)
                        close_pair(&pairs[i], 1);
        /* only now, once no slot of this round can be read: a command (cut) or an accept may free and reuse pairs */
        if (fds[0].revents & POLLIN) {
            int c = accept(cfd, NULL, NULL);
            if (c >= 0)
                control(c);
        }
        if (lfd >= 0 && (fds[1].revents & POLLIN))
            on_accept(lfd);
    }
}
