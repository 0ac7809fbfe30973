/* Error bodies: problem+json (RFC 9457) documents and the reason phrases of the statuses we send. */
#include <string.h>
#include "tollgate/problem.h"

#define TYPE_PREFIX "urn:tollgate:problem:"

const char *tg_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static void append_member(tg_buf_t *out, const char *key, const char *value)
{
    tg_buf_appends(out, key);
    tg_buf_append_json_string(out, value, strlen(value));
}

void tg_problem_format(tg_buf_t *out, const tg_problem_t *p)
{
    if (p->type != NULL) {
        /* "urn:tollgate:problem:<slug>" with the slug escaped: escape it, then slide the prefix in after the quote */
        tg_buf_appends(out, "{\"type\":");
        size_t at = out->len, plen = sizeof(TYPE_PREFIX) - 1;
        tg_buf_append_json_string(out, p->type, strlen(p->type));
        tg_buf_reserve(out, plen);
        memmove(out->base + at + 1 + plen, out->base + at + 1, out->len - at); /* includes the NUL */
        memcpy(out->base + at + 1, TYPE_PREFIX, plen);
        out->len += plen;
    } else {
        tg_buf_appends(out, "{\"type\":\"about:blank\"");
    }
    append_member(out, ",\"title\":", p->title != NULL ? p->title : tg_status_reason(p->status));
    tg_buf_printf(out, ",\"status\":%d", p->status);
    if (p->detail != NULL)
        append_member(out, ",\"detail\":", p->detail);
    if (p->sqlstate != NULL)
        append_member(out, ",\"sqlstate\":", p->sqlstate);
    if (p->errors != NULL && p->n_errors != 0) {
        tg_buf_appends(out, ",\"errors\":[");
        for (size_t i = 0; i < p->n_errors; ++i) {
            append_member(out, i == 0 ? "{\"name\":" : ",{\"name\":", p->errors[i].name != NULL ? p->errors[i].name : "");
            append_member(out, ",\"reason\":", p->errors[i].reason != NULL ? p->errors[i].reason : "");
            tg_buf_appendc(out, '}');
        }
        tg_buf_appendc(out, ']');
        if (p->n_errors_total > p->n_errors)
            tg_buf_printf(out, ",\"error_count\":%zu", p->n_errors_total);
    }
    tg_buf_appendc(out, '}');
}
