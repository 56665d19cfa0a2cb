/*
 * aotseal.c - the seal `dnc compile` puts on a library, and the checks
 * dnc_module_load makes before dlopen runs any of its code.
 *
 * Loading a library runs its code (its constructors at dlopen, its kernels
 * at each call): only libraries from a trusted source may be loaded. The
 * checks here do not make an untrusted file safe; they turn the accidents
 * a library meets (a truncated copy, a flipped byte, an edited embedded
 * source, a file from another dnc, another library under the name) into a
 * clear error instead of SIGBUS, SIGSEGV, SIGILL or silently wrong results:
 *   - a regular file; ELF: 64-bit, this machine's byte order and
 *     architecture, a shared object; its program headers, every loaded
 *     segment, its section headers and every section's contents within the
 *     file (a truncated copy); an executable segment whole in the file (not
 *     the debug-info file `objcopy --only-keep-debug` writes);
 *   - the seal: a note "DNC" in a PT_NOTE segment (section .note.dnc, which
 *     the dispatch C defines, dnc_aot_seal_note_c) holding "DNCSEAL", the
 *     descriptor ABI, the number of loaded segments, the dnc version and a
 *     64-bit digest (FNV-1a, in hex) of what the dynamic loader reads: the
 *     ELF header, the program headers and every PT_LOAD segment's bytes,
 *     that is the kernels' code, their constants, the descriptor, the
 *     embedded sources, the dynamic section, symbols and relocations.
 * The note is allocated, inside the first loaded segment, so packaging's
 * strip (strip, strip --strip-unneeded/-debug, objcopy --strip-all, the
 * --only-keep-debug/--add-gnu-debuglink split, llvm-strip) keeps it; the
 * digest leaves out exactly what those rewrite and the loader never reads:
 * the section header fields of the ELF header (e_shoff, e_shentsize,
 * e_shnum, e_shstrndx) and everything outside the loaded segments
 * (.symtab, debug info, section headers), and also the GNU build-id's
 * bytes, which RPM's debugedit recomputes in place, and its own digest.
 * A tool that rewrites the loaded segments (patchelf, chrpath) changes
 * what the loader reads, and the library is refused: a dnc library needs
 * only libc and libm, so no packaging step has a reason to.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aotseal.h"
#include "dnc.h"
#include "dnc_aot.h"
#include "dnc_int.h"

/* The note. ORDER: dnc_aot_seal_note_c's struct. Its descriptor:
 *   0  "DNCSEAL\0"
 *   8  uint32 ABI (DNC_AOT_ABI), the target's byte order
 *  12  uint32 loaded segments when sealed (0 until then)
 *  16  16 hex digits of the digest (16 NULs until sealed)
 *  32  the dnc version, NUL-padded to 32 bytes
 * A change to this layout or to what the digest covers is a new
 * SEAL_TYPE: a library with the old seal then has "no dnc seal". */
#define SEAL_NAME "DNC"
#define SEAL_MAGIC "DNCSEAL"
enum {
  SEAL_TYPE = 0x4c414553, /* "SEAL" */
  SEAL_DESCSZ = 64,
  SEAL_ABI = 8,
  SEAL_NLOAD = 12,
  SEAL_DIGEST = 16,
  SEAL_VERSION = 32
};

