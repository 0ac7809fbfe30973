/*
 * tollgate's command line: parses argv and drives the library. Serving goes through
 * the public API (tollgate.h), as an embedding program's would; --check and
 * --hash-key use the config module itself.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tollgate.h"
#include "tollgate/check.h"
#include "internal.h"

enum { EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_START = 3 };

static const char usage[] = "usage:\n"
                            "  tollgate --config FILE            serve\n"
                            "  tollgate --config FILE --check    validate config and catalog, print every error\n"
                            "  tollgate --config FILE --check --db\n"
                            "                                    also prepare every statement on the primary\n"
                            "  tollgate --hash-key KEY           print the sha256:<hex> form of an API key\n"
                            "  tollgate --hash-key -             the same, the key read from stdin (one line)\n"
                            "  tollgate --version | --help | -h\n"
                            "\n"
                            "exit codes: 0 ok, 1 bad config or catalog, 2 bad usage, 3 could not bind or start\n";

static void *signal_thread(void *arg)
{
    tg_gateway_t *gw = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    int stopping = 0;
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            /* The same reload as POST /admin/reload: read and checked here, off the event loops; logged either way. */
            tg_log(TG_LOG_INFO, "SIGHUP: reloading the config");
            if (!stopping)
                (void)tg_gateway_reload(gw, NULL, NULL);
            continue;
        }
        if (sig == SIGUSR1) {
            /* logrotate moved the access log: a new file of that name, nothing lost between them */
            tg_gateway_reopen_logs(gw);
            continue;
        }
        if (stopping) {
            /* A second signal while finishing: the operator wants out now. */
            tg_log(TG_LOG_WARN, "%s again: exiting without waiting", sig == SIGINT ? "SIGINT" : "SIGTERM");
            _exit(1);
        }
        stopping = 1;
        tg_log(TG_LOG_INFO, "%s: finishing in-flight requests, then exiting", sig == SIGINT ? "SIGINT" : "SIGTERM");
        tg_gateway_stop(gw);
    }
    return NULL;
}

/*
 * The key of `--hash-key -`: one line of stdin, its newline (and a CR before it)
 * stripped, so that keys need not appear in a command line or a shell's history.
 * Returns a malloc'd key and its length, or NULL after printing why.
 */
static char *read_key(size_t *len)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        line = NULL;
        n = 0;
    }
    size_t k = (size_t)n;
    if (k != 0 && line[k - 1] == '\n')
        --k;
    if (k != 0 && line[k - 1] == '\r')
        --k;
    if (k != (size_t)n && getc(stdin) != EOF) {
        fputs("tollgate: --hash-key -: stdin holds more than one line; give the key alone\n", stderr);
        free(line);
        return NULL;
    }
    *len = k;
    return line != NULL ? line : strdup("");
}

/* prints the sha256:<hex> form of the key (`-`: read from stdin); returns the exit code */
static int print_key_hash(const char *arg)
{
    size_t len = strlen(arg);
    char *key = strcmp(arg, "-") == 0 ? read_key(&len) : strdup(arg);
    if (key == NULL)
        return EXIT_USAGE;
    if (len == 0) {
        fprintf(stderr, "tollgate: --hash-key: the key is empty%s\n", strcmp(arg, "-") == 0 ? " (stdin held no key)" : "");
        free(key);
        return EXIT_USAGE;
    }
    char out[72];
    tg_hash_key(key, len, out);
    free(key);
    printf("%s\n", out);
    return EXIT_OK;
}

/* Prints a bad config's errors (one a line) and their count, as --check does. */
static void print_config_errors(const char *path, const char *const *msgs, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        fprintf(stderr, "%s\n", msgs[i]);
    fprintf(stderr, "%s: %zu error%s\n", path, n, n == 1 ? "" : "s");
}

