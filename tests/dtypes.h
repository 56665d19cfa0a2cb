/* dtypes.h - values stored in and read back from the kernels' dtypes
 * (f64, f32, bf16 with round-to-nearest-even, f16), for the tests that
 * compare kernels with double references (test_specials,
 * test_differential). */
#ifndef DNC_TESTS_DTYPES_H
#define DNC_TESTS_DTYPES_H

#include <stdint.h>
#include <string.h>

#include "dnc.h"

static inline uint16_t to_bf16(float f)
{
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}

static inline float from_bf16(uint16_t h)
{
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* x stored in dtype t into buf; returns the stored value */
static inline double store(dnc_dtype t, double x, void *buf)
{
  switch (t) {
  case DNC_F64: memcpy(buf, &x, 8); return x;
  case DNC_F32: {
    float f = (float)x;
    memcpy(buf, &f, 4);
    return f;
  }
  case DNC_BF16: {
    uint16_t h = to_bf16((float)x);
    memcpy(buf, &h, 2);
    return from_bf16(h);
  }
  default: {
    _Float16 h = (_Float16)(float)x;
    memcpy(buf, &h, 2);
    return (double)h;
  }
  }
}

/* the value of dtype t at buf */
static inline double load(dnc_dtype t, const void *buf)
{
  switch (t) {
  case DNC_F64: {
    double d;
    memcpy(&d, buf, 8);
    return d;
  }
  case DNC_F32: {
    float f;
    memcpy(&f, buf, 4);
    return f;
  }
  case DNC_BF16: {
    uint16_t h;
    memcpy(&h, buf, 2);
    return from_bf16(h);
  }
  default: {
    _Float16 h;
    memcpy(&h, buf, 2);
    return (double)h;
  }
  }
}

/* a double rounded to dtype t (storage) */
static inline double round_to(dnc_dtype t, double v)
{
  char b[8];
  return store(t, v, b);
}

#endif
