/*
 * statuswatch.core._kernels: the core's per-cell passes (see kernels.py).
 *
 * share_cells: the screened share scoring of score.score_shares in one pass over a
 * window's cells, where numpy needs some forty array passes (each cheap, but a window
 * has a few thousand cells and thousands of windows run). It takes the window
 * (counts, learned shares, floor, dispersion, totals, drop totals, the rows to score
 * and the cells to score exactly) and writes, per cell, the observed share and both
 * expected counts; per tail, the cells whose score may reach the threshold, with the
 * arguments of their exact tail, an incomplete beta. Those (scipy's) stay in Python,
 * in one call for both tails: few cells need them. Every value written is the IEEE
 * result of the same operations, in the same order, as score._score_shares (built
 * with -ffp-contract=off, so no fused multiply-add rounds differently); the screen's
 * bound uses the C library's lgamma/log/log1p, which may differ from numpy's in the
 * last place: the screen's margin (score.SCREEN_MARGIN) is far wider, so a cell left
 * out still provably scores under the threshold.
 *
 * learn_cells: Baseline.learn's share learning of one window (baseline._learn_shares
 * and _learn_long_dispersion, with the known columns) on the baseline's own matrices,
 * cell by cell with the same expressions in the same order, so every value learned is
 * the numpy path's bit for bit (the bias correction, a power, comes in computed).
 *
 * expect_cells: Baseline.expect's per-cell part (the bias-corrected shares and both
 * dispersions) of the rows asked for, in one pass where numpy takes eight.
 *
 * rises_possible: whether any cell of the horizons past the minute can pass its rise
 * gates (HorizonJudge._long_horizons': warm, looked at, count, ratio, still arriving)
 * in a window with nothing live: mostly none can, and the horizons' views are then
 * empty without their numpy work. A long-reference horizon's share is read from the
 * long reference's sums without the same-hour part, which can only raise it: a cell
 * the gates would pass is never missed, and where one may pass the numpy path decides.
 *
 * ew_rows: LongReference.learn_rows' update of the EW sums of some rows (each cell and
 * each row's requests moved by alpha towards the window's), where numpy takes six passes
 * and two gathers.
 *
 * Buffers are checked for kind, size and C-contiguity before any is read, and every
 * row index against the matrices it indexes; the callers (score._native_share_scores,
 * Baseline._learn_cells_natively and _expect_cells_natively) allocate the outputs.
 * rises_possible's caller is HorizonJudge._views_without_rises, ew_rows's
 * LongReference.learn_rows.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LN10 2.302585092994046
#define P_LOW 1e-12
#define P_HIGH (1.0 - 1e-12)

/* np.clip, np.maximum and np.minimum: NaN propagates. */
static inline double clip_share(double v) {
    if (isnan(v)) return v;
    return v < P_LOW ? P_LOW : (v > P_HIGH ? P_HIGH : v);
}

static inline double np_max(double a, double b) {
    if (isnan(a) || isnan(b)) return NAN;
    return a >= b ? a : b;
}

static inline double np_min(double a, double b) {
    if (isnan(a) || isnan(b)) return NAN;
    return a <= b ? a : b;
}

/* ln of a lower bound on I_q(a, b): score._log_tail_lower_bound. */
static double log_tail_lower_bound(double a, double b, double q) {
    double log_beta = lgamma(a) + lgamma(b) - lgamma(a + b);
    double head = a * log(q) + b * log1p(-q) - log(a) - log_beta;
    return head + log1p((a + b) * q / (a + 1.0));
}

/* score.upper_tail_may_reach for one cell. */
static int upper_may_reach(double x, double n, double p, double limit, int mean_side) {
    if (!(x > 0.0)) return 0;
    if (mean_side && !((x < 1.0) || (x > (n + 1.0) * p) || (x > n))) return 0;
    if (!(x > n) && !(-x * log(p) / LN10 >= limit)) return 0; /* P(X >= x) >= p^x */
    return -log_tail_lower_bound(x, n - x + 1.0, p) / LN10 >= limit;
}

/* score.lower_tail_may_reach for one cell. */
static int lower_may_reach(double x, double n, double p, double limit, int mean_side) {
    /* P(X <= x) >= (1-p)^(n-x) */
    if (!(-(n - x) * log1p(-p) / LN10 >= limit) || !(x < n)) return 0;
    if (mean_side && !((n - x < 1.0) || ((n - x) > (n + 1.0) * (1.0 - p)))) return 0;
    if (x <= 0.0) return 1; /* (1-p)^n, the tail at 0, already may reach it */
    return -log_tail_lower_bound(n - x, x + 1.0, 1.0 - p) / LN10 >= limit;
}

typedef struct {
    Py_buffer view;
    int held;
} Buf;

/* A C-contiguous buffer of `count` items (any number if negative) of one kind:
 * 'i' int64, 'd' double, '?' bool; writable if asked. None is allowed where
 * `optional`. */