/* --check [--db]: every error of the config and the catalog (and the primary's), and the warnings. */
static int check_config(const char *config_path, int check_db)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = tg_config_load(config_path, &errs);
    if (cfg == NULL) {
        print_config_errors(config_path, (const char *const *)errs.msgs, errs.n);
        tg_errors_dispose(&errs);
        return EXIT_CONFIG;
    }
    for (size_t i = 0; i != cfg->warnings.n; ++i)
        fprintf(stderr, "warning: %s\n", cfg->warnings.msgs[i]);
    if (check_db) {
        int bad = tg_check_db(cfg, &errs) != 0;
        for (size_t i = 0; i != errs.n && !bad; ++i)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        if (bad)
            print_config_errors(config_path, (const char *const *)errs.msgs, errs.n);
        tg_errors_dispose(&errs);
        if (bad) {
            tg_config_free(cfg);
            return EXIT_CONFIG;
        }
    }
    printf("%s: ok (%zu queries%s)\n", config_path, cfg->n_queries, check_db ? ", all prepared on the primary" : "");
    tg_config_free(cfg);
    return EXIT_OK;
}

/* A failed create's reasons (one a line in `error`): a bad config as --check prints it, else "tollgate: " each. */
static void print_create_error(const char *config_path, int status, const char *error)
{
    size_t n = 0;
    for (const char *l = error; l != NULL && *l != '\0'; ++n) {
        const char *end = strchr(l, '\n');
        int len = end != NULL ? (int)(end - l) : (int)strlen(l);
        fprintf(stderr, "%s%.*s\n", status == TG_ERR_CONFIG ? "" : "tollgate: ", len, l);
        l = end != NULL ? end + 1 : NULL;
    }
    if (status == TG_ERR_CONFIG)
        fprintf(stderr, "%s: %zu error%s\n", config_path, n, n == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
                                             {"db", no_argument, NULL, 'd'},
                                             {"hash-key", required_argument, NULL, 'H'}, {"version", no_argument, NULL, 'v'},
                                             {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *hash_key = NULL;
    int check = 0, check_db = 0, opt;
    const char *lvl = getenv("TOLLGATE_LOG");
    if (lvl != NULL && strcmp(lvl, "debug") == 0)
        tg_set_log_level(TG_LOG_DEBUG);

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'd':
            check_db = 1;
            break;
        case 'H':
            hash_key = optarg;
            break;
        case 'v':
            printf("tollgate %s\n", tg_version());
            return EXIT_OK;
        case 'h':
            fputs(usage, stdout);
            return EXIT_OK;
        default:
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "tollgate: unexpected argument: %s\n%s", argv[optind], usage);
        return EXIT_USAGE;
    }
    if (hash_key != NULL) {
        if (config_path != NULL || check) {
            fprintf(stderr, "tollgate: --hash-key goes alone\n%s", usage);
            return EXIT_USAGE;
        }
        return print_key_hash(hash_key);
    }
    if (check_db && !check) {
        fprintf(stderr, "tollgate: --db goes with --check\n%s", usage);
        return EXIT_USAGE;
    }
    if (config_path == NULL) {
        fprintf(stderr, "tollgate: --config is required\n%s", usage);
        return EXIT_USAGE;
    }

    if (check)
        return check_config(config_path, check_db);

    /* Signals go to one thread that waits for them; every other thread blocks them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    tg_gateway_t *gw;
    char *error = NULL;
    int status = tg_gateway_create(config_path, &gw, &error);
    if (status != TG_OK) {
        print_create_error(config_path, status, error);
        free(error);
        return status == TG_ERR_CONFIG ? EXIT_CONFIG : EXIT_START;
    }
    pthread_t sig_tid;
    pthread_create(&sig_tid, NULL, signal_thread, gw);
    pthread_detach(sig_tid);
    int r = tg_gateway_run(gw);
    tg_log(TG_LOG_INFO, "stopped");
    return r == 0 ? EXIT_OK : EXIT_START;
}
