/*
 * tap.h - a tiny TAP producer for the test binaries, run by prove.
 *
 *   plan(n) or done_testing(); ok(cond, fmt, ...); is_int(got, want, ...);
 *   is_double(got, want, tol, ...) with NaN and infinity handling;
 *   is_str(got, want, ...); diag(fmt, ...); skip(n, why).
 * Exit status: 0 when every test passed and the plan was met.
 */
#ifndef DNC_TAP_H
#define DNC_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed, tap_planned = -1;

/* No test writes to the user's kernel cache: it is off unless the test's
 * environment (or the test itself, with dnc_options.cache) turns it on,
 * and its default directory is none of the user's. */
__attribute__((constructor)) static void tap_no_user_cache(void)
{
  setenv("DNC_CACHE", "0", 0);
  unsetenv("DNC_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/nonexistent/dnc-tests", 1);
}

static void tap_vline(int pass, const char *fmt, va_list ap)
{
  tap_n++;
  if (!pass)
    tap_failed++;
  printf("%sok %d - ", pass ? "" : "not ", tap_n);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
}

static inline void plan(int n)
{
  tap_planned = n;
  printf("1..%d\n", n);
}

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("# ");
  vprintf(fmt, ap);
  putchar('\n');
  va_end(ap);
}

static inline int ok(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int ok(int pass, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  tap_vline(pass, fmt, ap);
  va_end(ap);
  return pass;
}

static inline int is_int(long long got, long long want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int is_int(long long got, long long want, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  tap_vline(got == want, fmt, ap);
  va_end(ap);
  if (got != want)
    diag("  got %lld, expected %lld", got, want);
  return got == want;
}

/* Passes when both are NaN, when both are the same infinity, or when
 * |got - want| <= tol * max(1, |want|) (a relative tolerance, absolute
 * near zero). tol = 0 demands bitwise-equal values, zeros' signs included. */
static inline int is_double(double got, double want, double tol, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int is_double(double got, double want, double tol, const char *fmt, ...)
{
  int pass;
  if (isnan(want) || isnan(got))
    pass = isnan(want) && isnan(got);
  else if (isinf(want) || isinf(got))
    pass = got == want;
  else if (tol == 0)
    pass = got == want && signbit(got) == signbit(want);
  else
    pass = fabs(got - want) <= tol * fmax(1.0, fabs(want));
  va_list ap;
  va_start(ap, fmt);
  tap_vline(pass, fmt, ap);
  va_end(ap);
  if (!pass)
    diag("  got %.17g, expected %.17g (tolerance %g)", got, want, tol);
  return pass;
}

static inline int is_str(const char *got, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int is_str(const char *got, const char *want, const char *fmt, ...)
{
  int pass = got && want ? strcmp(got, want) == 0 : got == want;
  va_list ap;
  va_start(ap, fmt);
  tap_vline(pass, fmt, ap);
  va_end(ap);
  if (!pass)
    diag("  got:\n%s\n# expected:\n%s", got ? got : "(null)", want ? want : "(null)");
  return pass;
}

static inline void skip(int n, const char *why)
{
  for (int i = 0; i < n; i++) {
    tap_n++;
    printf("ok %d # SKIP %s\n", tap_n, why);
  }
}

static inline int done_testing(void)
{
  if (tap_planned < 0)
    printf("1..%d\n", tap_n);
  else if (tap_planned != tap_n)
    diag("planned %d tests but ran %d", tap_planned, tap_n);
  if (tap_failed)
    diag("%d of %d tests failed", tap_failed, tap_n);
  return tap_failed || (tap_planned >= 0 && tap_planned != tap_n) ? 1 : 0;
}

#endif
