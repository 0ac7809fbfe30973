/*
 * The origins a config allows for cross-origin requests. An origin is compared
 * byte for byte: browsers send it serialized (lower-case scheme and host, the port
 * only when it is not the scheme's default), so the config must list it that way,
 * which tg_cors_check_origin enforces rather than letting an entry never match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/cors.h"
#include "internal.h"

static int host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
}

/* "[v6]" with hex digits, ':' and '.' inside; returns its length, or 0 */
static size_t v6_host(const char *s)
{
    if (s[0] != '[')
        return 0;
    size_t i = 1;
    while ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == ':' || s[i] == '.')
        ++i;
    return s[i] == ']' && i > 1 ? i + 1 : 0;
}

int tg_cors_check_origin(const char *s, char *why, size_t why_len)
{
    if (strcmp(s, "*") == 0)
        return 0;
    const char *host;
    if (strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        host = s + 7;
    else {
        snprintf(why, why_len, "\"%s\" is not an origin: it must be \"*\" or start with \"https://\" or \"http://\" (lower case)", s);
        return -1;
    }
    size_t n = v6_host(host);
    if (n == 0)
        while (host_char(host[n]))
            ++n;
    if (n == 0) {
        snprintf(why, why_len, "\"%s\" has no host", s);
        return -1;
    }
    for (size_t i = 0; i != n; ++i) {
        if (host[i] >= 'A' && host[i] <= 'Z') {
            snprintf(why, why_len, "\"%s\" must be lower case, as browsers send it in Origin", s);
            return -1;
        }
    }
    const char *p = host + n;
    if (*p == ':') {
        long port = 0;
        size_t digits = 0;
        while (p[1 + digits] >= '0' && p[1 + digits] <= '9' && digits < 6)
            port = port * 10 + (p[1 + digits++] - '0');
        if (digits == 0 || port < 1 || port > 65535 || (digits > 1 && p[1] == '0')) {
            snprintf(why, why_len, "\"%s\": the port must be 1 to 65535", s);
            return -1;
        }
        if (port == (host == s + 8 ? 443 : 80)) {
            /* browsers leave the scheme's own port out of Origin: this one would never match */
            snprintf(why, why_len, "\"%s\": browsers send the default port %ld never; write the origin without it", s, port);
            return -1;
        }
        p += 1 + digits;
    }
    if (*p == '\0')
        return 0;
    if (*p == '/' || *p == '?' || *p == '#')
        snprintf(why, why_len, "\"%s\": an origin has no path (not even a trailing '/')", s);
    else
        snprintf(why, why_len, "\"%s\" is not an origin: unexpected '%c'", s, *p);
    return -1;
}

int tg_cors_allows(const tg_cors_t *cors, const char *origin, size_t len)
{
    /* "null": an opaque origin (a sandboxed frame, a file: page), which "*" does not let in either */
    if (cors == NULL || len == 0 || (len == 4 && memcmp(origin, "null", 4) == 0))
        return 0;
    if (cors->any)
        return 1;
    for (size_t i = 0; i != cors->n_origins; ++i)
        if (strlen(cors->origins[i]) == len && memcmp(cors->origins[i], origin, len) == 0)
            return 1;
    return 0;
}

void tg_cors_free(tg_cors_t *cors)
{
    if (cors == NULL)
        return;
    for (size_t i = 0; i != cors->n_origins; ++i)
        free(cors->origins[i]);
    free(cors->origins);
    free(cors);
}
