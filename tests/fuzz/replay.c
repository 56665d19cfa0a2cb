/*
 * replay.c - runs the libFuzzer target over files without libFuzzer, so
 * that the target is built with the project's compiler and its corpus
 * replayed in every `make test` (tests/fuzz.sh), under the sanitizers in
 * `make test SANITIZE=1`: the target cannot rot, and every seed and
 * regression input stays checked even where clang is not installed.
 *
 *   fuzz_replay FILE...    0 when every input passed; the target abort()s
 *                          on a failed check, as under libFuzzer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
  LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      perror(argv[i]);
      return 2;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
      n += got;
      if (n == cap)
        buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) {
      fputs("fuzz_replay: out of memory\n", stderr);
      return 2;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    printf("ok %d - %s\n", i, argv[i]);
  }
  printf("1..%d\n", argc - 1);
  return 0;
}
