/*
 * statuswatch.core.decode._jsonscan: a strict JSON scanner for the decoders' fast path.
 *
 * A Scanner is built once per decoder with the key paths of the fields the
 * decoder needs (e.g. ("response", "status")) and a kind per field. Its
 * scan() reads a whole batch of records and, for each one, either vouches for
 * it (and writes its fields into int64 / str columns) or does not. scan_lines()
 * does the same for the lines of one block of a file (it finds the lines itself,
 * so a line it vouches for never becomes a bytes object); both run put_record
 * per record. count_lines() counts a block's lines as scan_lines reads them.
 *
 * It vouches for a record only if ALL of these hold; anything else (including
 * anything it is not sure about) means "not vouched", and the caller decodes the
 * record with the full decoder, which decides its value or its reason:
 *
 *   - the value is a bytes object of at most max_bytes bytes;
 *   - it is one JSON text per RFC 8259 whose top level is an object: only
 *     JSON whitespace around it, strings with valid escapes and no raw control
 *     characters, numbers per the grammar, true/false/null, objects and arrays
 *     nested at most max_depth deep (the top-level object is depth 1);
 *   - every byte >= 0x80 (they can only be inside strings) is part of a
 *     well-formed UTF-8 sequence (Unicode Table 3-7: no overlongs, no
 *     surrogates, nothing above U+10FFFF), exactly what Python's strict
 *     UTF-8 codec accepts;
 *   - every \u escape is a BMP non-surrogate or a high surrogate escape
 *     immediately followed by a low surrogate escape (msgspec rejects lone
 *     surrogates even in strings it skips; RFC 8259 would allow them);
 *   - in each object on a needed path (the top level and the objects a path runs
 *     through) no key contains an escape (it could spell a needed key), no
 *     needed key appears twice, a key a path runs through holds an object
 *     (not null) and a needed field holds a value of its kind:
 *        'i'  an integer literal -?(0|[1-9][0-9]*) (no fraction, no exponent)
 *             that fits in int64; required
 *        'm'  epoch seconds (0|[1-9][0-9]{0,9})(\.[0-9]+)? (no sign, no exponent:
 *             Caddy's "ts", Fluent Bit's "date") as milliseconds, rounded to the
 *             nearest; required. Not where the part below the millisecond is
 *             within 0.01 ms of one half: there the full decoder's rounding of a
 *             double could go the other way;
 *        'S'  a string without escapes; required
 *        's'  a string without escapes; absent gives ""
 *        'd'  like 's', and "-" (the "no value" of Envoy and nginx) gives "";
 *        'f'  like 's', but not a column of its own: it stands in for the str
 *             field just before it where that one is "" (Kong's consumer.id,
 *             else consumer.username).
 *
 * Strings come back as Python str objects; short ASCII ones are taken from a
 * small cache of the scanner (direct-mapped, bounded), so repeated values share
 * one object (which also keeps its hash).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define JS_SSE2 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define JS_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define JS_INLINE static __forceinline
#else
#define JS_INLINE static inline
#endif

#if defined(_MSC_VER)
#include <intrin.h>
static inline int js_ctz(unsigned int x) {
    unsigned long i;
    _BitScanForward(&i, x);
    return (int)i;
}
#else
#define js_ctz(x) __builtin_ctz(x)
#endif

#define MAX_FIELDS 16
#define MAX_EDGES 64
#define MAX_NODES (MAX_EDGES + 1)
#define HARD_MAX_DEPTH 1024 /* recursion bound of this scanner, whatever the caller asks */
#define CACHE_SIZE 4096     /* power of two */
#define CACHE_MAX_LEN 64    /* longer strings are not cached */

#define FL_ESCAPE 1
#define FL_HIGH 2

typedef struct {
    char *key; /* owned */
    Py_ssize_t klen;
    int parent; /* node it belongs to */
    int child;  /* node index if a path runs through this key, -1 for a leaf */
    int field;  /* field index for a leaf, -1 otherwise */
} Edge;

typedef struct {
    int first; /* first edge of this node in the (sorted) edge array */
    int count;
} Node;

typedef struct {
    uint64_t hash;
    PyObject *str; /* owned; NULL if the slot is empty */
} CacheEntry;

typedef struct {
    PyObject_HEAD
    int n_fields;
    int n_ints;
    int n_strs;
    char kind[MAX_FIELDS];
    int slot[MAX_FIELDS]; /* index among the int fields or among the str fields */
    uint32_t required;    /* bit per field */
    int n_edges;
    int n_nodes;
    Edge edges[MAX_EDGES];
    Node nodes[MAX_NODES];
    int max_depth;
    Py_ssize_t max_bytes;
    PyObject *paths; /* the constructor's arguments, for repr/introspection */
    PyObject *kinds;
    CacheEntry *cache;
} Scanner;

/* What one record yields while it is scanned. */
typedef struct {
    const Scanner *sc;
    const uint8_t *end;
    int depth;
    uint64_t seen; /* edges met in this record */
    uint32_t got;  /* fields found */
    int64_t ival[MAX_FIELDS];
    const uint8_t *sptr[MAX_FIELDS];
    Py_ssize_t slen[MAX_FIELDS];
    uint8_t shigh[MAX_FIELDS];
} Rec;

