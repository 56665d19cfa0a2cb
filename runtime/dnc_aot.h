/*
 * dnc_aot.h - the descriptor of a library written by `dnc compile`.
 *
 * Every shared library that `dnc compile FILE... -o OUT.so` writes exports
 * one function, dnc_aot_module_get(), that returns this table: the dnc ABI
 * version, the sources it was compiled from, each function's parameters
 * and the addresses of its kernels (every form and dtype) for the CPU
 * level chosen when the library was loaded. dnc_module_load() in libdnc
 * reads it; a program that links the library directly needs only the
 * header `dnc compile -H` writes, not this one.
 *
 * `dnc compile` copies this file, as it is, into the C source it compiles
 * into each library, so the two cannot disagree. C99, no other header.
 */
#ifndef DNC_AOT_H
#define DNC_AOT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change to the structures below. */
#define DNC_AOT_ABI 1

/* Kernel forms and dtypes, in the order of dnc_aot_function.kernels:
 * kernels[dtype * DNC_AOT_FORMS + form]. ORDER: dnc_dtype (dnc.h) and
 * dnc_kernels' members. */
#define DNC_AOT_DTYPES 4 /* f32, f64, bf16, f16 */
#define DNC_AOT_FORMS 4  /* fwd, bwd, layer_fwd, layer_bwd */

typedef struct dnc_aot_param {
  const char *name;
  int32_t per_channel; /* declared `name[] = default` */
  double default_value;
} dnc_aot_param;

typedef struct dnc_aot_function {
  const char *name;
  int32_t nparams;
  const dnc_aot_param *params;
  void *const *kernels; /* DNC_AOT_DTYPES * DNC_AOT_FORMS entries */
} dnc_aot_function;

typedef struct dnc_aot_source {
  const char *name; /* the file name given to dnc compile */
  const char *text;
  uint64_t len;
} dnc_aot_source;

typedef struct dnc_aot_module {
  uint32_t abi; /* DNC_AOT_ABI */
  uint32_t nfunctions, nsources;
  const dnc_aot_function *functions; /* for the chosen level; NULL if none */
  const dnc_aot_source *sources;
  const char *dnc_version; /* of the dnc that wrote the library */
  const char *levels;      /* the CPU levels it carries, comma-separated */
  const char *cpu;         /* the level chosen at load time, or NULL */
  const char *error;       /* why no level was chosen, or NULL */
  int32_t opt_level;       /* -O */
} dnc_aot_module;

/* Exported by every library `dnc compile` writes. */
const dnc_aot_module *dnc_aot_module_get(void);

#ifdef __cplusplus
}
#endif

#endif