static int take(PyObject *obj, Buf *b, char kind, Py_ssize_t count, int writable,
                int optional, const char *name) {
    b->held = 0;
    if (obj == Py_None) {
        if (optional) return 0;
        PyErr_Format(PyExc_TypeError, "share_cells: %s must not be None", name);
        return -1;
    }
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) return -1;
    b->held = 1;
    const char *f = b->view.format ? b->view.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    Py_ssize_t size = kind == '?' ? 1 : 8;
    int kind_ok = kind == 'd' ? strcmp(f, "d") == 0
                : kind == 'i' ? (strcmp(f, "l") == 0 || strcmp(f, "q") == 0)
                : strcmp(f, "?") == 0;
    if (!kind_ok || b->view.itemsize != size || (count >= 0 && b->view.len / size != count)) {
        PyErr_Format(PyExc_ValueError,
                     "share_cells: %s must hold %zd items of kind '%c' (has format %s, %zd bytes)",
                     name, count, kind, f, b->view.len);
        return -1;
    }
    return 0;
}

static void release(Buf *bufs, int n) {
    for (int i = 0; i < n; i++)
        if (bufs[i].held) PyBuffer_Release(&bufs[i].view);
}

/* One buffer argument: its position, its slot, its kind, its size (the caller's
 * extents[extent] items, times planes), whether it is written and whether it may be
 * None. */
typedef struct {
    int arg, slot;
    char kind;
    int extent, planes, writable, optional;
    const char *name;
} Spec;

static int take_all(PyObject *const *args, Buf *b, const Spec *spec, size_t n,
                    const Py_ssize_t *extents) {
    for (size_t k = 0; k < n; k++)
        if (take(args[spec[k].arg], &b[spec[k].slot], spec[k].kind,
                 extents[spec[k].extent] * spec[k].planes, spec[k].writable, spec[k].optional,
                 spec[k].name) < 0)
            return -1;
    return 0;
}

/* Whether every one of `rows` indexes a row below `limit`: -1, an exception set, if not. */
static int rows_below(const char *name, const int64_t *rows, Py_ssize_t n, Py_ssize_t limit) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (rows[i] < 0 || rows[i] >= limit) {
            PyErr_Format(PyExc_IndexError, "%s: row %lld out of range", name,
                         (long long)rows[i]);
            return -1;
        }
    }
    return 0;
}

/* A matrix of rows of `stride` >= n_cols columns: -1, an exception set, if not. */
static int strided(const char *name, Py_ssize_t n_cols, Py_ssize_t stride) {
    if (n_cols > 0 && stride >= n_cols) return 0;
    PyErr_Format(PyExc_ValueError, "%s: need 0 < n_cols <= stride", name);
    return -1;
}

/* A state's matrix of doubles in whole rows of `stride` (the other matrices of that
 * state are checked against its size): its rows in *rows; -1, an exception set, if not. */
static int take_matrix(const char *name, PyObject *obj, Buf *b, Py_ssize_t stride,
                       int writable, Py_ssize_t *rows) {
    if (take(obj, b, 'd', -1, writable, 0, "mean") < 0) return -1;
    Py_ssize_t cells = b->view.len / 8;
    if (cells % stride != 0) {
        PyErr_Format(PyExc_ValueError, "%s: mean must hold whole rows of stride", name);
        return -1;
    }
    *rows = cells / stride;
    return 0;
}

/* The argument count and the scalar arguments: -1, an exception set, where wrong. */
static int arity(const char *name, Py_ssize_t nargs, Py_ssize_t want) {
    if (nargs == want) return 0;
    PyErr_Format(PyExc_TypeError, "%s takes %zd arguments (%zd given)", name, want, nargs);
    return -1;
}

