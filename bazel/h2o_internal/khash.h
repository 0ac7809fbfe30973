/*
 * The part of klib's khash.h that <h2o/http2_internal.h> needs, which Debian's h2o
 * headers include but do not ship: the table type of an int64-keyed map and a lookup
 * that reads a table built by libh2o-evloop's own khash (klib as bundled with h2o
 * 2.2.5: power-of-two buckets, two flag bits per bucket, quadratic probing, the int64
 * hash below). Lookups only: tollgate never changes h2o's tables.
 */
#ifndef tollgate__khash_compat_h
#define tollgate__khash_compat_h

#include <stdint.h>

typedef uint32_t khint32_t;
typedef uint64_t khint64_t;
typedef khint32_t khint_t;
typedef khint_t khiter_t;

#define kh_int64_hash_func(key) (khint32_t)((key) >> 33 ^ (key) ^ (key) << 11)
/* bucket i's flags: 2 = empty, 1 = deleted */
#define kh__isempty(flag, i) ((flag[(i) >> 4] >> (((i)&0xfU) << 1)) & 2)
#define kh__isdel(flag, i) ((flag[(i) >> 4] >> (((i)&0xfU) << 1)) & 1)
#define kh__iseither(flag, i) ((flag[(i) >> 4] >> (((i)&0xfU) << 1)) & 3)

#define KHASH_MAP_INIT_INT64(name, khval_t)                                                                                        \
    typedef struct kh_##name##_s {                                                                                                 \
        khint_t n_buckets, size, n_occupied, upper_bound;                                                                          \
        khint32_t *flags;                                                                                                          \
        khint64_t *keys;                                                                                                           \
        khval_t *vals;                                                                                                             \
    } kh_##name##_t;                                                                                                               \
    static inline khint_t kh_get_##name(const kh_##name##_t *h, khint64_t key)                                                     \
    {                                                                                                                              \
        if (h->n_buckets == 0)                                                                                                     \
            return 0;                                                                                                              \
        khint_t mask = h->n_buckets - 1, i = kh_int64_hash_func(key) & mask, last = i, step = 0;                                   \
        while (!kh__isempty(h->flags, i) && (kh__isdel(h->flags, i) || h->keys[i] != key)) {                                       \
            i = (i + (++step)) & mask;                                                                                             \
            if (i == last)                                                                                                         \
                return h->n_buckets;                                                                                               \
        }                                                                                                                          \
        return kh__iseither(h->flags, i) ? h->n_buckets : i;                                                                       \
    }

#define khash_t(name) kh_##name##_t
#define kh_get(name, h, k) kh_get_##name(h, k)
#define kh_end(h) ((h)->n_buckets)
#define kh_val(h, x) ((h)->vals[x])

#endif