/* 1 for the bytes that end the quick part of a string: '"', '\\', < 0x20, >= 0x80. */
static uint8_t STR_SPECIAL[256];
static PyObject *EMPTY_STR;

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        STR_SPECIAL[c] = (uint8_t)(c == '"' || c == '\\' || c < 0x20 || c >= 0x80);
    }
}

/* -- the grammar ----------------------------------------------------------- */

static inline const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    return p;
}

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static inline int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code unit of 4 hex digits at p, or -1. */
static inline int hex4(const uint8_t *p, const uint8_t *end) {
    if (end - p < 4) return -1;
    int a = hex_value(p[0]), b = hex_value(p[1]), c = hex_value(p[2]), d = hex_value(p[3]);
    if ((a | b | c | d) < 0) return -1;
    return (a << 12) | (b << 8) | (c << 4) | d;
}

/* An escape; p is just after the backslash. The position after it, or NULL. */
static const uint8_t *scan_escape(const uint8_t *p, const uint8_t *end) {
    if (p >= end) return NULL;
    switch (*p) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return p + 1;
    case 'u': {
        int cp = hex4(p + 1, end);
        if (cp < 0) return NULL;
        p += 5;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate: a low one must follow */
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return NULL;
            int lo = hex4(p + 2, end);
            if (lo < 0xDC00 || lo > 0xDFFF) return NULL;
            return p + 6;
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL; /* a lone low surrogate */
        return p;
    }
    default:
        return NULL;
    }
}

/* One well-formed UTF-8 sequence of 2-4 bytes at p (Unicode Table 3-7), or NULL. */
static const uint8_t *scan_utf8(const uint8_t *p, const uint8_t *end) {
    uint8_t c = p[0];
    Py_ssize_t left = end - p;
    if (c >= 0xC2 && c <= 0xDF) {
        if (left < 2 || (p[1] & 0xC0) != 0x80) return NULL;
        return p + 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (left < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return NULL;
        return p + 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (left < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80) {
            return NULL;
        }
        return p + 4;
    }
    return NULL; /* a continuation byte, C0, C1 or F5-FF */
}

/* A string; p is just after the opening quote. The position after the closing
 * quote, or NULL; *flags gets FL_ESCAPE / FL_HIGH. */
JS_INLINE const uint8_t *scan_string(const uint8_t *p, const uint8_t *end, int *flags) {
    int fl = 0;
    for (;;) {
#ifdef JS_SSE2
        const __m128i quote = _mm_set1_epi8('"');
        const __m128i bslash = _mm_set1_epi8('\\');
        const __m128i space = _mm_set1_epi8(0x20);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            /* signed compare: bytes < 0x20 and bytes >= 0x80 (negative) */
            __m128i m = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                _mm_cmplt_epi8(v, space));
            unsigned int mask = (unsigned int)_mm_movemask_epi8(m);
            if (mask) {
                p += js_ctz(mask);
                goto special;
            }
            p += 16;
        }
#else
        while (end - p >= 8) {
            uint64_t w, q, b, lo;
            memcpy(&w, p, 8);
            q = w ^ 0x2222222222222222ULL;
            b = w ^ 0x5C5C5C5C5C5C5C5CULL;
            q = (q - 0x0101010101010101ULL) & ~q;
            b = (b - 0x0101010101010101ULL) & ~b;
            lo = (w - 0x2020202020202020ULL) & ~w;
            if ((q | b | lo | w) & 0x8080808080808080ULL) break;
            p += 8;
        }
#endif
        while (p < end && !STR_SPECIAL[*p]) {
            p++;
        }
        if (p >= end) return NULL; /* unterminated */
#ifdef JS_SSE2
    special:
#endif
        {
            uint8_t c = *p;
            if (c == '"') {
                *flags = fl;
                return p + 1;
            }
            if (c == '\\') {
                fl |= FL_ESCAPE;
                p = scan_escape(p + 1, end);
            } else if (c >= 0x80) {
                fl |= FL_HIGH;
                p = scan_utf8(p, end);
            } else {
                return NULL; /* a raw control character */
            }
            if (p == NULL) return NULL;
        }
    }
}

/* A number per the JSON grammar (the caller checks what follows it). */
static const uint8_t *skip_number(const uint8_t *p, const uint8_t *end) {
    if (p < end && *p == '-') p++;
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        p++;
        while (p < end && is_digit(*p)) p++;
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    return p;
}

/* An integer literal that fits in int64 (no fraction, no exponent), or NULL. */
static const uint8_t *parse_int(const uint8_t *p, const uint8_t *end, int64_t *out) {
    int neg = 0;
    uint64_t v;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end) return NULL;
    if (*p == '0') {
        v = 0;
        p++;
    } else if (*p >= '1' && *p <= '9') {
        int digits = 1;
        v = (uint64_t)(*p - '0');
        p++;
        while (p < end && is_digit(*p)) {
            if (++digits > 19) return NULL; /* 19 digits always fit in uint64 */
            v = v * 10 + (uint64_t)(*p - '0');
            p++;
        }
    } else {
        return NULL;
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return NULL;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return NULL;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return NULL;
        *out = (int64_t)v;
    }
    return p;
}

