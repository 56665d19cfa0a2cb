#!/usr/bin/python3
"""remez.py - minimax polynomial coefficients for dnc's vector math.

    /usr/bin/python3 tools/remez.py compiler/vmath_coef.h

Each approximation below is a polynomial p(t) = c0 + c1 t + ... + cn t^n
that minimises the maximum weighted error max |w(t) (g(t) - p(t))| over an
interval, found by the Remez exchange algorithm in 60-digit arithmetic
(mpmath): solve for the polynomial that equioscillates on n + 2 reference
points, move the references to the extrema of the new error curve, repeat
until the extrema are equal to 1e-8. The weight is 1/g (relative error)
unless stated. The coefficients are then rounded to float for the f32
functions and to double for the f64 ones (`..._p64`); the real error,
rounding included, is measured by `make check-math` over every f32 input
(docs/accuracy.md).

Why each function of t (the reductions are in compiler/vmath.c):
  exp, expm1  expm1(r) = r + r^2 P(r), |r| <= ln2/2: P fits (expm1(r)-r)/r^2;
              f32 exp is 1 + r (1 + r P(r)) with a P one degree lower
  log, log1p  log1p(f) = f - f^2/2 + f^3 Q(f), f in [sqrt(1/2)-1, sqrt(2)-1];
              f64: log1p(f) = 2s + s^3 L(s^2) with s = f/(2+f)
  tanh        tanh(x) = x + x^3 T(x^2) for |x| <= 1: T(u) on u = x^2; and
              with 16-lane vectors a table of 32 pieces (tanh_table below)
  erf         erf(x) = x (c0 + x^2 E(x^2)) for |x| <= 1, c0 = 2/sqrt(pi) as a
              sum of two floats: E(u) = (erf(sqrt u)/sqrt u - c0)/u
  erf (tail)  erf(x) = 1 - exp(-x^2) F(x - 2.46) for x in [1, 3.92], F =
              erfc(x) exp(x^2) (erf is 1 in f32 beyond 3.92); with 16-lane
              vectors a table of 32 pieces instead (erf_table below)
  bf16, f16   exp's P and erf's E and F again with fewer terms, for the
              kernels whose results are rounded to 8 or 11 bits
              (`..._bf16`, `..._f16`); bf16's erf is one polynomial,
              x (c0 + u E(u - 5.12)) up to 3.2; tanh there is -E/(2 + E) with
              E = expm1(-2|x|) from the same exp, so it has no polynomial
              of its own
  erfc        erfc(x) = exp(-x^2) C(1/x - m) / x for x in [0.5, 10]: C is
              erfc(x) exp(x^2) x, smooth in 1/x, in two pieces of the same
              degree (x below and above 2, chosen per lane), each centred
              (m) so that its coefficients stay small
  sinh        sinh(x) = x + x^3 S(x^2) for |x| <= 1 (exp above)
  atan        atan(x) = x + x^3 A(x^2) for |x| <= 1 (1/x reduction above)
  sin, cos    sin(r) = r + r^3 S(r^2), cos(r) = 1 - r^2/2 + r^4 C(r^2),
              |r| <= pi/4
  f64         the same forms with double coefficients (`..._64`); erfc's
              tail in four pieces of 1/x, atan on |t| <= tan(pi/8)
"""
import sys

import mpmath as mp

mp.mp.dps = 60