static int size_arg(PyObject *obj, Py_ssize_t *out) {
    *out = PyLong_AsSsize_t(obj);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int double_arg(PyObject *obj, double *out) {
    *out = PyFloat_AsDouble(obj);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

enum {
    A_COUNTS, A_SHARE, A_FLOOR, A_DISPERSION, A_TOTALS, A_DOWN_TOTALS, A_ROWS, A_EXACT,
    A_OBSERVED, A_EXPECTED, A_UP_EXPECTED, A_TAIL_IDX, A_TAIL_AT,
    N_BUFFERS
};

PyDoc_STRVAR(share_cells_doc,
"share_cells(counts, share, floor, dispersion, totals, down_totals, rows, exact,\n"
"            n_cols, limit, mean_side, observed, expected, up_expected,\n"
"            tail_idx, tail_at) -> (k_up, k_down)\n\n"
"One pass of score._score_shares, screened at `limit` (below - SCREEN_MARGIN;\n"
"`mean_side`: limit > MEAN_SIDE_SCORE). Arrays are flat and C-contiguous, r*c\n"
"cells of n_cols columns: counts int64, share and dispersion (or None) double,\n"
"exact (or None) bool; per row: floor and down_totals (or None) double, totals\n"
"int64, rows (or None: every row) bool. Rows left out, or without requests or\n"
"exact cells, read 0 (their tails: no candidate). Writes observed, expected and\n"
"up_expected (r*c doubles), and the tails' candidates: the rise tail's first,\n"
"then the drop tail's, k_up + k_down cells of tail_idx (int64, 2*r*c) and of the\n"
"four planes of tail_at (4*2*r*c doubles): the incomplete beta's a, b and x\n"
"(the tail is I_x(a, b)) and 1 where the tail is below 1 (else it is 1).");

static PyObject *share_cells(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_ssize_t n_cols;
    double limit;
    if (arity("share_cells", nargs, 16) < 0 || size_arg(args[8], &n_cols) < 0
        || double_arg(args[9], &limit) < 0)
        return NULL;
    int mean_side = PyObject_IsTrue(args[10]);
    if (mean_side < 0) return NULL;
    if (n_cols <= 0) {
        PyErr_SetString(PyExc_ValueError, "share_cells: n_cols must be positive");
        return NULL;
    }
    Buf b[N_BUFFERS];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    /* the row count from totals, then every other buffer checked against it */
    if (take(args[4], &b[A_TOTALS], 'i', -1, 0, 0, "totals") < 0) goto done;
    Py_ssize_t n_rows = b[A_TOTALS].view.len / 8;
    if (n_rows > PY_SSIZE_T_MAX / 8 / n_cols) {
        PyErr_SetString(PyExc_ValueError, "share_cells: too many cells");
        goto done;
    }
    Py_ssize_t cells = n_rows * n_cols;
    static const Spec spec[] = { /* extent: 0 the cells, 1 the rows */
        {0, A_COUNTS, 'i', 0, 1, 0, 0, "counts"},
        {1, A_SHARE, 'd', 0, 1, 0, 0, "share"},
        {2, A_FLOOR, 'd', 1, 1, 0, 1, "floor"},
        {3, A_DISPERSION, 'd', 0, 1, 0, 1, "dispersion"},
        {5, A_DOWN_TOTALS, 'd', 1, 1, 0, 1, "down_totals"},
        {6, A_ROWS, '?', 1, 1, 0, 1, "rows"},
        {7, A_EXACT, '?', 0, 1, 0, 1, "exact"},
        {11, A_OBSERVED, 'd', 0, 1, 1, 0, "observed"},
        {12, A_EXPECTED, 'd', 0, 1, 1, 0, "expected"},
        {13, A_UP_EXPECTED, 'd', 0, 1, 1, 0, "up_expected"},
        {14, A_TAIL_IDX, 'i', 0, 2, 1, 0, "tail_idx"},
        {15, A_TAIL_AT, 'd', 0, 8, 1, 0, "tail_at"},
    };
    const Py_ssize_t extents[] = {cells, n_rows};
    if (take_all(args, b, spec, sizeof spec / sizeof spec[0], extents) < 0) goto done;
    const int64_t *counts = b[A_COUNTS].view.buf, *totals = b[A_TOTALS].view.buf;
    const double *share = b[A_SHARE].view.buf;
    const double *floor_ = b[A_FLOOR].held ? b[A_FLOOR].view.buf : NULL;
    const double *phi = b[A_DISPERSION].held ? b[A_DISPERSION].view.buf : NULL;
    const double *down_totals = b[A_DOWN_TOTALS].held ? b[A_DOWN_TOTALS].view.buf : NULL;
    const char *rows = b[A_ROWS].held ? b[A_ROWS].view.buf : NULL;
    const char *exact = b[A_EXACT].held ? b[A_EXACT].view.buf : NULL;
    double *observed = b[A_OBSERVED].view.buf, *expected = b[A_EXPECTED].view.buf;
    double *up_expected = b[A_UP_EXPECTED].view.buf;
    /* the rise tail's candidates from 0, the drop tail's from `cells` (moved up to
     * follow them at the end); per candidate the incomplete beta's a, b, x and
     * whether the tail is uncertain, in four planes of 2 * cells */
    int64_t *tail_idx = b[A_TAIL_IDX].view.buf;
    double *tail_at = b[A_TAIL_AT].view.buf;
    Py_ssize_t plane = 2 * cells;
    Py_ssize_t k_up = 0, k_down = 0;

    for (Py_ssize_t r = 0; r < n_rows; r++) {
        Py_ssize_t base = r * n_cols;
        int scorable = totals[r] > 0;
        if (!scorable && exact)
            for (Py_ssize_t c = 0; c < n_cols && !scorable; c++) scorable = exact[base + c];
        if (!scorable || (rows && !rows[r])) {
            for (Py_ssize_t c = 0; c < n_cols; c++)
                observed[base + c] = expected[base + c] = up_expected[base + c] = 0.0;
            continue;
        }
        double n = (double)totals[r];
        double n_down = down_totals ? np_min(n, down_totals[r]) : n;
        double observed_of = np_max(n, 1.0);
        for (Py_ssize_t c = 0; c < n_cols; c++) {
            Py_ssize_t i = base + c;
            double p = clip_share(share[i]);
            double p_up = floor_ ? clip_share(np_max(p, floor_[r])) : p;
            double count = (double)counts[i];
            observed[i] = count / observed_of;
            expected[i] = p * n_down;
            up_expected[i] = p_up * n;
            int exact_cell = exact && exact[i];
            /* Most cells of a window count nothing, where neither tail can reach the
             * threshold unless (1-p)^n can: rule that out without log1p or a division
             * first (-log1p(-p) <= p / (1-p), and phi >= 1 only lowers n / phi). */
            if (counts[i] == 0 && !exact_cell && (!phi || phi[i] >= 1.0)
                && n_down * p < 0.999 * limit * LN10 * (1.0 - p))
                continue;
            double x = count, n_up_phi = n, n_down_phi = n_down;
            if (phi) {
                x = count / phi[i];
                n_up_phi = n / phi[i];
                n_down_phi = n_down / phi[i];
            }
            if (exact_cell || upper_may_reach(x, n_up_phi, p_up, limit, mean_side)) {
                /* score.upper_tail: I_p(max(x, 1e-12), n - x + 1) where x > 0, else 1 */
                tail_idx[k_up] = i;
                tail_at[k_up] = np_max(x, 1e-12);
                tail_at[plane + k_up] = n_up_phi - x + 1.0;
                tail_at[2 * plane + k_up] = p_up;
                tail_at[3 * plane + k_up] = x > 0.0;
                k_up++;
            }
            if (exact_cell || lower_may_reach(x, n_down_phi, p, limit, mean_side)) {
                /* score.lower_tail: I_{1-p}(max(n - x, 1e-12), x + 1) where x < n, else 1 */
                Py_ssize_t k = cells + k_down;
                tail_idx[k] = i;
                tail_at[k] = np_max(n_down_phi - x, 1e-12);
                tail_at[plane + k] = x + 1.0;
                tail_at[2 * plane + k] = 1.0 - p;
                tail_at[3 * plane + k] = x < n_down_phi;
                k_down++;
            }
        }
    }
    if (k_up < cells) {
        memmove(tail_idx + k_up, tail_idx + cells, (size_t)k_down * sizeof *tail_idx);
        for (int q = 0; q < 4; q++)
            memmove(tail_at + q * plane + k_up, tail_at + q * plane + cells,
                    (size_t)k_down * sizeof *tail_at);
    }
    result = Py_BuildValue("(nn)", k_up, k_down);
done:
    release(b, N_BUFFERS);
    return result;
}

enum {
    L_ROWS, L_COUNTS, L_TOTALS, L_FROZEN, L_DEBIAS, L_LONG_COUNTS, L_LONG_TOTALS, L_FROZEN_LONG,
    L_KNOWN, L_MEAN, L_STARTED, L_DISP_MEAN, L_DISP_STARTED, L_LONG_RESID, L_LONG_EXPECTED,
    L_BUFFERS
};

/* DenseEWMean.update of one started cell: River's expression. */
static inline double ew_moved(double alpha, double value, double old) {
    return alpha * value + (1.0 - alpha) * old;
}

PyDoc_STRVAR(learn_cells_doc,
"learn_cells(rows, counts, totals, frozen, debias, long_counts, long_totals,\n"
"            frozen_long, known, mean, started, disp_mean, disp_started,\n"
"            long_resid, long_expected, n_cols, stride, alphas, min_expected,\n"
"            max_resid) -> None\n\n"
"Baseline.learn's share learning of the window's rows with requests, `rows`\n"
"(int64), each at its bias correction `debias` (double). counts, frozen,\n"
"long_counts, frozen_long: the window's (r, n_cols) matrices (int64 or bool;\n"
"frozen and frozen_long may be None; long_counts None: no long dispersion);\n"
"totals and long_totals (int64): per row of them. The baseline's matrices\n"
"(known, started, disp_started: bool; mean, disp_mean, long_resid,\n"
"long_expected: double) share one shape of `stride` >= n_cols columns.\n"
"alphas: (share, share dispersion, long dispersion).");

static PyObject *learn_cells(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_ssize_t n_cols, stride;
    double alpha, disp_alpha, long_alpha, min_expected, max_resid;
    if (arity("learn_cells", nargs, 20) < 0 || size_arg(args[15], &n_cols) < 0
        || size_arg(args[16], &stride) < 0
        || !PyArg_ParseTuple(args[17], "ddd", &alpha, &disp_alpha, &long_alpha)
        || double_arg(args[18], &min_expected) < 0 || double_arg(args[19], &max_resid) < 0)
        return NULL;
    if (strided("learn_cells", n_cols, stride) < 0) return NULL;
    Buf b[L_BUFFERS];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    /* the window's rows from totals, the matrices' rows from mean */
    Py_ssize_t matrix_rows;
    if (take(args[2], &b[L_TOTALS], 'i', -1, 0, 0, "totals") < 0
        || take_matrix("learn_cells", args[9], &b[L_MEAN], stride, 1, &matrix_rows) < 0
        || take(args[0], &b[L_ROWS], 'i', -1, 0, 0, "rows") < 0)
        goto done;
    Py_ssize_t n_rows = b[L_TOTALS].view.len / 8, n_learn = b[L_ROWS].view.len / 8;
    if (n_rows > PY_SSIZE_T_MAX / n_cols) {
        PyErr_SetString(PyExc_ValueError, "learn_cells: too many cells");
        goto done;
    }
    Py_ssize_t window_cells = n_rows * n_cols, matrix_cells = matrix_rows * stride;
    int with_long = args[5] != Py_None;
    static const Spec spec[] = {
        /* extent: 0 the window's cells, 1 its rows, 2 the rows learned, 3 the matrices */
        {1, L_COUNTS, 'i', 0, 1, 0, 0, "counts"},
        {3, L_FROZEN, '?', 0, 1, 0, 1, "frozen"},
        {4, L_DEBIAS, 'd', 2, 1, 0, 0, "debias"},
        {7, L_FROZEN_LONG, '?', 0, 1, 0, 1, "frozen_long"},
        {8, L_KNOWN, '?', 3, 1, 1, 0, "known"},
        {10, L_STARTED, '?', 3, 1, 1, 0, "started"},
        {11, L_DISP_MEAN, 'd', 3, 1, 1, 0, "disp_mean"},
        {12, L_DISP_STARTED, '?', 3, 1, 1, 0, "disp_started"},
    };
    const Py_ssize_t extents[] = {window_cells, n_rows, n_learn, matrix_cells};
    if (take_all(args, b, spec, sizeof spec / sizeof spec[0], extents) < 0) goto done;
    if (with_long && (take(args[5], &b[L_LONG_COUNTS], 'i', window_cells, 0, 0, "long_counts") < 0
                      || take(args[6], &b[L_LONG_TOTALS], 'i', n_rows, 0, 0, "long_totals") < 0
                      || take(args[13], &b[L_LONG_RESID], 'd', matrix_cells, 1, 0, "long_resid") < 0
                      || take(args[14], &b[L_LONG_EXPECTED], 'd', matrix_cells, 1, 0,
                              "long_expected") < 0))
        goto done;
    const int64_t *rows = b[L_ROWS].view.buf, *counts = b[L_COUNTS].view.buf;
    const int64_t *totals = b[L_TOTALS].view.buf;
    const char *frozen = b[L_FROZEN].held ? b[L_FROZEN].view.buf : NULL;
    const char *frozen_long = b[L_FROZEN_LONG].held ? b[L_FROZEN_LONG].view.buf : NULL;
    const double *debias = b[L_DEBIAS].view.buf;
    const int64_t *long_counts = with_long ? b[L_LONG_COUNTS].view.buf : NULL;
    const int64_t *long_totals = with_long ? b[L_LONG_TOTALS].view.buf : NULL;
    char *known = b[L_KNOWN].view.buf, *started = b[L_STARTED].view.buf;
    char *disp_started = b[L_DISP_STARTED].view.buf;
    double *mean = b[L_MEAN].view.buf, *disp_mean = b[L_DISP_MEAN].view.buf;
    double *long_resid = with_long ? b[L_LONG_RESID].view.buf : NULL;
    double *long_expected = with_long ? b[L_LONG_EXPECTED].view.buf : NULL;
    if (rows_below("learn_cells", rows, n_learn, n_rows < matrix_rows ? n_rows : matrix_rows) < 0)
        goto done;

    for (Py_ssize_t i = 0; i < n_learn; i++) {
        Py_ssize_t row = (Py_ssize_t)rows[i];
        double total = (double)totals[row], d = debias[i];
        for (Py_ssize_t c = 0; c < n_cols; c++) {
            Py_ssize_t cell = row * n_cols + c, at = row * stride + c;
            double count = (double)counts[cell];
            char kn = known[at] || counts[cell] > 0;
            known[at] = kn;
            if (!kn) continue;
            char fz = frozen && frozen[cell];
            double p = mean[at] / d; /* before this window */
            if (!fz) {
                /* _learn_shares: started first (a new series starts at 0), then the
                 * dispersion from the expectation before the window, then the share */
                started[at] = 1;
                double expected = total * p;
                if (expected >= min_expected && p < 1.0) {
                    double dev = count - expected;
                    double value = np_min(dev * dev / (expected * (1.0 - p)), max_resid);
                    disp_mean[at] = disp_started[at] ? ew_moved(disp_alpha, value, disp_mean[at])
                                                     : value;
                    disp_started[at] = 1;
                }
                mean[at] = ew_moved(alpha, count / total, mean[at]);
            } else if (started[at]) {
                mean[at] = ew_moved(alpha, p, mean[at]); /* held: its own expectation */
            }
            if (!long_counts || fz || (frozen_long && frozen_long[cell])) continue;
            /* _learn_long_dispersion: at the share as learned now (Dispersion.update) */
            double p_now = mean[at] / d;
            if (!(p_now > 0.0 && p_now < 1.0)) continue;
            double expected = (double)long_totals[row] * p_now;
            double dev = (double)long_counts[cell] - expected;
            double resid = np_min(dev * dev / (1.0 - p_now), max_resid * np_max(expected, 1.0));
            long_resid[at] += long_alpha * (resid - long_resid[at]);
            long_expected[at] += long_alpha * (expected - long_expected[at]);
        }
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release(b, L_BUFFERS);
    return result;
}

enum {
    E_ROWS, E_DEBIAS, E_MEAN, E_DISP_MEAN, E_DISP_STARTED, E_LONG_RESID, E_LONG_EXPECTED,
    E_SHARE, E_SHARE_PHI, E_LONG_PHI, E_BUFFERS
};

/* np.clip(v, 1.0, high): NaN stays NaN. */
static inline double clip_phi(double v, double high) {
    if (isnan(v)) return v;
    return v < 1.0 ? 1.0 : (v > high ? high : v);
}

PyDoc_STRVAR(expect_cells_doc,
"expect_cells(rows, debias, mean, disp_mean, disp_started, long_resid,\n"
"             long_expected, n_cols, stride, prior, max_dispersion,\n"
"             share, share_phi, long_phi) -> None\n\n"
"Baseline.expect's cells of `rows` (int64, each < the matrices' rows), in\n"
"their order: share = mean / debias (one double per row), share_phi =\n"
"clip(disp_mean, 1, max_dispersion) where disp_started (bool) else 1, long_phi\n"
"= clip((long_resid + prior) / (long_expected + prior), 1, max_dispersion).\n"
"The matrices share one shape of `stride` >= n_cols columns; the outputs are\n"
"len(rows) * n_cols doubles.");

static PyObject *expect_cells(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_ssize_t n_cols, stride;
    double prior, high;
    if (arity("expect_cells", nargs, 14) < 0 || size_arg(args[7], &n_cols) < 0
        || size_arg(args[8], &stride) < 0 || double_arg(args[9], &prior) < 0
        || double_arg(args[10], &high) < 0)
        return NULL;
    if (strided("expect_cells", n_cols, stride) < 0) return NULL;
    Buf b[E_BUFFERS];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    Py_ssize_t matrix_rows;
    if (take(args[0], &b[E_ROWS], 'i', -1, 0, 0, "rows") < 0
        || take_matrix("expect_cells", args[2], &b[E_MEAN], stride, 0, &matrix_rows) < 0)
        goto done;
    Py_ssize_t n_rows = b[E_ROWS].view.len / 8;
    if (n_rows > PY_SSIZE_T_MAX / n_cols) {
        PyErr_SetString(PyExc_ValueError, "expect_cells: too many cells");
        goto done;
    }
    Py_ssize_t matrix_cells = matrix_rows * stride, cells = n_rows * n_cols;
    static const Spec spec[] = { /* extent: 0 the rows asked, 1 their cells, 2 the matrices */
        {1, E_DEBIAS, 'd', 0, 1, 0, 0, "debias"},
        {3, E_DISP_MEAN, 'd', 2, 1, 0, 0, "disp_mean"},
        {4, E_DISP_STARTED, '?', 2, 1, 0, 0, "disp_started"},
        {5, E_LONG_RESID, 'd', 2, 1, 0, 0, "long_resid"},
        {6, E_LONG_EXPECTED, 'd', 2, 1, 0, 0, "long_expected"},
        {11, E_SHARE, 'd', 1, 1, 1, 0, "share"},
        {12, E_SHARE_PHI, 'd', 1, 1, 1, 0, "share_phi"},
        {13, E_LONG_PHI, 'd', 1, 1, 1, 0, "long_phi"},
    };
    const Py_ssize_t extents[] = {n_rows, cells, matrix_cells};
    if (take_all(args, b, spec, sizeof spec / sizeof spec[0], extents) < 0) goto done;
    const int64_t *rows = b[E_ROWS].view.buf;
    const double *debias = b[E_DEBIAS].view.buf, *mean = b[E_MEAN].view.buf;
    const double *disp_mean = b[E_DISP_MEAN].view.buf;
    const char *disp_started = b[E_DISP_STARTED].view.buf;
    const double *long_resid = b[E_LONG_RESID].view.buf;
    const double *long_expected = b[E_LONG_EXPECTED].view.buf;
    double *share = b[E_SHARE].view.buf, *share_phi = b[E_SHARE_PHI].view.buf;
    double *long_phi = b[E_LONG_PHI].view.buf;
    if (rows_below("expect_cells", rows, n_rows, matrix_rows) < 0) goto done;
    for (Py_ssize_t i = 0; i < n_rows; i++) {
        Py_ssize_t from = (Py_ssize_t)rows[i] * stride, to = i * n_cols;
        double d = debias[i];
        for (Py_ssize_t c = 0; c < n_cols; c++) {
            share[to + c] = mean[from + c] / d;
            share_phi[to + c] = disp_started[from + c] ? clip_phi(disp_mean[from + c], high) : 1.0;
            long_phi[to + c] = clip_phi(
                (long_resid[from + c] + prior) / (long_expected[from + c] + prior), high);
        }
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release(b, E_BUFFERS);
    return result;
}

PyDoc_STRVAR(rises_possible_doc,
"rises_possible(horizons, minute, minute_totals, minute_span, warm, learned, floor,\n"
"               ref_counts, ref_totals, ref_cols, alpha, row_ids, n_cols,\n"
"               recent_rate) -> bool\n\n"
"Whether a cell of the r rows of n_cols columns may pass a horizon's rise gates,\n"
"as HorizonJudge._long_horizons applies them: warm row with a request in the\n"
"minute, not ignored, rises looked at (`up`), count - expected >= min_excess,\n"
"count / expected >= min_ratio (expected 0: any ratio), and the horizon before\n"
"(the minute for the first) in excess at recent_rate of the horizon's rate;\n"
"expected = total * clip(max(p, floor), 1e-12, 1 - 1e-12). horizons: per horizon\n"
"(sums int64 r*c, totals int64 r, min_excess and min_ratio double r*c,\n"
"long_reference, ignore and up bool r*c, span); minute: the minute's sums (int64\n"
"r*c) and minute_totals (int64 r); warm: bool r. p: `learned` (double r*c), or for\n"
"a long-reference horizon the long reference's share of row row_ids[i] (int64 r;\n"
"None: i) from ref_counts (double, rows of ref_cols) over ref_totals (double),\n"
"floored at 1 / (total / alpha + 1); `learned` where that row has no requests or\n"
"is beyond the sums (a column beyond them counts 0).");

static PyObject *rises_possible(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_ssize_t minute_span, ref_cols, n_cols;
    double alpha, recent_rate;
    if (arity("rises_possible", nargs, 14) < 0 || size_arg(args[3], &minute_span) < 0
        || size_arg(args[9], &ref_cols) < 0 || double_arg(args[10], &alpha) < 0
        || size_arg(args[12], &n_cols) < 0 || double_arg(args[13], &recent_rate) < 0)
        return NULL;
    PyObject *horizons = args[0];
    if (!PyTuple_Check(horizons) || PyTuple_GET_SIZE(horizons) > 8) {
        PyErr_SetString(PyExc_TypeError, "rises_possible: horizons must be a tuple of at most 8");
        return NULL;
    }
    Py_ssize_t n_horizons = PyTuple_GET_SIZE(horizons);
    if (n_cols <= 0 || ref_cols < 0) {
        PyErr_SetString(PyExc_ValueError, "rises_possible: need n_cols > 0, ref_cols >= 0");
        return NULL;
    }
    enum { R_MINUTE, R_MINUTE_TOTALS, R_WARM, R_LEARNED, R_FLOOR, R_REF_COUNTS, R_REF_TOTALS,
           R_ROW_IDS, R_FIXED };
    enum { H_SUMS, H_TOTALS, H_EXCESS, H_RATIO, H_IGNORE, H_UP, H_EACH };
    Buf b[R_FIXED + 8 * H_EACH];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    int uses_reference[8] = {0};
    double span[8] = {0};
    if (take(args[6], &b[R_FLOOR], 'd', -1, 0, 0, "floor") < 0) goto done;
    Py_ssize_t n_rows = b[R_FLOOR].view.len / 8;
    if (n_rows > PY_SSIZE_T_MAX / n_cols) {
        PyErr_SetString(PyExc_ValueError, "rises_possible: too many cells");
        goto done;
    }
    Py_ssize_t cells = n_rows * n_cols;
    if (take(args[1], &b[R_MINUTE], 'i', cells, 0, 0, "minute") < 0
        || take(args[2], &b[R_MINUTE_TOTALS], 'i', n_rows, 0, 0, "minute_totals") < 0
        || take(args[4], &b[R_WARM], '?', n_rows, 0, 0, "warm") < 0
        || take(args[5], &b[R_LEARNED], 'd', cells, 0, 0, "learned") < 0
        || take(args[7], &b[R_REF_COUNTS], 'd', -1, 0, 0, "ref_counts") < 0
        || take(args[8], &b[R_REF_TOTALS], 'd', -1, 0, 0, "ref_totals") < 0
        || take(args[11], &b[R_ROW_IDS], 'i', n_rows, 0, 1, "row_ids") < 0)
        goto done;
    Py_ssize_t ref_rows = b[R_REF_TOTALS].view.len / 8;
    if (ref_cols > 0 && ref_rows > PY_SSIZE_T_MAX / ref_cols) {
        PyErr_SetString(PyExc_ValueError, "rises_possible: too many reference cells");
        goto done;
    }
    if (b[R_REF_COUNTS].view.len / 8 != ref_rows * ref_cols) {
        PyErr_SetString(PyExc_ValueError,
                        "rises_possible: ref_counts must hold ref_totals' rows of ref_cols");
        goto done;
    }
    for (Py_ssize_t h = 0; h < n_horizons; h++) {
        PyObject *item = PyTuple_GET_ITEM(horizons, h);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 8) {
            PyErr_SetString(PyExc_TypeError,
                            "rises_possible: each horizon is (sums, totals, min_excess, "
                            "min_ratio, long_reference, ignore, up, span)");
            goto done;
        }
        Buf *hb = &b[R_FIXED + h * H_EACH];
        if (take(PyTuple_GET_ITEM(item, 0), &hb[H_SUMS], 'i', cells, 0, 0, "sums") < 0
            || take(PyTuple_GET_ITEM(item, 1), &hb[H_TOTALS], 'i', n_rows, 0, 0, "totals") < 0
            || take(PyTuple_GET_ITEM(item, 2), &hb[H_EXCESS], 'd', cells, 0, 0, "min_excess") < 0
            || take(PyTuple_GET_ITEM(item, 3), &hb[H_RATIO], 'd', cells, 0, 0, "min_ratio") < 0
            || take(PyTuple_GET_ITEM(item, 5), &hb[H_IGNORE], '?', cells, 0, 0, "ignore") < 0
            || take(PyTuple_GET_ITEM(item, 6), &hb[H_UP], '?', cells, 0, 0, "up") < 0)
            goto done;
        uses_reference[h] = PyObject_IsTrue(PyTuple_GET_ITEM(item, 4));
        if (uses_reference[h] < 0) goto done;
        Py_ssize_t windows;
        if (size_arg(PyTuple_GET_ITEM(item, 7), &windows) < 0) goto done;
        span[h] = (double)windows;
    }
    const int64_t *minute = b[R_MINUTE].view.buf, *minute_totals = b[R_MINUTE_TOTALS].view.buf;
    const char *warm = b[R_WARM].view.buf;
    const double *learned = b[R_LEARNED].view.buf, *floor_ = b[R_FLOOR].view.buf;
    const double *ref_counts = b[R_REF_COUNTS].view.buf, *ref_totals = b[R_REF_TOTALS].view.buf;
    const int64_t *row_ids = b[R_ROW_IDS].held ? b[R_ROW_IDS].view.buf : NULL;
    int possible = 0;
    for (Py_ssize_t r = 0; r < n_rows && !possible; r++) {
        double minute_n = (double)minute_totals[r];
        /* a scope without a request in the last minute is not still receiving evidence */
        if (!(warm[r] && minute_n > 0.0)) continue;
        int64_t ref_row = row_ids ? row_ids[r] : r;
        double ref_total = (ref_row >= 0 && ref_row < ref_rows) ? ref_totals[ref_row] : 0.0;
        for (Py_ssize_t c = 0; c < n_cols && !possible; c++) {
            Py_ssize_t cell = r * n_cols + c;
            /* each horizon is judged against the one before it, the minute first */
            double before_count = (double)minute[cell];
            double before_up = minute_n * clip_share(np_max(learned[cell], floor_[r]));
            double before_span = (double)minute_span;
            for (Py_ssize_t h = 0; h < n_horizons; h++) {
                const Buf *hb = &b[R_FIXED + h * H_EACH];
                double count = (double)((const int64_t *)hb[H_SUMS].view.buf)[cell];
                double p = learned[cell];
                if (uses_reference[h] && ref_total > 0.0) {
                    /* LongReference.up_share_at without the same-hour part (its sums
                     * grow with zeros to a column they lack) */
                    double counted = c < ref_cols ? ref_counts[ref_row * ref_cols + c] : 0.0;
                    p = np_max(counted / ref_total, 1.0 / (ref_total / alpha + 1.0));
                }
                double total = (double)((const int64_t *)hb[H_TOTALS].view.buf)[r];
                double expected = total * clip_share(np_max(p, floor_[r]));
                double min_excess = ((const double *)hb[H_EXCESS].view.buf)[cell];
                double ratio = expected > 0.0 ? count / expected : INFINITY;
                if (count - expected >= min_excess
                    && ratio >= ((const double *)hb[H_RATIO].view.buf)[cell]
                    && !((const char *)hb[H_IGNORE].view.buf)[cell]
                    && ((const char *)hb[H_UP].view.buf)[cell]
                    && (before_count - before_up) * span[h]
                           >= recent_rate * (count - expected) * before_span) {
                    possible = 1;
                    break;
                }
                before_count = count;
                before_up = expected;
                before_span = span[h];
            }
        }
    }
    result = PyBool_FromLong(possible);
done:
    release(b, R_FIXED + 8 * H_EACH);
    return result;
}

PyDoc_STRVAR(ew_rows_doc,
"ew_rows(rows, values, totals, sums, row_totals, n_cols, stride, alpha) -> None\n\n"
"For each of `rows` (int64, ascending, each < the sums' rows): its first n_cols\n"
"cells of `sums` (double, rows of `stride` >= n_cols columns) move by alpha towards\n"
"its row of `values` (double, len(rows) * n_cols), old + alpha * (value - old), and\n"
"its `row_totals` (double, one per row of sums) towards `totals` (int64) alike.");

static PyObject *ew_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_ssize_t n_cols, stride;
    double alpha;
    if (arity("ew_rows", nargs, 8) < 0 || size_arg(args[5], &n_cols) < 0
        || size_arg(args[6], &stride) < 0 || double_arg(args[7], &alpha) < 0)
        return NULL;
    if (strided("ew_rows", n_cols, stride) < 0) return NULL;
    enum { W_ROWS, W_VALUES, W_TOTALS, W_SUMS, W_ROW_TOTALS, W_BUFFERS };
    Buf b[W_BUFFERS];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    if (take(args[0], &b[W_ROWS], 'i', -1, 0, 0, "rows") < 0
        || take(args[4], &b[W_ROW_TOTALS], 'd', -1, 1, 0, "row_totals") < 0)
        goto done;
    Py_ssize_t n_rows = b[W_ROWS].view.len / 8, matrix_rows = b[W_ROW_TOTALS].view.len / 8;
    if (n_rows > PY_SSIZE_T_MAX / n_cols || matrix_rows > PY_SSIZE_T_MAX / stride) {
        PyErr_SetString(PyExc_ValueError, "ew_rows: too many cells");
        goto done;
    }
    static const Spec spec[] = { /* extent: 0 the rows, 1 their cells, 2 the sums' cells */
        {1, W_VALUES, 'd', 1, 1, 0, 0, "values"},
        {2, W_TOTALS, 'i', 0, 1, 0, 0, "totals"},
        {3, W_SUMS, 'd', 2, 1, 1, 0, "sums"},
    };
    const Py_ssize_t extents[] = {n_rows, n_rows * n_cols, matrix_rows * stride};
    if (take_all(args, b, spec, sizeof spec / sizeof spec[0], extents) < 0) goto done;
    const int64_t *rows = b[W_ROWS].view.buf, *totals = b[W_TOTALS].view.buf;
    const double *values = b[W_VALUES].view.buf;
    double *sums = b[W_SUMS].view.buf, *row_totals = b[W_ROW_TOTALS].view.buf;
    if (rows_below("ew_rows", rows, n_rows, matrix_rows) < 0) goto done;
    for (Py_ssize_t i = 0; i < n_rows; i++) {
        Py_ssize_t row = (Py_ssize_t)rows[i];
        double *at = sums + row * stride;
        const double *value = values + i * n_cols;
        for (Py_ssize_t c = 0; c < n_cols; c++) at[c] = at[c] + alpha * (value[c] - at[c]);
        row_totals[row] = row_totals[row] + alpha * ((double)totals[i] - row_totals[row]);
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release(b, W_BUFFERS);
    return result;
}

static PyMethodDef methods[] = {
    {"ew_rows", (PyCFunction)(void (*)(void))ew_rows, METH_FASTCALL, ew_rows_doc},
    {"rises_possible", (PyCFunction)(void (*)(void))rises_possible, METH_FASTCALL,
     rises_possible_doc},
    {"expect_cells", (PyCFunction)(void (*)(void))expect_cells, METH_FASTCALL,
     expect_cells_doc},
    {"share_cells", (PyCFunction)(void (*)(void))share_cells, METH_FASTCALL, share_cells_doc},
    {"learn_cells", (PyCFunction)(void (*)(void))learn_cells, METH_FASTCALL, learn_cells_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "The core's per-cell passes in C (see statuswatch.core.kernels).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