/* Epoch seconds as milliseconds (kind 'm', see the top of this file), or NULL. */
static const uint8_t *parse_seconds_ms(const uint8_t *p, const uint8_t *end, int64_t *out) {
    int64_t whole = 0, below = 0; /* below: the first five digits of the fraction */
    int digits = 0;
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p)) {
            if (++digits > 10) return NULL; /* past the year 2286: not a time here */
            whole = whole * 10 + (*p - '0');
            p++;
        }
    } else {
        return NULL; /* a sign: before 1970, rejected either way by the full decoder */
    }
    if (p < end && *p == '.') {
        int n = 0;
        p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) {
            if (n < 5) below = below * 10 + (*p - '0');
            n++;
            p++;
        }
        for (; n < 5; n++) below *= 10;
    }
    if (p < end && (*p == 'e' || *p == 'E')) return NULL;
    int64_t sub = below % 100; /* hundredths of a millisecond, truncated */
    if (sub == 49 || sub == 50) return NULL;
    *out = whole * 1000 + below / 100 + (sub >= 50);
    return p;
}

static const uint8_t *scan_object(Rec *r, const uint8_t *p, int node);
static const uint8_t *skip_array(Rec *r, const uint8_t *p);

/* After an array element or an object member: ',' gives the next one's first byte
 * (*done = 0), `close` the byte after the container (*done = 1); anything else fails. */
static inline const uint8_t *after_item(Rec *r, const uint8_t *p, uint8_t close, int *done) {
    const uint8_t *end = r->end;
    p = skip_ws(p, end);
    if (p >= end) return NULL;
    if (*p == ',') {
        *done = 0;
        return skip_ws(p + 1, end);
    }
    if (*p == close) {
        r->depth--;
        *done = 1;
        return p + 1;
    }
    return NULL;
}

static const uint8_t *skip_value(Rec *r, const uint8_t *p) {
    const uint8_t *end = r->end;
    int fl;
    if (p >= end) return NULL;
    switch (*p) {
    case '"':
        return scan_string(p + 1, end, &fl);
    case '{':
        return scan_object(r, p + 1, -1);
    case '[':
        return skip_array(r, p + 1);
    case 't':
        return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return skip_number(p, end);
    default:
        return NULL;
    }
}

static const uint8_t *skip_array(Rec *r, const uint8_t *p) {
    const uint8_t *end = r->end;
    if (++r->depth > r->sc->max_depth) return NULL;
    p = skip_ws(p, end);
    if (p < end && *p == ']') {
        r->depth--;
        return p + 1;
    }
    for (;;) {
        int done;
        p = skip_value(r, p);
        if (p == NULL) return NULL;
        p = after_item(r, p, ']', &done);
        if (p == NULL || done) return p;
    }
}

/* A needed field's value. */
static const uint8_t *scan_leaf(Rec *r, const uint8_t *p, int f) {
    const uint8_t *end = r->end;
    char k = r->sc->kind[f];
    if (k == 'i' || k == 'm') {
        p = k == 'i' ? parse_int(p, end, &r->ival[f]) : parse_seconds_ms(p, end, &r->ival[f]);
        if (p == NULL) return NULL;
    } else {
        int fl;
        const uint8_t *s;
        if (p >= end || *p != '"') return NULL;
        s = p + 1;
        p = scan_string(s, end, &fl);
        if (p == NULL || (fl & FL_ESCAPE)) return NULL;
        r->sptr[f] = s;
        r->slen[f] = p - 1 - s;
        r->shigh[f] = (uint8_t)((fl & FL_HIGH) != 0);
    }
    r->got |= 1u << f;
    return p;
}

/* Are the n bytes at a and b equal? (Keys and cached strings are short: no memcmp call.) */
JS_INLINE int same_bytes(const uint8_t *a, const uint8_t *b, Py_ssize_t n) {
    while (n >= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
        a += 8;
        b += 8;
        n -= 8;
    }
    while (n > 0) {
        if (*a++ != *b++) return 0;
        n--;
    }
    return 1;
}

/* The edge of `node` named by the key, or -1. */
static inline int find_edge(const Scanner *sc, int node, const uint8_t *key, Py_ssize_t klen) {
    const Node *nd = &sc->nodes[node];
    for (int e = nd->first; e < nd->first + nd->count; e++) {
        const Edge *ed = &sc->edges[e];
        if (ed->klen == klen && same_bytes((const uint8_t *)ed->key, key, klen)) {
            return e;
        }
    }
    return -1;
}