def remez(g, a, b, n, weight=None, grid=3000, iters=40):
    """Degree-n minimax polynomial for g on [a, b]; returns (coeffs, err)."""
    a, b = mp.mpf(a), mp.mpf(b)
    w = weight or (lambda t: 1 / abs(g(t)))
    m = n + 2
    ref = [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * i / (m - 1)) for i in range(m)]
    pts = [a + (b - a) * i / (grid - 1) for i in range(grid)]
    gv = [g(t) for t in pts]
    wv = [w(t) for t in pts]
    err = None
    for _ in range(iters):
        A = mp.matrix(m, m)
        rhs = mp.matrix(m, 1)
        for i, t in enumerate(ref):
            for k in range(n + 1):
                A[i, k] = t ** k
            A[i, n + 1] = (-1) ** i / w(t)
            rhs[i] = g(t)
        sol = mp.lu_solve(A, rhs)
        c = [sol[k] for k in range(n + 1)]
        E = abs(sol[n + 1])

        def e_at(i):
            t = pts[i]
            return (gv[i] - mp.polyval(c[::-1], t)) * wv[i]

        ev = [e_at(i) for i in range(grid)]
        # local extrema of the error on the grid, endpoints included
        ext = [0]
        for i in range(1, grid - 1):
            if (ev[i] - ev[i - 1]) * (ev[i + 1] - ev[i]) <= 0:
                ext.append(i)
        ext.append(grid - 1)
        # one point per run of equal sign: the largest
        runs = []
        for i in ext:
            if runs and mp.sign(ev[i]) == mp.sign(ev[runs[-1]]):
                if abs(ev[i]) > abs(ev[runs[-1]]):
                    runs[-1] = i
            else:
                runs.append(i)
        while len(runs) > m:  # drop the smallest end
            if abs(ev[runs[0]]) < abs(ev[runs[-1]]):
                runs.pop(0)
            else:
                runs.pop()
        err = max(abs(v) for v in ev)
        if len(runs) < m:
            break
        ref = [pts[i] for i in runs]
        if err / E - 1 < mp.mpf("1e-8"):
            break
    return c, err


def f32(v):
    """v rounded to float"""
    import struct
    return struct.unpack("f", struct.pack("f", float(v)))[0]


def as_c(v, prec):
    return float.hex(f32(v) if prec == 32 else float(v))


def emit(name, coeffs, err, prec, what):
    vals = ", ".join(as_c(v, prec) for v in coeffs)
    print(f"/* {what}; max weighted error {mp.nstr(err, 3)} */")
    print(f"static const double {name}[{len(coeffs)}] = {{{vals}}};")


def accurate_center(lo, hi, margin, fn):
    """Gal's accurate tables: among the 400000 floats nearest the middle of
    [lo + margin, hi - margin], the first whose fn (an array function, in
    double or long double) lies nearest a float, in that float's ulps;
    returns (center, fn(center) rounded to float)."""
    import numpy as np
    mid = (lo + hi) / 2
    ulp = float(np.spacing(np.float32(mid)))
    cand = (np.float32(mid) + np.arange(-200000, 200000, dtype=np.float64) * ulp).astype(np.float32)
    cand = cand[(cand > lo + margin) & (cand < hi - margin)]
    v = fn(cand)
    v32 = v.astype(np.float32)
    off = np.abs(v - v32.astype(v.dtype)) / np.spacing(v32).astype(v.dtype)
    i = int(np.argmin(off))
    return float(cand[i]), float(v32[i])


def emit_table(fn, comment, rows, coef_name, coefs):
    """The rows of floats, one a piece (16 or 32), of a piecewise table
    (vm_<fn>_tab_<name>), then its coefficients' rows
    (vm_<fn>_tab_<coef_name>[k][piece])."""
    def row(vals):
        return ", ".join(as_c(v, 32) + "f" for v in vals)
    n = len(coefs)
    print(f"/* {comment} */")
    for name, vals in rows:
        print(f"static const float vm_{fn}_tab_{name}[{n}] = {{{row(vals)}}};")
    print(f"static const float vm_{fn}_tab_{coef_name}[{len(coefs[0])}][{n}] = {{")
    for j in range(len(coefs[0])):
        print(f"    {{{row(c[j] for c in coefs)}}},")
    print("};")


