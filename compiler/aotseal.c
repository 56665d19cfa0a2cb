/*
 * aotseal.c - the seal `dnc compile` puts on a library, and the checks
 * dnc_module_load makes before dlopen runs any of its code.
 *
 * Loading a library runs its code (its constructors at dlopen, its kernels
 * at each call): only libraries from a trusted source may be loaded. The
 * checks here do not make an untrusted file safe; they turn the accidents
 * a library meets (a truncated copy, a flipped byte, an edited embedded
 * source, a file from an older dnc or another machine) into a clear error
 * instead of SIGBUS, SIGSEGV, SIGILL or silently wrong results:
 *   - a regular file, at least an ELF header and the seal long;
 *   - ELF: 64-bit, this machine's architecture, a shared object, its
 *     program headers and every loaded segment within the file;
 *   - the seal: the last SEAL_LEN bytes are "DNCSEAL<abi>:" and a 64-bit
 *     digest (FNV-1a) of every byte before them, in hex, and a newline;
 *     the digest covers the kernels' code and the sources they were built
 *     from, so any change to either is refused. A library without a seal
 *     was written by an older dnc (or changed): compile it again.
 * The seal is appended after the linked ELF file, where the loader never
 * looks (nothing maps bytes past the last section).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnc_aot.h"
#include "dnc_int.h"

#define SEAL_TAG "DNCSEAL"
/* "DNCSEAL" + abi (2 digits) + ':' + 16 hex + '\n' */
enum { SEAL_LEN = 7 + 2 + 1 + 16 + 1 };

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static unsigned char *read_all(const char *path, size_t *n, char *err,
                               size_t nerr)
{
  /* O_NONBLOCK: a FIFO (or a device) under the name must not block the
   * open, which waited for a writer forever; it is then refused below */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");
  struct stat st;
  if (!f || fstat(fileno(f), &st)) {
    snprintf(err, nerr, "cannot open it: %s", strerror(errno));
    if (f)
      fclose(f);
    else if (fd >= 0)
      close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, nerr, "not a regular file");
    fclose(f);
    return NULL;
  }
  if (st.st_size > ((off_t)1 << 31)) {
    snprintf(err, nerr, "too large for a dnc library (%lld bytes)",
             (long long)st.st_size);
    fclose(f);
    return NULL;
  }
  unsigned char *b = malloc((size_t)st.st_size + 1);
  size_t got = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
  fclose(f);
  if (!b || got != (size_t)st.st_size) {
    snprintf(err, nerr, "cannot read it");
    free(b);
    return NULL;
  }
  *n = got;
  return b;
}

int dnc_aot_seal(const char *path, char *err, size_t nerr)
{
  size_t n;
  unsigned char *b = read_all(path, &n, err, nerr);
  if (!b)
    return -1;
  uint64_t h = fnv1a(b, n);
  free(b);
  FILE *f = fopen(path, "ab");
  int bad = !f || fprintf(f, SEAL_TAG "%02d:%016llx\n", DNC_AOT_ABI,
                          (unsigned long long)h) != SEAL_LEN;
  if (f && fclose(f))
    bad = 1;
  if (bad)
    snprintf(err, nerr, "cannot seal it: %s", strerror(errno));
  return bad ? -1 : 0;
}

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#else
#define HOST_MACHINE (-1)
#endif

static const char *check_elf(const unsigned char *b, size_t n, char *err,
                             size_t nerr)
{
  Elf64_Ehdr eh;
  if (n < sizeof eh || memcmp(b, ELFMAG, SELFMAG))
    return "not an ELF shared library";
  memcpy(&eh, b, sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_DYN)
    return "not a 64-bit ELF shared library";
  if (HOST_MACHINE >= 0 && eh.e_machine != HOST_MACHINE) {
    snprintf(err, nerr, "built for another architecture (ELF machine %u)",
             eh.e_machine);
    return err;
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > n ||
      (n - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum)
    return "damaged: its program headers lie past its end (truncated?)";
  for (int i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    memcpy(&ph, b + eh.e_phoff + (size_t)i * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD &&
        (ph.p_offset > n || ph.p_filesz > n - ph.p_offset))
      return "damaged: a segment lies past its end (truncated?)";
  }
  return NULL;
}

int dnc_aot_check_file(const char *path, char *err, size_t nerr)
{
  size_t n;
  unsigned char *b = read_all(path, &n, err, nerr);
  if (!b)
    return -1;
  char ebuf[128];
  const char *why = check_elf(b, n < SEAL_LEN ? n : n - SEAL_LEN, ebuf,
                              sizeof ebuf);
  const unsigned char *s = b + n - SEAL_LEN;
  int abi = -1;
  unsigned long long want = 0;
  char tail[SEAL_LEN + 1];
  if (!why) {
    memcpy(tail, s, SEAL_LEN);
    tail[SEAL_LEN] = 0;
    if (memcmp(tail, SEAL_TAG, 7) ||
        sscanf(tail + 7, "%2d:%16llx", &abi, &want) != 2 ||
        tail[SEAL_LEN - 1] != '\n')
      why = "not a library written by dnc compile (it has no dnc seal: "
            "not dnc's, written by an older dnc, or changed since; compile "
            "it again)";
    else if (abi != DNC_AOT_ABI) {
      snprintf(ebuf, sizeof ebuf, "written for library ABI %d; this libdnc "
               "reads ABI %d: compile it again", abi, DNC_AOT_ABI);
      why = ebuf;
    } else if (fnv1a(b, n - SEAL_LEN) != want)
      why = "damaged or changed since dnc compile wrote it (its digest "
            "differs): compile it again";
  }
  free(b);
  if (why) {
    if (why != err)
      snprintf(err, nerr, "%s", why);
    return -1;
  }
  return 0;
}