/* An object; p is just after '{'. `node` is its node on the needed paths, or -1. */
static const uint8_t *scan_object(Rec *r, const uint8_t *p, int node) {
    const uint8_t *end = r->end;
    const Scanner *sc = r->sc;
    if (++r->depth > sc->max_depth) return NULL;
    p = skip_ws(p, end);
    if (p < end && *p == '}') {
        r->depth--;
        return p + 1;
    }
    for (;;) {
        const uint8_t *key;
        int fl, done;
        if (p >= end || *p != '"') return NULL;
        key = p + 1;
        p = scan_string(key, end, &fl);
        if (p == NULL) return NULL;
        if (node >= 0) {
            Py_ssize_t klen = p - 1 - key;
            int e;
            if (fl & FL_ESCAPE) return NULL; /* it might spell a needed key */
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return NULL;
            p = skip_ws(p + 1, end);
            e = find_edge(sc, node, key, klen);
            if (e >= 0) {
                const Edge *ed = &sc->edges[e];
                uint64_t bit = (uint64_t)1 << e;
                if (r->seen & bit) return NULL; /* a needed key twice */
                r->seen |= bit;
                if (ed->child >= 0) {
                    if (p >= end || *p != '{') return NULL; /* null or not an object */
                    p = scan_object(r, p + 1, ed->child);
                } else {
                    p = scan_leaf(r, p, ed->field);
                }
            } else {
                p = skip_value(r, p);
            }
        } else {
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return NULL;
            p = skip_value(r, skip_ws(p + 1, end));
        }
        if (p == NULL) return NULL;
        p = after_item(r, p, '}', &done);
        if (p == NULL || done) return p;
    }
}

/* 1 if the scanner vouches for the record (its fields are then in r), else 0. */
static int scan_record(Rec *r, const uint8_t *p, Py_ssize_t n) {
    const uint8_t *end = p + n;
    r->end = end;
    r->depth = 0;
    r->seen = 0;
    r->got = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = scan_object(r, p + 1, 0);
    if (p == NULL) return 0;
    p = skip_ws(p, end);
    if (p != end) return 0;
    return (r->got & r->sc->required) == r->sc->required;
}

/* -- str objects ----------------------------------------------------------- */

static inline uint64_t hash_bytes(const uint8_t *s, Py_ssize_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, s, (size_t)n);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    h *= 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
}

/* A new reference to the str of n UTF-8 bytes at s (already validated). */
static PyObject *make_str(Scanner *sc, const uint8_t *s, Py_ssize_t n, int high, int dash) {
    if (n == 0 || (dash && n == 1 && s[0] == '-')) {
        Py_INCREF(EMPTY_STR);
        return EMPTY_STR;
    }
    if (high) {
        return PyUnicode_DecodeUTF8((const char *)s, n, "strict");
    }
    if (n > CACHE_MAX_LEN) {
        PyObject *o = PyUnicode_New(n, 127);
        if (o != NULL) memcpy(PyUnicode_1BYTE_DATA(o), s, (size_t)n);
        return o;
    }
    uint64_t h = hash_bytes(s, n);
    CacheEntry *e = &sc->cache[h & (CACHE_SIZE - 1)];
    if (e->str != NULL && e->hash == h && PyUnicode_GET_LENGTH(e->str) == n &&
        same_bytes(PyUnicode_1BYTE_DATA(e->str), s, n)) {
        Py_INCREF(e->str);
        return e->str;
    }
    PyObject *o = PyUnicode_New(n, 127);
    if (o == NULL) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(o), s, (size_t)n);
    Py_XDECREF(e->str);
    Py_INCREF(o);
    e->str = o;
    e->hash = h;
    return o;
}

/* -- the Scanner type ------------------------------------------------------ */