def tanh_table():
    """f32 tanh with 16-lane vectors (vmath.c, vm_tanh_table): 32 pieces
    of |x|, picked by i = min(floor(4|x|), 31), each a polynomial of
    degree 6 in t = |x| - center[i]:
      pieces 0 and 1,     tanh = t + t^2 R(t), center 0, R fitting
      [0, 1/4), [1/4, 1/2): (tanh(t) - t)/t^2 (degree 4), weighted by
                          t^2/tanh
      pieces 2-30:        [i/4, i/4 + 1/4); piece 31: [7.75, 9.1] (|x| is
                          clamped to 9.1, where tanh is 1 in f32)
                          tanh = c0 + t (c1 + t R(t)), R of degree 4
    (round five's 16 pieces of width 1/2 took R to degree 6; round
    eighteen halved the width: two rows and two multiply-adds fewer)
    Each center is the float near the piece's middle whose tanh is nearest
    to a float (Gal's accurate tables: found among 400000 floats with
    long double's tanh), so that c0, that float, is within 4e-6 ulp of
    tanh(center) and adds nothing to the error; t is exact (Sterbenz).
    (tanh(c + t) - c0)/t is fitted with weight |t|/tanh, the relative error
    of the whole. Written as rows of 32 floats: center, w (1 for pieces 0
    and 1), c0, c1 (0 for them) and R's coefficients; the kernel computes
    fma(t, fma(t, R, c1), fma(w, t, c0)) with each row a two-table
    permute (vpermi2ps)."""
    import numpy as np
    segs = [(0.0, 0.25)] + [(k / 4, k / 4 + 0.25) for k in range(1, 31)] + [(7.75, 9.1)]
    center, w, c0s, c1s, R = [], [], [], [], []
    worst = 0
    for k, (lo, hi) in enumerate(segs):
        if k <= 1:
            # pieces 0 and 1 (|x| < 1/2) both t + t^2 R(t), center 0: in
            # the c0 + t (c1 + t R) form, piece 1's t (to -1/8) carried V's
            # rounding into a result half c0's size (0.827 ulp at 0.2502,
            # where round five's piece 0 reached 1/2 and held 0.802)
            def g0(t):
                return (mp.tanh(t) - t) / t ** 2 if t > 1e-30 else -t / 3

            def w0(t):
                return t ** 2 / mp.tanh(t) if t > 1e-30 else mp.mpf(1e-30)
            c, e = remez(g0, lo, hi, 4, weight=w0)
            center.append(0.0), w.append(1.0), c0s.append(0.0), c1s.append(0.0)
            R.append([f32(x) for x in c])
            worst = max(worst, e)
            continue
        cf, c0 = accurate_center(lo, hi, 0.02, lambda c: np.tanh(c.astype(np.longdouble)))
        cm, c0m = mp.mpf(cf), mp.mpf(c0)

        def g(t):
            return (mp.tanh(cm + t) - c0m) / t if abs(t) > 1e-40 else 1 - mp.tanh(cm) ** 2

        def wk(t):
            return max(abs(t), mp.mpf(1e-30)) / mp.tanh(cm + t)
        c, e = remez(g, mp.mpf(lo) - cm, mp.mpf(hi) - cm, 5, weight=wk)
        worst = max(worst, e)
        center.append(cf), w.append(0.0), c0s.append(c0)
        c1s.append(f32(c[0]))
        R.append([f32(x) for x in c[1:]])

    emit_table("tanh", f"tanh(|x|) in 32 pieces of degree 6 (tanh_table); max weighted error "
               f"{mp.nstr(worst, 3)}: center, w, c0, c1, then R's coefficients",
               (("center", center), ("w", w), ("c0", c0s), ("c1", c1s)), "r", R)


