/*
 * testlib.h - what the C tests share: building a module from a string.
 */
#ifndef DNC_TESTLIB_H
#define DNC_TESTLIB_H

#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"
#include "tap.h"

/* A module built from src, or NULL (with its diagnostics as TAP comments)
 * when the source has errors. */
static dnc_mod *build(const char *src)
{
  dnc_mod *m = dnc_mod_new();
  dnc_mod_add_source(m, "test.dn", src, strlen(src));
  if (dnc_mod_build(m)) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    dnc_diags_render(f, &m->diags);
    fclose(f);
    diag("unexpected errors in:\n%s\n%s", src, text);
    free(text);
    dnc_mod_free(m);
    return NULL;
  }
  return m;
}

#endif