void dnc_aot_seal_note_c(FILE *fp)
{
  fprintf(fp,
          "/* The seal (dnc's compiler/aotseal.c): dnc compile fills in the "
          "loaded\n * segments and the digest after the link; "
          "dnc_module_load checks them. */\n"
          "#if defined(__ELF__) && defined(__LP64__)\n"
          "__attribute__((section(\".note.dnc\"), used, aligned(4)))\n"
          "static const struct {\n"
          "  uint32_t namesz, descsz, type;\n"
          "  char name[4], magic[8];\n"
          "  uint32_t abi, nload;\n"
          "  char digest[16], version[32];\n"
          "} dnc_seal_note = {4, %d, %#x, \"%s\", \"%s\", DNC_AOT_ABI, 0, "
          "{0}, \"%s\"};\n"
          "#endif\n\n",
          SEAL_DESCSZ, SEAL_TYPE, SEAL_NAME, SEAL_MAGIC, DNC_VERSION_STRING);
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
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

/* ------------------------------------------------------- reading the ELF */

/* A 64-bit ELF file in memory, in its own byte order (a library for
 * another target is sealed on the build machine). */
typedef struct elf {
  unsigned char *b;
  size_t n;
  int msb;
  uint64_t phoff, shoff;
  unsigned phnum, shnum, shentsize;
  size_t seal;     /* offset of the seal's descriptor; 0 if none */
  int nseals;
} elf;

static uint64_t rd(const elf *e, size_t off, int size)
{
  uint64_t v = 0;
  for (int i = 0; i < size; i++)
    v |= (uint64_t)e->b[off + i] << 8 * (e->msb ? size - 1 - i : i);
  return v;
}

static void wr32(const elf *e, size_t off, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    e->b[off + i] = (unsigned char)(v >> 8 * (e->msb ? 3 - i : i));
}

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_DATA ELFDATA2MSB
#else
#define HOST_DATA ELFDATA2LSB
#endif
#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#elif defined(__powerpc64__)
#define HOST_MACHINE EM_PPC64
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_MACHINE EM_RISCV
#else
#define HOST_MACHINE (-1)
#endif

/* Program header i's field at off (Elf64_Phdr) */
#define PH(e, i, field, size)                                                 \
  rd(e, (e)->phoff + (size_t)(i) * sizeof(Elf64_Phdr) +                       \
            offsetof(Elf64_Phdr, field), size)

/* The ELF header, the program and section headers, and that everything
 * they place lies in the file; host: of this machine. NULL, or why not. */
static const char *elf_read(elf *e, int host, char *err, size_t nerr)
{
  const unsigned char *b = e->b;
  if (e->n < sizeof(Elf64_Ehdr) || memcmp(b, ELFMAG, SELFMAG))
    return "not an ELF shared library";
  if (b[EI_DATA] != ELFDATA2LSB && b[EI_DATA] != ELFDATA2MSB)
    return "damaged: its ELF header's byte order is neither little- nor "
           "big-endian";
  e->msb = b[EI_DATA] == ELFDATA2MSB;
  if (b[EI_CLASS] != ELFCLASS64 || rd(e, offsetof(Elf64_Ehdr, e_type), 2) !=
                                       ET_DYN)
    return "not a 64-bit ELF shared library";
  int machine = (int)rd(e, offsetof(Elf64_Ehdr, e_machine), 2);
  /* a host not named above: its byte order only */
  if (host && ((HOST_MACHINE >= 0 && machine != HOST_MACHINE) ||
               b[EI_DATA] != HOST_DATA)) {
    snprintf(err, nerr, "built for another architecture (ELF machine %d, "
             "%s-endian)", machine, e->msb ? "big" : "little");
    return err;
  }
  e->phoff = rd(e, offsetof(Elf64_Ehdr, e_phoff), 8);
  e->phnum = (unsigned)rd(e, offsetof(Elf64_Ehdr, e_phnum), 2);
  if (rd(e, offsetof(Elf64_Ehdr, e_phentsize), 2) != sizeof(Elf64_Phdr) ||
      e->phoff > e->n || (e->n - e->phoff) / sizeof(Elf64_Phdr) < e->phnum)
    return "damaged: its program headers lie past its end (truncated?)";
  for (unsigned i = 0; i < e->phnum; i++) {
    uint64_t type = PH(e, i, p_type, 4), off = PH(e, i, p_offset, 8),
             filesz = PH(e, i, p_filesz, 8), memsz = PH(e, i, p_memsz, 8);
    if ((type == PT_LOAD || type == PT_NOTE) &&
        (off > e->n || filesz > e->n - off))
      return "damaged: a segment lies past its end (truncated?)";
    if (type == PT_LOAD && (PH(e, i, p_flags, 4) & PF_X) && filesz != memsz)
      return "its code is not in the file: a debug-info file (objcopy "
             "--only-keep-debug), not the library";
  }
  /* nothing loads the section headers, but a copy cut short cuts them
   * first (they are last): one whose tail is lost is refused too */
  e->shoff = rd(e, offsetof(Elf64_Ehdr, e_shoff), 8);
  e->shnum = (unsigned)rd(e, offsetof(Elf64_Ehdr, e_shnum), 2);
  e->shentsize = (unsigned)rd(e, offsetof(Elf64_Ehdr, e_shentsize), 2);
  if (e->shnum && (e->shentsize != sizeof(Elf64_Shdr) || e->shoff > e->n ||
                   (e->n - e->shoff) / sizeof(Elf64_Shdr) < e->shnum))
    return "damaged: its section headers lie past its end (truncated?)";
  for (unsigned i = 0; i < e->shnum; i++) {
    size_t sh = e->shoff + (size_t)i * sizeof(Elf64_Shdr);
    uint64_t off = rd(e, sh + offsetof(Elf64_Shdr, sh_offset), 8),
             size = rd(e, sh + offsetof(Elf64_Shdr, sh_size), 8);
    if (rd(e, sh + offsetof(Elf64_Shdr, sh_type), 4) != SHT_NOBITS &&
        (off > e->n || size > e->n - off))
      return "damaged: a section lies past its end (truncated?)";
  }
  return NULL;
}

/* Walks the notes of every PT_NOTE segment: finds the seal (e->seal, and
 * how many there are) and zeroes the GNU build-id's bytes, which the
 * digest leaves out. */
static void elf_notes(elf *e)
{
  for (unsigned i = 0; i < e->phnum; i++) {
    if (PH(e, i, p_type, 4) != PT_NOTE)
      continue;
    size_t p = PH(e, i, p_offset, 8), end = p + PH(e, i, p_filesz, 8);
    size_t align = PH(e, i, p_align, 8) == 8 ? 8 : 4;
    while (end - p >= 12) {
      uint64_t namesz = rd(e, p, 4), descsz = rd(e, p + 4, 4),
               type = rd(e, p + 8, 4);
      size_t name = p + 12;
      size_t desc = name + ((namesz + align - 1) & ~(align - 1));
      if (desc > end || descsz > end - desc)
        break; /* not notes after all: the digest decides */
      if (namesz == 4 && !memcmp(e->b + name, "GNU", 4) &&
          type == NT_GNU_BUILD_ID)
        memset(e->b + desc, 0, descsz);
      if (namesz == 4 && !memcmp(e->b + name, SEAL_NAME, 4) &&
          type == SEAL_TYPE && descsz == SEAL_DESCSZ &&
          !memcmp(e->b + desc, SEAL_MAGIC, 8)) {
        e->seal = desc;
        e->nseals++;
      }
      size_t next = desc + ((descsz + align - 1) & ~(align - 1));
      if (next > end)
        break;
      p = next;
    }
  }
}

static unsigned elf_nload(const elf *e)
{
  unsigned k = 0;
  for (unsigned i = 0; i < e->phnum; i++)
    k += PH(e, i, p_type, 4) == PT_LOAD;
  return k;
}

/* The digest of what the loader reads. Zeroes, in e->b, what it leaves
 * out: the ELF header's section header fields and the seal's digest (the
 * build-id is zeroed by elf_notes). */
static uint64_t elf_digest(elf *e)
{
  memset(e->b + offsetof(Elf64_Ehdr, e_shoff), 0, 8);
  memset(e->b + offsetof(Elf64_Ehdr, e_shentsize), 0,
         sizeof(Elf64_Ehdr) - offsetof(Elf64_Ehdr, e_shentsize));
  memset(e->b + e->seal + SEAL_DIGEST, 0, 16);
  uint64_t h = 0xcbf29ce484222325ull;
  h = fnv1a(h, e->b, sizeof(Elf64_Ehdr));
  h = fnv1a(h, e->b + e->phoff, e->phnum * sizeof(Elf64_Phdr));
  for (unsigned i = 0; i < e->phnum; i++)
    if (PH(e, i, p_type, 4) == PT_LOAD)
      h = fnv1a(h, e->b + PH(e, i, p_offset, 8), PH(e, i, p_filesz, 8));
  return h;
}

/* ---------------------------------------------------------------- seal */

int dnc_aot_seal(const char *path, char *err, size_t nerr)
{
  elf e = {0};
  e.b = read_all(path, &e.n, err, nerr);
  if (!e.b)
    return -1;
  /* a library for a 32-bit or non-ELF target carries no seal (its C has
   * no note): dnc_module_load reads 64-bit ELF only */
  if (e.n < sizeof(Elf64_Ehdr) || memcmp(e.b, ELFMAG, SELFMAG) ||
      e.b[EI_CLASS] != ELFCLASS64) {
    free(e.b);
    return 0;
  }
  char ebuf[160];
  const char *why = elf_read(&e, 0, ebuf, sizeof ebuf);
  if (!why) {
    elf_notes(&e);
    if (e.nseals != 1)
      why = e.nseals ? "the linked library has more than one dnc seal note"
                     : "the linked library lost its dnc seal note (.note.dnc:"
                       " does the C compiler or linker drop it?)";
  }
  if (!why) {
    /* the count first: the digest covers it */
    wr32(&e, e.seal + SEAL_NLOAD, elf_nload(&e));
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)elf_digest(&e));
    memcpy(e.b + e.seal + SEAL_DIGEST, hex, 16);
    /* the seal's 20 bytes in place; nothing else is written */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t put = fd < 0 ? -1
                         : pwrite(fd, e.b + e.seal + SEAL_NLOAD, 20,
                                  (off_t)(e.seal + SEAL_NLOAD));
    int e1 = put < 0 ? errno : put != 20 ? EIO : 0;
    if (fd >= 0 && close(fd) && !e1)
      e1 = errno;
    if (e1) {
      snprintf(ebuf, sizeof ebuf, "cannot seal it: %s", strerror(e1));
      why = ebuf;
    }
  }
  free(e.b);
  if (why) {
    snprintf(err, nerr, "%s", why);
    return -1;
  }
  return 0;
}