def erf_table():
    """f32 erf with 16-lane vectors (vmath.c, vm_erf_table, and the layer
    backward's erf for dgamma, vm_erf_table_dgamma): 32 pieces of |x|
    (clamped to 3.95, where erf is 1 in f32 from 3.92), i = floor(8|x|),
    each of degree 5 in t = |x| - center[i]:
      piece 0, [0, 1/8):  erf = fma(t, c0hi, t P(t)) with c0hi 2/sqrt(pi)
                          rounded to float and P = c0lo + t Q(t), c0lo
                          2/sqrt(pi) - c0hi rounded to float and Q
                          fitting (erf(t)/t - c0hi - c0lo)/t;
                          the dgamma form adds c0hi to that coefficient
      pieces 1-31:        [i/8, i/8 + 1/8), the last to 3.95:
                          erf = c0 + t P(t), P fitting (erf(c + t) - c0)/t
    with the centers chosen as tanh_table's (erf(center) within about
    1e-5 ulp of a float c0, found with double's erf among 400000 floats),
    weights making the error relative to erf, P of degree 4. Rows: center,
    c0 (0 for piece 0), then P's coefficients, each a two-table permute
    (vpermi2ps) in the kernel. Round five's 16 pieces of width 1/4 took P
    to degree 6 and three rows more (m, a and n: piece 0's form);
    docs/performance.md, round eighteen."""
    import math
    import numpy as np
    c0hi = f32(2 / mp.sqrt(mp.pi))
    c0lo = f32(2 / mp.sqrt(mp.pi) - c0hi)
    w = 0.125
    segs = [(k * w, k * w + w) for k in range(31)] + [(31 * w, 3.95)]
    center, c0s, P = [], [], []
    worst = 0
    for k, (lo, hi) in enumerate(segs):
        if k == 0:
            # P = c0lo + t Q(t): P(0) is 2/sqrt(pi)'s low part exactly,
            # which holds erf's error where x c0lo is subnormal (a fitted
            # P(0) 1 % off it took that maximum from 1.000 to 1.005 ulp)
            def g0(t):
                return (mp.erf(t) / t - c0hi - c0lo) / t if t > 1e-30 else mp.mpf(0)

            def w0(t):
                return t * t / mp.erf(t) if t > 1e-30 else mp.mpf(1e-30)
            c, e = remez(g0, 0, hi, 3, weight=w0)
            center.append(0.0), c0s.append(0.0)
            P.append([c0lo] + [f32(x) for x in c])
            worst = max(worst, e)
            continue
        # the last piece's center lies below it, in piece 30: on [3.875,
        # 3.95] erf is 1 - 2e-8 to 1 - 4e-8, no float within 1e-5 ulp of
        # it, and a center there left c0 a third of an ulp off erf, a pole
        # in (erf(c + t) - c0)/t that the fit carried to 1.000 ulp at the
        # clamp (erf rounds to 1 from 3.92)
        clo = lo - w if k == 31 else lo
        bc, b0 = accurate_center(clo, lo + w, 0.015, np.vectorize(math.erf, otypes=[np.float64]))
        cm, c0m = mp.mpf(bc), mp.mpf(b0)

        def g(t):
            return (mp.erf(cm + t) - c0m) / t if abs(t) > 1e-40 else 2 / mp.sqrt(mp.pi) * mp.exp(-cm ** 2)

        def wk(t):
            return max(abs(t), mp.mpf(1e-30)) / mp.erf(cm + t)
        c, e = remez(g, mp.mpf(lo) - cm, mp.mpf(hi) - cm, 4, weight=wk)
        worst = max(worst, e)
        center.append(bc), c0s.append(b0)
        P.append([f32(x) for x in c])
    emit_table("erf", f"erf(|x|) in 32 pieces of degree 5 (erf_table); max weighted error "
               f"{mp.nstr(worst, 3)}: center, c0, then P's coefficients",
               (("center", center), ("c0", c0s)), "p", P)


