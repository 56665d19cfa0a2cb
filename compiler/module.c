/*
 * module.c - a compilation: its sources, diagnostics, DAG and functions,
 * all in one arena; and reading source files safely.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dnc_int.h"

dnc_mod *dnc_mod_new(void)
{
  dnc_arena *a = dnc_arena_new();
  dnc_mod *m = dnc_arena_alloc(a, sizeof *m);
  m->arena = a;
  m->diags.arena = a;
  dnc_dag_init(&m->dag, a);
  return m;
}

void dnc_mod_free(dnc_mod *m)
{
  if (!m)
    return;
  dnc_dag_free(&m->dag);
  free(m->sources);
  dnc_arena_free(m->arena); /* m itself lives in the arena */
}

dnc_source *dnc_mod_add_source(dnc_mod *m, const char *name, const char *text,
                               size_t len)
{
  dnc_source *s = dnc_arena_alloc(m->arena, sizeof *s);
  s->name = dnc_arena_strdup(m->arena, name);
  s->text = dnc_arena_strndup(m->arena, text, len);
  s->len = len;
  s->from_stdin = 0;
  dnc_source **v = realloc(m->sources, sizeof *v * (size_t)(m->nsources + 1));
  if (!v)
    dnc_die(__FILE__, __LINE__, "out of memory");
  m->sources = v;
  m->sources[m->nsources++] = s;
  return s;
}

char *dnc_read_bounded(FILE *f, size_t cap, size_t max, size_t *len,
                       int *too_large, int *err)
{
  char *buf = malloc(cap ? cap : (cap = 4096));
  if (!buf)
    dnc_die(__FILE__, __LINE__, "out of memory");
  *len = 0;
  *too_large = *err = 0;
  for (;;) {
    if (*len == cap) {
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb)
        dnc_die(__FILE__, __LINE__, "out of memory");
      buf = nb;
    }
    size_t want = cap - *len, got = fread(buf + *len, 1, want, f);
    *len += got;
    if (*len > max) {
      *too_large = 1;
      break;
    }
    if (got < want) {
      if (ferror(f))
        *err = errno ? errno : EIO;
      break;
    }
  }
  return buf;
}

dnc_source *dnc_mod_read_file(dnc_mod *m, const char *path)
{
  int is_stdin = !strcmp(path, "-");
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "cannot open '%s': %s", path, strerror(errno));
    return NULL;
  }
  struct stat st = {0};
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "'%s' is a directory, not a file",
                 is_stdin ? "<stdin>" : path);
    if (!is_stdin)
      fclose(f);
    return NULL;
  }
  size_t len;
  int too_large, saved_errno;
  char *buf = dnc_read_bounded(f, 4096, DNC_MAX_SOURCE_BYTES, &len, &too_large,
                               &saved_errno);
  if (!is_stdin)
    fclose(f);
  const char *shown = is_stdin ? "<stdin>" : path;
  if (saved_errno) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "cannot read '%s': %s", shown, strerror(saved_errno));
    free(buf);
    return NULL;
  }
  if (too_large) {
    long long size = !is_stdin && S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
    if (size > 0)
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                   "'%s' is too large: %lld bytes, at most %u are accepted",
                   shown, size, DNC_MAX_SOURCE_BYTES);
    else
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                   "'%s' is too large: more than %u bytes", shown,
                   DNC_MAX_SOURCE_BYTES);
    free(buf);
    return NULL;
  }
  dnc_source *s = dnc_mod_add_source(m, shown, buf, len);
  free(buf);
  s->from_stdin = is_stdin;
  return s;
}

size_t dnc_utf8_len(const unsigned char *p, size_t n)
{
  unsigned char c = p[0];
  if (c < 0x80)
    return 1;
  size_t len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0;
    if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90;
    if (c == 0xF4)
      hi = 0x8F;
  } else
    return 0;
  if (n < len)
    return 0;
  if (p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if ((p[i] & 0xC0) != 0x80)
      return 0;
  return len;
}

size_t dnc_source_bom_len(const dnc_source *src)
{
  return src->len >= 3 && !memcmp(src->text, "\xEF\xBB\xBF", 3) ? 3 : 0;
}

int dnc_source_check_bytes(dnc_diags *d, const dnc_source *src)
{
  const unsigned char *t = (const unsigned char *)src->text;
  for (size_t i = 0; i < src->len;) {
    if (t[i] == 0) {
      dnc_diag_add(d, DNC_SEV_ERROR, src, (dnc_loc){(uint32_t)i, (uint32_t)i + 1},
                   "NUL byte in source text");
      return 0;
    }
    size_t l = dnc_utf8_len(t + i, src->len - i);
    if (!l) {
      dnc_diag_add(d, DNC_SEV_ERROR, src, (dnc_loc){(uint32_t)i, (uint32_t)i + 1},
                   "invalid UTF-8: byte 0x%02X", t[i]);
      return 0;
    }
    i += l;
  }
  return 1;
}

int dnc_mod_build(dnc_mod *m)
{
  int errors0 = m->diags.nerrors;
  dnc_parsed *parsed = calloc((size_t)m->nsources + 1, sizeof *parsed);
  if (!parsed)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (int i = 0; i < m->nsources; i++) {
    parsed[i].src = m->sources[i];
    if (dnc_source_check_bytes(&m->diags, m->sources[i]))
      parsed[i].fns = dnc_parse(m->arena, &m->diags, m->sources[i]);
  }
  /* a tree with syntax errors is never used */
  if (m->diags.nerrors == errors0)
    dnc_sema(m, parsed, m->nsources);
  free(parsed);
  return m->diags.nerrors - errors0;
}

dnc_fn *dnc_mod_find(const dnc_mod *m, const char *name)
{
  for (int i = 0; i < m->nfns; i++)
    if (!strcmp(m->fns[i]->name, name))
      return m->fns[i];
  return NULL;
}

int dnc_fn_param_index(const dnc_fn *f, const char *name)
{
  for (int i = 0; i < f->nparams; i++)
    if (!strcmp(f->params[i].name, name))
      return i;
  return -1;
}
