/*
 * arena.c - memory for one compilation, freed at once.
 *
 * Blocks are chained; an allocation larger than a block gets a block of its
 * own. Nothing is freed individually.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "dnc_int.h"

#define ARENA_BLOCK (64u * 1024u)

typedef struct block {
  struct block *prev;
  size_t used, size;
  _Alignas(16) unsigned char data[];
} block;

struct dnc_arena {
  block *top;
};

_Noreturn void dnc_die(const char *file, int line, const char *msg)
{
  fprintf(stderr, "dnc: internal error at %s:%d: %s\n", file, line, msg);
  abort();
}

static void *xmalloc(size_t n)
{
  void *p = malloc(n);
  if (!p)
    dnc_die(__FILE__, __LINE__, "out of memory");
  return p;
}

dnc_arena *dnc_arena_new(void)
{
  dnc_arena *a = xmalloc(sizeof *a);
  a->top = NULL;
  return a;
}

void dnc_arena_free(dnc_arena *a)
{
  if (!a)
    return;
  for (block *b = a->top, *p; b; b = p) {
    p = b->prev;
    free(b);
  }
  free(a);
}

void *dnc_arena_alloc(dnc_arena *a, size_t n)
{
  n = (n + 15) & ~(size_t)15;
  if (n == 0)
    n = 16;
  block *b = a->top;
  if (!b || b->size - b->used < n) {
    size_t size = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
    block *nb = xmalloc(sizeof *nb + size);
    nb->size = size;
    nb->used = 0;
    if (b && size != ARENA_BLOCK) {
      /* a big one-off block goes under the current one, which keeps its
       * free space for the small allocations that follow */
      nb->prev = b->prev;
      b->prev = nb;
      nb->used = n;
      memset(nb->data, 0, n);
      return nb->data;
    }
    nb->prev = b;
    a->top = b = nb;
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *dnc_arena_strndup(dnc_arena *a, const char *s, size_t n)
{
  char *p = dnc_arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *dnc_arena_strdup(dnc_arena *a, const char *s)
{
  return dnc_arena_strndup(a, s, strlen(s));
}

char *dnc_arena_printf(dnc_arena *a, const char *fmt, ...)
{
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  DNC_ASSERT(n >= 0);
  char *p = dnc_arena_alloc(a, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}
