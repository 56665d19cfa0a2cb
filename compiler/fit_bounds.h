/*
 * fit_bounds.h - bounds on the parameters of a least-squares fit (fit.c):
 * the internal entry points under dnc_function_fit_bounded (runtime/api.c)
 * and `dnc fit --bounds` (cli/fit_cmd.c). docs/fit.md, "Bounds".
 */
#ifndef DNC_FIT_BOUNDS_H
#define DNC_FIT_BOUNDS_H

#include <stddef.h>

#include "dnc_int.h"

/* How dnc_fit_result.why begins where a DNC_FIT_ILLPOSED fit ran off:
 * free parameters grew without bound, their values then named (fit.c,
 * say_grown); `dnc fit` says so in its own words. */
#define DNC_FIT_WHY_GREW "the parameters grew without bound"
/* ... where they grew but the sum of squares barely fell on the way (to
 * more than 0.9 of the start's): they drifted along a direction that is
 * flat from this start, which says nothing of their limit. */
#define DNC_FIT_WHY_DRIFTED "the parameters drifted without bound along " \
  "a flat direction"

/* dnc_fit with a lower and an upper bound per variable: lo and hi NULL
 * (no bounds) or np + 1 values (the parameters in declaration order, then
 * gamma, read only when o->gain is on and gamma is free), -inf and +inf
 * for none. The bounds must have passed dnc_fit_bounds_check. at_bound:
 * NULL, or np + 1 ints that receive -1 (the value ended at its lower
 * bound), +1 (at its upper bound) or 0, for every variable (all 0 where
 * the fit never ran: DNC_FIT_NONFINITE, TOOFEW, TOOLARGE). */
void dnc_fit_bounded(dnc_mod *m, dnc_fn *f, const double *x, const double *y,
                     int n, const double *p0, const int *fixed,
                     const double *lo, const double *hi,
                     const dnc_fit_options *o, dnc_fit_result *r,
                     int *at_bound);

/* Whether the bounds can be used: -1 when they can; else the variable
 * (np: gamma) that they cannot be for, and why in msg (n bytes, a NUL
 * included), naming it: a NaN bound, a lower bound of +inf or an upper
 * one of -inf, lower >= upper, a finite bound on a parameter held fixed
 * (or on gamma without a free gain), a start (p0, or o->gain_init)
 * outside its bounds. */
int dnc_fit_bounds_check(const dnc_fn *f, const double *p0, const int *fixed,
                         const dnc_fit_options *o, const double *lo,
                         const double *hi, char *msg, size_t n);

#endif
