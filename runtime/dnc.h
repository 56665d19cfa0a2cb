/*
 * dnc.h - the public C API of libdnc.
 *
 * Compile dnc source (from a string or a file) into a module, read its
 * diagnostics as data, enumerate its functions and their parameters, and
 * evaluate them with the double-precision reference interpreter.
 *
 * Errors are returned, never printed, and never exit the process. Strings
 * returned by the API belong to the object they came from and live as long
 * as it does.
 *
 * The kernel entry points (JIT forward and backward, element-wise and layer
 * forms) are the subject of a later version; DNC_ABI_VERSION changes
 * whenever a declaration here changes incompatibly.
 */
#ifndef DNC_H
#define DNC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DNC_VERSION_STRING "0.1.0"
#define DNC_ABI_VERSION 1

/* The library's version string and ABI version (compare with the macros
 * to detect a header/library mismatch). */
const char *dnc_version(void);
int dnc_abi_version(void);

typedef enum dnc_status {
  DNC_OK = 0,
  DNC_ERR_SOURCE = 1,   /* the source has errors: see the diagnostics */
  DNC_ERR_ARGUMENT = 2, /* a null pointer, a bad size or index */
  DNC_ERR_NOT_FOUND = 3 /* no function or parameter of that name */
} dnc_status;

/* A short English description of a status. */
const char *dnc_status_string(dnc_status s);

typedef struct dnc_context dnc_context;
typedef struct dnc_module dnc_module;
typedef struct dnc_function dnc_function;

/* A context holds options shared by the modules compiled in it. */
dnc_context *dnc_context_new(void);
void dnc_context_free(dnc_context *ctx);

typedef enum dnc_diag_severity {
  DNC_DIAG_ERROR = 0,
  DNC_DIAG_WARNING = 1,
  DNC_DIAG_NOTE = 2
} dnc_diag_severity;

typedef struct dnc_diagnostic {
  dnc_diag_severity severity;
  const char *file; /* the name given at compile time */
  int line, column; /* 1-based; 0 when about the whole file */
  const char *message;
} dnc_diagnostic;

/* Compile dnc source. *out receives a module even when the source has
 * errors (then DNC_ERR_SOURCE is returned and the module has no functions
 * but carries the diagnostics); free it with dnc_module_free. `name` is
 * used in diagnostics (NULL: "<string>"). */
dnc_status dnc_compile_string(dnc_context *ctx, const char *name,
                              const char *source, size_t len,
                              dnc_module **out);
dnc_status dnc_compile_file(dnc_context *ctx, const char *path,
                            dnc_module **out);
void dnc_module_free(dnc_module *m);

size_t dnc_module_diagnostic_count(const dnc_module *m);
const dnc_diagnostic *dnc_module_diagnostic(const dnc_module *m, size_t i);
/* Writes the diagnostics as dnc prints them (gcc style, with the source line
 * and a caret) into buf, snprintf-style: returns the length of the whole
 * text, of which at most n-1 bytes and a NUL are written. */
size_t dnc_module_format_diagnostics(const dnc_module *m, char *buf, size_t n);

int dnc_module_function_count(const dnc_module *m);
const dnc_function *dnc_module_function(const dnc_module *m, int i);
const dnc_function *dnc_module_find(const dnc_module *m, const char *name);

typedef enum dnc_param_kind {
  DNC_PARAM_SCALAR = 0,
  DNC_PARAM_PER_CHANNEL = 1 /* one value per channel of the tensor */
} dnc_param_kind;

typedef struct dnc_param_info {
  const char *name;
  double default_value;
  dnc_param_kind kind;
} dnc_param_info;

const char *dnc_function_name(const dnc_function *f);
int dnc_function_param_count(const dnc_function *f);
dnc_status dnc_function_param(const dnc_function *f, int i,
                              dnc_param_info *out);
/* Index of the parameter called `name`, or -1. */
int dnc_function_param_index(const dnc_function *f, const char *name);

/* Reference interpreter: y[i] = f(x[i]; params) for i < n, computed in
 * extended precision and rounded to double. params holds one value per
 * parameter in declaration order (a per-channel parameter's value for the
 * channel in question); NULL means the defaults. x and y may be equal. */
dnc_status dnc_function_eval(const dnc_function *f, const double *x, double *y,
                             size_t n, const double *params);

#ifdef __cplusplus
}
#endif

#endif