/* --------------------------------------------------------------- check */

static const char *check(elf *e, char *err, size_t nerr)
{
  const char *why = elf_read(e, 1, err, nerr);
  if (why)
    return why;
  elf_notes(e);
  if (!e->nseals)
    return "not a library written by dnc compile (it has no dnc seal: not "
           "dnc's, or written by an older dnc: compile it again)";
  if (e->nseals > 1)
    return "damaged: it has more than one dnc seal";
  const unsigned char *s = e->b + e->seal;
  char version[SEAL_VERSION + 1] = {0};
  memcpy(version, s + SEAL_VERSION, sizeof version - 1);
  for (char *c = version; *c; c++)
    if (*c < ' ' || *c > '~')
      *c = '?';
  unsigned abi = (unsigned)rd(e, e->seal + SEAL_ABI, 4);
  if (abi != DNC_AOT_ABI) {
    snprintf(err, nerr, "written by dnc %s for library ABI %u; this libdnc "
             "(dnc %s) reads ABI %d: compile it again", version, abi,
             DNC_VERSION_STRING, DNC_AOT_ABI);
    return err;
  }
  unsigned long long want;
  char hex[17] = {0};
  memcpy(hex, s + SEAL_DIGEST, 16);
  if (!hex[0])
    return "its dnc seal was never filled in (not written by dnc compile, or "
           "its link was interrupted): compile it again";
  char *end;
  want = strtoull(hex, &end, 16);
  unsigned sealed = (unsigned)rd(e, e->seal + SEAL_NLOAD, 4),
           nload = elf_nload(e);
  if (end != hex + 16 || elf_digest(e) != want) {
    if (sealed != nload) {
      snprintf(err, nerr, "its loaded segments were rewritten since dnc "
               "compile wrote it (loaded segments: %u, %u when written; "
               "patchelf?); dnc refuses an edited library (strip is "
               "fine): ship the file dnc compile wrote", nload, sealed);
      return err;
    }
    return "damaged or changed since dnc compile wrote it (its digest "
           "differs: a changed byte in what the loader reads; strip is "
           "fine, patchelf is not): compile it again";
  }
  return NULL;
}

int dnc_aot_check_file(const char *path, char *err, size_t nerr)
{
  elf e = {0};
  e.b = read_all(path, &e.n, err, nerr);
  if (!e.b)
    return -1;
  char ebuf[256];
  const char *why = check(&e, ebuf, sizeof ebuf);
  free(e.b);
  if (why) {
    snprintf(err, nerr, "%s", why);
    return -1;
  }
  return 0;
}