def main():
    ln2h = mp.log(2) / 2
    print("/* generated by tools/remez.py: minimax coefficients, lowest degree")
    print(" * first (c0 + c1 t + ...). Regenerate with")
    print(" *   /usr/bin/python3 tools/remez.py compiler/vmath_coef.h */")

    def expm1_p(r):
        return (mp.expm1(r) - r) / r ** 2 if abs(r) > 1e-25 else mp.mpf(1) / 2
    for prec, deg in ((32, 5), (64, 10)):
        c, e = remez(expm1_p, -ln2h * mp.mpf("1.0005"), ln2h * mp.mpf("1.0005"), deg)
        emit(f"vm_exp_p{prec}", c, e, prec, "(expm1(r) - r)/r^2, |r| <= ln2/2")
    # exp itself, f32: 1 + r (1 + r P(r)) (vmath.c, exp_r), P weighted by
    # how its error reaches exp (r^2 dP / exp(r)), not relative to P: a
    # degree lower for the same error in exp
    c, e = remez(expm1_p, -ln2h * mp.mpf("1.0005"), ln2h * mp.mpf("1.0005"), 4,
                 weight=lambda r: r ** 2 / mp.exp(r))
    emit("vm_exp_e32", c, e, 32,
         "(expm1(r) - r)/r^2, |r| <= ln2/2, error weighted as it reaches exp(r)")

    # bf16 and f16 kernels (precision-matched math, vmath.c): the same
    # forms with fewer terms, each enough for the 8 (bf16) or 11 (f16)
    # bits the result keeps, with a margin of 2^-8 ulp or so: the degree
    # is the smallest whose error, as it reaches the function's result,
    # is below 2^-16 (bf16) or 2^-20 (f16) relative
    for tag, deg in (("bf16", 2), ("f16", 3)):
        c, e = remez(expm1_p, -ln2h * mp.mpf("1.0005"), ln2h * mp.mpf("1.0005"), deg)
        emit(f"vm_exp_p32_{tag}", c, e, 32, f"(expm1(r) - r)/r^2 for {tag} kernels")

    def log_q(f):
        return (mp.log1p(f) - f + f ** 2 / 2) / f ** 3 if abs(f) > 1e-25 else mp.mpf(1) / 3
    lo, hi = mp.sqrt(0.5) - 1, mp.sqrt(2) - 1
    for prec, deg in ((32, 8),):
        c, e = remez(log_q, lo, hi, deg)
        emit(f"vm_log_q{prec}", c, e, prec, "(log1p(f) - f + f^2/2)/f^3")

    # f64 log: log1p(f) = 2s + s^3 L(s^2), s = f/(2+f), |s| <= 0.1716
    def log_l(u):
        sq = mp.sqrt(u)
        return (2 * mp.atanh(sq) - 2 * sq) / sq ** 3 if u > 1e-50 else mp.mpf(2) / 3
    smax = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)
    c, e = remez(log_l, 0, smax ** 2 * mp.mpf("1.001"), 8)
    emit("vm_log_l64", c, e, 64, "(2 atanh(s) - 2s)/s^3, u = s^2 <= 0.0295")

    def tanh_t(u):
        x = mp.sqrt(u)
        return (mp.tanh(x) - x) / x ** 3 if u > 1e-50 else -mp.mpf(1) / 3
    # f32: weighted by how T's error reaches tanh (x^3 dT / tanh(x)), the
    # error that counts; relative to T itself degree 8 was needed, against
    # tanh degree 6 is 2^-27.7, far below an f32 ulp (2^-24)
    def tanh_weight(u):
        return u ** mp.mpf(1.5) / mp.tanh(mp.sqrt(u)) if u > 1e-30 else mp.mpf(1e-30)
    c, e = remez(tanh_t, 0, 1, 6, weight=tanh_weight)
    emit("vm_tanh_t32", c, e, 32, "(tanh(x) - x)/x^3, u = x^2 <= 1, error weighted as it reaches tanh")
    c, e = remez(tanh_t, 0, 1, 15)
    emit("vm_tanh_t64", c, e, 64, "(tanh(x) - x)/x^3, u = x^2 <= 1")
    tanh_table()
    erf_table()

    c0 = 2 / mp.sqrt(mp.pi)

    def erf_e(u):
        x = mp.sqrt(u)
        return (mp.erf(x) / x - c0) / u if u > 1e-50 else -c0 / 3
    # weighted as E's error reaches erf (x u dE / erf(x)): degree 5, 2^-29.5
    def erf_e_weight(u):
        return u / (mp.erf(mp.sqrt(u)) / mp.sqrt(u)) if u > 1e-30 else mp.mpf(1e-30)
    for prec, deg in ((32, 5),):
        c, e = remez(erf_e, 0, 1, deg, weight=erf_e_weight)
        emit(f"vm_erf_e{prec}", c, e, prec, "(erf(x)/x - 2/sqrt(pi))/x^2, u = x^2 <= 1, "
             "error weighted as it reaches erf")
        hi = float.fromhex(as_c(c0, 32))
        print(f"static const double vm_erf_c0hi = {as_c(hi, 32)}, "
              f"vm_erf_c0lo = {as_c(c0 - hi, 32)}; /* 2/sqrt(pi) */")

    for name, lo, hi in (("a", "0.5", "2"), ("b", "0.099", "0.5")):
        # the centre, a float, so that t = 1/x - mid is what the kernel computes
        mid = mp.mpf(float.fromhex(as_c((mp.mpf(lo) + mp.mpf(hi)) / 2, 32)))

        def erfc_c(t, mid=mid):
            x = 1 / (t + mid)
            return mp.erfc(x) * mp.exp(x * x) * x
        c, e = remez(erfc_c, mp.mpf(lo) - mid, mp.mpf(hi) - mid, 12)
        emit(f"vm_erfc_{name}32", c, e, 32,
             f"erfc(x) exp(x^2) x, t = 1/x - {mp.nstr(mid, 5)}, 1/x in [{lo}, {hi}]")
        print(f"static const double vm_erfc_{name}32_mid = {as_c(mid, 32)};")

    for tag, deg in (("bf16", 3), ("f16", 4)):
        c, e = remez(erf_e, 0, 1, deg)
        emit(f"vm_erf_e32_{tag}", c, e, 32, f"(erf(x)/x - 2/sqrt(pi))/x^2 for {tag} kernels")

    def sinh_s(u):
        x = mp.sqrt(u)
        return (mp.sinh(x) - x) / x ** 3 if u > 1e-50 else mp.mpf(1) / 6
    for prec, deg in ((32, 4),):
        c, e = remez(sinh_s, 0, 1, deg)
        emit(f"vm_sinh_s{prec}", c, e, prec, "(sinh(x) - x)/x^3, u = x^2 <= 1")

    # erf's own tail: erfc there only needs ~1e-7 relative (erf is near 1)
    emid = mp.mpf(float.fromhex(as_c(mp.mpf("2.46"), 32)))

    def erf_tail(t):
        x = t + emid
        return mp.erfc(x) * mp.exp(x * x)
    # weighted as F's error reaches erf (exp(-x^2) dF / erf(x)): degree 8,
    # 2^-28.6 (relative to F itself it took degree 10)
    def erf_t_weight(t):
        x = t + emid
        return mp.exp(-x * x) / mp.erf(x)
    c, e = remez(erf_tail, 1 - emid, mp.mpf("3.92") - emid, 8, weight=erf_t_weight)
    emit("vm_erf_t32", c, e, 32, "erfc(x) exp(x^2), t = x - 2.46, x in [1, 3.92], "
         "error weighted as it reaches erf")
    for tag, deg in (("f16", 8),):  # bf16's erf: vm_erf_w32_bf16 below
        c, e = remez(erf_tail, 1 - emid, mp.mpf("3.92") - emid, deg)
        emit(f"vm_erf_t32_{tag}", c, e, 32, f"erfc(x) exp(x^2), x in [1, 3.92], for {tag} kernels")

    # bf16's erf in one piece: erf(x) = x (c0 + u E(u - 5.12)) up to
    # |x| = 3.2, where 1 - erf is 2^-17.3, then 1; centred at u = 5.12,
    # where its terms cancel little in f32; weighted as f32's E is
    wmid = mp.mpf(float.fromhex(as_c(mp.mpf("5.12"), 32)))
    c, e = remez(lambda t: erf_e(t + wmid), -wmid, mp.mpf("3.2") ** 2 - wmid, 8,
                 weight=lambda t: erf_e_weight(t + wmid))
    emit("vm_erf_w32_bf16", c, e, 32,
         "(erf(x)/x - 2/sqrt(pi))/x^2, t = x^2 - 5.12, |x| <= 3.2, for bf16 kernels")
    print(f"static const double vm_erf_w32_bf16_mid = {as_c(wmid, 32)};")

    def atan_a(u):
        x = mp.sqrt(u)
        return (mp.atan(x) - x) / x ** 3 if u > 1e-50 else -mp.mpf(1) / 3
    for prec, deg in ((32, 10),):
        c, e = remez(atan_a, 0, 1, deg)
        emit(f"vm_atan_a{prec}", c, e, prec, "(atan(x) - x)/x^3, u = x^2 <= 1")

    q = (mp.pi / 4) ** 2

    def sin_s(u):
        r = mp.sqrt(u)
        return (mp.sin(r) - r) / r ** 3 if u > 1e-50 else -mp.mpf(1) / 6

    def cos_c(u):
        return (mp.cos(mp.sqrt(u)) - 1 + u / 2) / u ** 2 if u > 1e-50 else mp.mpf(1) / 24
    for prec, deg in ((32, 4),):
        c, e = remez(sin_s, 0, q, deg)
        emit(f"vm_sin_s{prec}", c, e, prec, "(sin(r) - r)/r^3, u = r^2 <= (pi/4)^2")
        c, e = remez(cos_c, 0, q, deg)
        emit(f"vm_cos_c{prec}", c, e, prec, "(cos(r) - 1 + r^2/2)/r^4, u = r^2")

    # f64 versions of the functions above (same reductions; atan: t <=
    # tan(pi/8) after the three-range reduction of vmath.c)
    c, e = remez(sinh_s, 0, 1, 6)
    emit("vm_sinh_s64", c, e, 64, "(sinh(x) - x)/x^3, u = x^2 <= 1")
    c, e = remez(atan_a, 0, mp.tan(mp.pi / 8) ** 2 * mp.mpf("1.001"), 11)
    emit("vm_atan_a64", c, e, 64, "(atan(t) - t)/t^3, u = t^2 <= tan(pi/8)^2")
    q64 = (mp.pi / 4 * mp.mpf("1.001")) ** 2
    c, e = remez(sin_s, 0, q64, 6)
    emit("vm_sin_s64", c, e, 64, "(sin(r) - r)/r^3, u = r^2 <= (pi/4)^2")
    c, e = remez(cos_c, 0, q64, 6)
    emit("vm_cos_c64", c, e, 64, "(cos(r) - 1 + r^2/2)/r^4, u = r^2")
    c, e = remez(erf_e, 0, 1, 11)
    emit("vm_erf_e64", c, e, 64, "(erf(x)/x - 2/sqrt(pi))/x^2, u = x^2 <= 1")
    hi = float(c0)
    print(f"static const double vm_erf_c0hi64 = {as_c(hi, 64)}, "
          f"vm_erf_c0lo64 = {as_c(c0 - hi, 64)}; /* 2/sqrt(pi) */")
    # erfc(x) = exp(-x^2) C(1/x)/x for x in [0.5, 27.3] (below 2^-1074
    # beyond), in four pieces of 1/x, each centred on a double
    for name, lo, hi_ in (("a", "1", "2"), ("b", "0.5", "1"), ("c", "0.25", "0.5"),
                          ("d", "0.036", "0.25")):
        mid = mp.mpf(float((mp.mpf(lo) + mp.mpf(hi_)) / 2))

        def erfc_c(t, mid=mid):
            x = 1 / (t + mid)
            return mp.erfc(x) * mp.exp(x * x) * x
        c, e = remez(erfc_c, mp.mpf(lo) - mid, mp.mpf(hi_) - mid, 18)
        emit(f"vm_erfc_{name}64", c, e, 64,
             f"erfc(x) exp(x^2) x, t = 1/x - {mp.nstr(mid, 5)}, 1/x in [{lo}, {hi_}]")
        print(f"static const double vm_erfc_{name}64_mid = {as_c(mid, 64)};")
    # pi/2 in parts for sin and cos (Cody-Waite): with fused multiply-add
    # three doubles, each the rounding of what the ones before leave;
    # without, three of 32 bits (n * part exact for n < 2^20) and a double
    rest = mp.pi / 2
    parts = []
    for _ in range(3):
        parts.append(mp.mpf(float(rest)))
        rest -= parts[-1]
    print("static const double vm_pio2_fma64[3] = {%s};"
          % ", ".join(as_c(v, 64) for v in parts))
    rest = mp.pi / 2
    parts = []
    for _ in range(3):
        ex = mp.floor(mp.log(abs(rest), 2))
        parts.append(mp.floor(rest * 2 ** (31 - ex)) / 2 ** (31 - ex))
        rest -= parts[-1]
    parts.append(mp.mpf(float(rest)))
    print("static const double vm_pio2_split64[4] = {%s};"
          % ", ".join(as_c(v, 64) for v in parts))
    sys.stdout.flush()


if __name__ == "__main__":
    # written whole or not at all
    out = sys.argv[1] if len(sys.argv) > 1 else None
    if out:
        import io
        import os
        buf = io.StringIO()
        sys.stdout, real = buf, sys.stdout
        main()
        sys.stdout = real
        with open(out + ".tmp", "w") as f:
            f.write(buf.getvalue())
        os.replace(out + ".tmp", out)
    else:
        main()