static int add_edge(Scanner *self, int parent, const char *key, Py_ssize_t klen) {
    for (int e = 0; e < self->n_edges; e++) {
        Edge *ed = &self->edges[e];
        if (ed->parent == parent && ed->klen == klen && memcmp(ed->key, key, (size_t)klen) == 0) {
            return e;
        }
    }
    if (self->n_edges >= MAX_EDGES) {
        PyErr_SetString(PyExc_ValueError, "too many keys in the paths");
        return -1;
    }
    Edge *ed = &self->edges[self->n_edges];
    ed->key = PyMem_Malloc((size_t)(klen > 0 ? klen : 1));
    if (ed->key == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(ed->key, key, (size_t)klen);
    ed->klen = klen;
    ed->parent = parent;
    ed->child = -1;
    ed->field = -1;
    return self->n_edges++;
}

/* Back to the state of a new Scanner: tables are filled in place, so a failed
 * __init__ leaves counts and keys that a second __init__ must not build on. */
static void clear_tables(Scanner *self) {
    for (int e = 0; e < self->n_edges; e++) {
        PyMem_Free(self->edges[e].key);
    }
    self->n_fields = self->n_ints = self->n_strs = 0;
    self->required = 0;
    self->n_edges = self->n_nodes = 0;
    memset(self->kind, 0, sizeof(self->kind));
    memset(self->slot, 0, sizeof(self->slot));
    memset(self->edges, 0, sizeof(self->edges));
    memset(self->nodes, 0, sizeof(self->nodes));
    self->max_depth = 0;
    self->max_bytes = 0;
    Py_CLEAR(self->paths);
    Py_CLEAR(self->kinds);
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"paths", "kinds", "max_depth", "max_bytes", NULL};
    PyObject *paths;
    const char *kinds;
    Py_ssize_t n_kinds, max_bytes;
    int max_depth;
    if (self->cache != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is already initialised");
        return -1;
    }
    clear_tables(self); /* what a failed __init__ before may have left */
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!y#in:Scanner", kwlist, &PyTuple_Type, &paths,
                                     &kinds, &n_kinds, &max_depth, &max_bytes)) {
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(paths);
    if (n != n_kinds) {
        PyErr_SetString(PyExc_ValueError, "one kind per path");
        return -1;
    }
    if (n < 1 || n > MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "1 to %d paths", MAX_FIELDS);
        return -1;
    }
    if (max_depth < 1 || max_bytes < 0) {
        PyErr_SetString(PyExc_ValueError, "max_depth must be >= 1 and max_bytes >= 0");
        return -1;
    }
    self->max_depth = max_depth < HARD_MAX_DEPTH ? max_depth : HARD_MAX_DEPTH;
    self->max_bytes = max_bytes;
    self->n_fields = (int)n;
    self->n_nodes = 1; /* node 0: the top-level object */
    for (Py_ssize_t f = 0; f < n; f++) {
        PyObject *path = PyTuple_GET_ITEM(paths, f);
        char k = kinds[f];
        if (k != 'i' && k != 'm' && k != 's' && k != 'S' && k != 'd' && k != 'f') {
            PyErr_Format(PyExc_ValueError, "unknown kind %c (expected i, m, S, s, d or f)",
                         (int)k);
            return -1;
        }
        if (k == 'f' && (f == 0 || kinds[f - 1] == 'i' || kinds[f - 1] == 'm'
                         || kinds[f - 1] == 'f')) {
            PyErr_SetString(PyExc_ValueError, "kind f must follow a str field (S, s or d)");
            return -1;
        }
        self->kind[f] = k;
        if (k == 'i' || k == 'm') {
            self->slot[f] = self->n_ints++;
        } else if (k == 'f') {
            self->slot[f] = self->n_strs - 1;
        } else {
            self->slot[f] = self->n_strs++;
        }
        if (k == 'i' || k == 'm' || k == 'S') self->required |= 1u << f;
        if (!PyTuple_Check(path) || PyTuple_GET_SIZE(path) < 1) {
            PyErr_SetString(PyExc_TypeError, "each path is a non-empty tuple of bytes");
            return -1;
        }
        int node = 0;
        Py_ssize_t depth = PyTuple_GET_SIZE(path);
        for (Py_ssize_t d = 0; d < depth; d++) {
            PyObject *key = PyTuple_GET_ITEM(path, d);
            if (!PyBytes_Check(key)) {
                PyErr_SetString(PyExc_TypeError, "each path is a non-empty tuple of bytes");
                return -1;
            }
            int e = add_edge(self, node, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
            if (e < 0) return -1;
            Edge *ed = &self->edges[e];
            if (d == depth - 1) {
                if (ed->child >= 0 || ed->field >= 0) {
                    PyErr_SetString(PyExc_ValueError, "a path is a prefix of another path or repeated");
                    return -1;
                }
                ed->field = (int)f;
            } else {
                if (ed->field >= 0) {
                    PyErr_SetString(PyExc_ValueError, "a path is a prefix of another path");
                    return -1;
                }
                if (ed->child < 0) {
                    ed->child = self->n_nodes++;
                }
                node = ed->child;
            }
        }
    }
    /* sort the edges by node (stable), so each node's edges are contiguous */
    {
        Edge sorted[MAX_EDGES];
        int k = 0;
        for (int nd = 0; nd < self->n_nodes; nd++) {
            self->nodes[nd].first = k;
            for (int e = 0; e < self->n_edges; e++) {
                if (self->edges[e].parent == nd) {
                    sorted[k++] = self->edges[e];
                }
            }
            self->nodes[nd].count = k - self->nodes[nd].first;
        }
        memcpy(self->edges, sorted, sizeof(Edge) * (size_t)self->n_edges);
    }
    self->kinds = PyBytes_FromStringAndSize(kinds, n_kinds);
    if (self->kinds == NULL) return -1;
    Py_INCREF(paths);
    self->paths = paths;
    /* last: a cache is what marks the scanner initialised */
    self->cache = PyMem_Calloc(CACHE_SIZE, sizeof(CacheEntry));
    if (self->cache == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void Scanner_dealloc(Scanner *self) {
    for (int e = 0; e < self->n_edges; e++) {
        PyMem_Free(self->edges[e].key);
    }
    if (self->cache != NULL) {
        for (int i = 0; i < CACHE_SIZE; i++) {
            Py_XDECREF(self->cache[i].str);
        }
        PyMem_Free(self->cache);
    }
    Py_XDECREF(self->paths);
    Py_XDECREF(self->kinds);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int int64_format(const char *format) {
    if (format == NULL) return 0;
    if (*format == '@' || *format == '=' || *format == '<') format++;
    return (format[0] == 'l' || format[0] == 'q') && format[1] == '\0';
}

static int bool_format(const char *format) {
    if (format == NULL) return 1; /* unformatted bytes */
    if (*format == '@' || *format == '=' || *format == '<' || *format == '|') format++;
    return (format[0] == '?' || format[0] == 'B' || format[0] == 'b') && format[1] == '\0';
}

/* Where one scan writes: the int64 rows, the ok flags and the str columns. */
typedef struct {
    Py_ssize_t n;
    int64_t *ints;
    uint8_t *ok;
    PyObject *lists; /* owned: one list of n str per str field */
    Py_buffer ib, ob;
    int have_ib, have_ob;
} Out;

/* Checks and takes the ints and ok buffers of a scan of n records, and makes the
 * str columns. -1 with an exception set on failure (close_out still runs). */
static int open_out(const Scanner *self, Out *out, PyObject *ints_arg, PyObject *ok_arg,
                    Py_ssize_t n) {
    out->n = n;
    if (PyObject_GetBuffer(ints_arg, &out->ib,
                           PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        return -1;
    }
    out->have_ib = 1;
    if (out->ib.itemsize != 8 || !int64_format(out->ib.format) ||
        out->ib.len != 8 * n * self->n_ints) {
        PyErr_SetString(PyExc_ValueError, "ints must be int64 with n_ints * n items");
        return -1;
    }
    if (PyObject_GetBuffer(ok_arg, &out->ob,
                           PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        return -1;
    }
    out->have_ob = 1;
    if (out->ob.itemsize != 1 || !bool_format(out->ob.format) || out->ob.len != n) {
        PyErr_SetString(PyExc_ValueError, "ok must be a bool buffer of n items");
        return -1;
    }
    out->ints = (int64_t *)out->ib.buf;
    out->ok = (uint8_t *)out->ob.buf;
    out->lists = PyList_New(self->n_strs);
    if (out->lists == NULL) return -1;
    for (int s = 0; s < self->n_strs; s++) {
        PyObject *col = PyList_New(n);
        if (col == NULL) return -1;
        PyList_SET_ITEM(out->lists, s, col);
    }
    return 0;
}

/* Releases what open_out took; returns the str columns if `keep`, else NULL. */
static PyObject *close_out(Out *out, int keep) {
    PyObject *result = NULL;
    if (keep) {
        result = out->lists;
        out->lists = NULL;
    }
    /* a list left half filled holds NULL items, which list_dealloc skips */
    Py_CLEAR(out->lists);
    if (out->have_ib) PyBuffer_Release(&out->ib);
    if (out->have_ob) PyBuffer_Release(&out->ob);
    out->have_ib = out->have_ob = 0;
    return result;
}

/* Record i of the scan: the n bytes at p (p NULL: a record the scanner does not
 * look at). Writes its fields, or placeholders if not vouched; -1 on failure. */
static int put_record(Scanner *self, Rec *r, Out *out, Py_ssize_t i, const uint8_t *p,
                      Py_ssize_t len) {
    PyObject *row[MAX_FIELDS];
    Py_ssize_t n = out->n;
    int vouched = p != NULL && len <= self->max_bytes && scan_record(r, p, len);
    if (vouched) {
        int made = 0;
        for (int f = 0; f < self->n_fields; f++) {
            char k = self->kind[f];
            if (k == 'i' || k == 'm') continue;
            if (k == 'f' && PyUnicode_GET_LENGTH(row[made - 1]) != 0) continue;
            PyObject *o;
            if (r->got & (1u << f)) {
                o = make_str(self, r->sptr[f], r->slen[f], r->shigh[f], k == 'd');
            } else {
                Py_INCREF(EMPTY_STR);
                o = EMPTY_STR;
            }
            if (o == NULL) {
                for (int j = 0; j < made; j++) Py_DECREF(row[j]);
                return -1;
            }
            if (k == 'f') {
                Py_SETREF(row[made - 1], o);
            } else {
                row[made++] = o;
            }
        }
        for (int f = 0; f < self->n_fields; f++) {
            if (self->kind[f] == 'i' || self->kind[f] == 'm') {
                out->ints[(Py_ssize_t)self->slot[f] * n + i] = r->ival[f];
            }
        }
        for (int s = 0; s < self->n_strs; s++) {
            PyList_SET_ITEM(PyList_GET_ITEM(out->lists, s), i, row[s]);
        }
    } else {
        for (int k = 0; k < self->n_ints; k++) out->ints[(Py_ssize_t)k * n + i] = 0;
        for (int s = 0; s < self->n_strs; s++) {
            Py_INCREF(EMPTY_STR);
            PyList_SET_ITEM(PyList_GET_ITEM(out->lists, s), i, EMPTY_STR);
        }
    }
    out->ok[i] = (uint8_t)vouched;
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(values, ints, ok, /)\n--\n\n"
"Scan a batch of records. ``values``: a sequence of bytes; ``ints``: a writable\n"
"C-contiguous int64 buffer of n_ints * len(values) items, filled field by field\n"
"(row k is the k-th 'i' or 'm' field); ``ok``: a writable buffer of len(values) bools,\n"
"set to whether the scanner vouches for each record. Returns one list of str\n"
"per str field (in path order). Fields of records not vouched for are 0 and \"\".");

static PyObject *Scanner_scan(Scanner *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *seq = NULL, *result = NULL;
    PyObject **items = NULL;
    Py_ssize_t n_items = 0;
    Out out = {0};

    if (self->cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is not initialised");
        return NULL;
    }
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scan(values, ints, ok) takes 3 arguments");
        return NULL;
    }
    seq = PySequence_Fast(args[0], "values must be a sequence of bytes");
    if (seq == NULL) return NULL;
    /* References of our own to the values, taken before anything can run Python
     * code: a GC-tracked allocation can run the garbage collector and so a
     * finalizer, and PyObject_GetBuffer can run __buffer__ (3.12+); either could
     * empty the list and free its item array under us. (Not PySequence_Tuple:
     * on 3.11 it allocates the tuple after reading the list's item array.) */
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    items = PyMem_New(PyObject *, n > 0 ? (size_t)n : 1);
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    {
        PyObject **src = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_INCREF(src[i]);
            items[i] = src[i];
        }
        n_items = n;
    }
    Py_CLEAR(seq); /* (no Python code runs in its dealloc: we hold every item) */

    if (open_out(self, &out, args[1], args[2], n) < 0) goto done;
    Rec r;
    r.sc = self;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        int exact = PyBytes_CheckExact(item);
        if (put_record(self, &r, &out, i,
                       exact ? (const uint8_t *)PyBytes_AS_STRING(item) : NULL,
                       exact ? PyBytes_GET_SIZE(item) : 0) < 0) {
            goto done;
        }
    }
    result = close_out(&out, 1);

done:
    close_out(&out, 0);
    Py_XDECREF(seq);
    for (Py_ssize_t i = 0; i < n_items; i++) Py_DECREF(items[i]);
    PyMem_Free(items);
    return result;
}

PyDoc_STRVAR(scan_lines_doc,
"scan_lines(data, ints, ok, bounds, head=None, /)\n--\n\n"
"Scan the lines of ``data`` (a read-only bytes-like block, e.g. bytes or a memoryview\n"
"of bytes) as ``scan`` scans a list of values.\n"
"Its lines are what ``data.split(b'\\n')`` gives without a last empty item, each\n"
"without its trailing CRs; ``head`` (bytes), if given, is a line before them.\n"
"There must be exactly len(ok) lines in all. ``bounds``: a writable int64 buffer\n"
"of 2 * len(ok) items, set to where each line of ``data`` starts (row 0) and\n"
"stops (row 1) in it (0 and 0 for ``head``). Returns the str columns, as ``scan``.");

static PyObject *Scanner_scan_lines(Scanner *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *result = NULL;
    Py_buffer db = {0}, bb = {0};
    int have_db = 0, have_bb = 0;
    Out out = {0};

    if (self->cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is not initialised");
        return NULL;
    }
    if (nargs != 4 && nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "scan_lines(data, ints, ok, bounds, head=None) takes 4 or 5 arguments");
        return NULL;
    }
    /* (the caller holds head, and bytes cannot change) */
    PyObject *head = nargs == 5 && args[4] != Py_None ? args[4] : NULL;
    if (head != NULL && !PyBytes_CheckExact(head)) {
        PyErr_SetString(PyExc_TypeError, "head must be bytes or None");
        return NULL;
    }
    /* Every buffer is taken before the scan: the exports keep them in place and of
     * their size, whatever Python code a finalizer may run during it. */
    if (PyObject_GetBuffer(args[0], &db, PyBUF_C_CONTIGUOUS) < 0) goto done;
    have_db = 1;
    /* Read-only: a finalizer run by an allocation could otherwise change bytes that
     * were validated (as UTF-8, say) before they are copied into a str. */
    if (!db.readonly) {
        PyErr_SetString(PyExc_TypeError, "data must be a read-only buffer (bytes)");
        goto done;
    }
    /* the number of lines is the size of ok (open_out checks its format) */
    Py_ssize_t n = PyObject_Length(args[2]);
    if (n < 0 || open_out(self, &out, args[1], args[2], n) < 0) goto done;
    if (PyObject_GetBuffer(args[3], &bb, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        goto done;
    }
    have_bb = 1;
    if (bb.itemsize != 8 || !int64_format(bb.format) || bb.len != 16 * n) {
        PyErr_SetString(PyExc_ValueError, "bounds must be int64 with 2 * len(ok) items");
        goto done;
    }
    int64_t *bounds = (int64_t *)bb.buf;
    const uint8_t *base = (const uint8_t *)db.buf, *end = base + db.len, *p = base;
    Rec r;
    r.sc = self;
    Py_ssize_t i = 0;
    if (head != NULL) {
        if (n < 1) {
            PyErr_SetString(PyExc_ValueError, "data holds fewer lines than len(ok)");
            goto done;
        }
        bounds[0] = bounds[n] = 0;
        if (put_record(self, &r, &out, 0, (const uint8_t *)PyBytes_AS_STRING(head),
                       PyBytes_GET_SIZE(head)) < 0) {
            goto done;
        }
        i = 1;
    }
    for (; i < n; i++) {
        if (p >= end) {
            PyErr_SetString(PyExc_ValueError, "data holds fewer lines than len(ok)");
            goto done;
        }
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *stop = nl != NULL ? nl : end;
        while (stop > p && stop[-1] == '\r') stop--;
        bounds[i] = p - base;
        bounds[n + i] = stop - base;
        if (put_record(self, &r, &out, i, p, stop - p) < 0) goto done;
        p = nl != NULL ? nl + 1 : end;
    }
    if (p != end) {
        PyErr_SetString(PyExc_ValueError, "data holds more lines than len(ok)");
        goto done;
    }
    result = close_out(&out, 1);

done:
    close_out(&out, 0);
    if (have_bb) PyBuffer_Release(&bb);
    if (have_db) PyBuffer_Release(&db);
    return result;
}

PyDoc_STRVAR(count_lines_doc,
"count_lines(data, /)\n--\n\n"
"The number of lines of ``data`` (a bytes-like block) as ``Scanner.scan_lines``\n"
"reads them: its LF bytes, plus one if it does not end with LF and is not empty.");

static PyObject *count_lines(PyObject *module, PyObject *data) {
    (void)module;
    Py_buffer db;
    if (PyObject_GetBuffer(data, &db, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    const uint8_t *p = (const uint8_t *)db.buf, *end = p + db.len;
    Py_ssize_t count = 0;
#ifdef JS_SSE2
    const __m128i lf = _mm_set1_epi8('\n');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        unsigned int mask = (unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf));
        while (mask) { /* (lines are long: a set bit is rare) */
            count++;
            mask &= mask - 1;
        }
        p += 16;
    }
#endif
    const uint8_t *q;
    while (p < end && (q = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        count++;
        p = q + 1;
    }
    if (db.len > 0 && ((const uint8_t *)db.buf)[db.len - 1] != '\n') count++;
    PyBuffer_Release(&db);
    return PyLong_FromSsize_t(count);
}

static PyMethodDef module_methods[] = {
    {"count_lines", (PyCFunction)count_lines, METH_O, count_lines_doc},
    {NULL, NULL, 0, NULL},
};

static PyObject *Scanner_repr(Scanner *self) {
    return PyUnicode_FromFormat("Scanner(%R, %R, max_depth=%d, max_bytes=%zd)",
                                self->paths ? self->paths : Py_None,
                                self->kinds ? self->kinds : Py_None, self->max_depth,
                                self->max_bytes);
}

static PyObject *Scanner_get_n_ints(Scanner *self, void *closure) {
    (void)closure;
    return PyLong_FromLong(self->n_ints);
}

static PyObject *Scanner_get_n_strs(Scanner *self, void *closure) {
    (void)closure;
    return PyLong_FromLong(self->n_strs);
}

static PyObject *Scanner_get_max_depth(Scanner *self, void *closure) {
    (void)closure;
    return PyLong_FromLong(self->max_depth);
}

static PyGetSetDef Scanner_getset[] = {
    {"n_ints", (getter)Scanner_get_n_ints, NULL, "number of int fields", NULL},
    {"n_strs", (getter)Scanner_get_n_strs, NULL, "number of str fields", NULL},
    {"max_depth", (getter)Scanner_get_max_depth, NULL, "the nesting limit in force", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))Scanner_scan, METH_FASTCALL, scan_doc},
    {"scan_lines", (PyCFunction)(void (*)(void))Scanner_scan_lines, METH_FASTCALL,
     scan_lines_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Scanner_doc,
"Scanner(paths, kinds, max_depth, max_bytes)\n--\n\n"
"A strict JSON scanner for the fields at ``paths`` (a tuple of tuples of bytes\n"
"keys, from the top-level object), one kind per path in ``kinds`` (bytes):\n"
"b'i' a required int64, b'm' required epoch seconds as int64 milliseconds,\n"
"b'S' a required str, b's' an optional str (absent: \"\"),\n"
"b'd' like b's' with \"-\" read as \"\"; b'f' an optional str standing in for the\n"
"str field before it where that one is \"\" (no column of its own).");

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "statuswatch.core.decode._jsonscan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_itemsize = 0,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_repr = (reprfunc)Scanner_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Scanner_doc,
    .tp_methods = Scanner_methods,
    .tp_getset = Scanner_getset,
    .tp_init = (initproc)Scanner_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef jsonscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "statuswatch.core.decode._jsonscan",
    .m_doc = "A strict JSON scanner that extracts a few fields from a batch of records.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__jsonscan(void) {
    init_tables();
    if (EMPTY_STR == NULL) {
        EMPTY_STR = PyUnicode_FromStringAndSize("", 0);
        if (EMPTY_STR == NULL) return NULL;
    }
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&jsonscan_module);
    if (m == NULL) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "HARD_MAX_DEPTH", HARD_MAX_DEPTH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
