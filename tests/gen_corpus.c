/* gen_corpus N SEED - prints the random corpus of tests/corpus.h. */
#include <stdlib.h>

#include "corpus.h"

int main(int argc, char **argv)
{
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  unsigned long long seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
  char buf[8192];
  for (int i = 0; i < n; i++) {
    corpus_function(seed, i, buf, sizeof buf);
    fputs(buf, stdout);
  }
  return 0;
}
