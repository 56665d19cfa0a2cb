/*
 * test_aotseal_p11.c - the seal of compiler/aotseal.c on ELF images made
 * here, byte by byte: what a real library (tests/aot_strip_p11.sh,
 * test_aot.c) cannot show on this machine. A library for a big-endian
 * target (powerpc64) is sealed in its own byte order, and refused here as
 * another architecture's; sealing twice writes the same seal (the digest
 * leaves out its own bytes); what strip rewrites in the ELF header
 * (e_shoff, e_shnum, ...) and a new GNU build-id do not matter, a byte of
 * a loaded segment does; a 32-bit or non-ELF output (i686, wasm) is left
 * unsealed, unchanged; a 64-bit one without the note is an error; damaged
 * notes and headers are refused without reading past the file.
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dnc_int.h"
#include "tap.h"

enum { EH = 64, PHS = 3 * 56, NOTE = EH + PHS, BID = NOTE + 80,
       CODE = BID + 36, SIZE = CODE + 200 };

static void put(unsigned char *b, size_t off, uint64_t v, int size, int msb)
{
  for (int i = 0; i < size; i++)
    b[off + i] = (unsigned char)(v >> 8 * (msb ? size - 1 - i : i));
}

static uint64_t get(const unsigned char *b, size_t off, int size, int msb)
{
  uint64_t v = 0;
  for (int i = 0; i < size; i++)
    v |= (uint64_t)b[off + i] << 8 * (msb ? size - 1 - i : i);
  return v;
}

/* A shared object of one loaded segment: the ELF header, 3 program
 * headers (PT_LOAD of the whole file, PT_NOTE of the seal note and of the
 * build-id note), the notes, 200 bytes of "code"; no section headers. */
static void image(unsigned char *b, int msb, int machine, int seal_note)
{
  memset(b, 0, SIZE);
  memcpy(b, ELFMAG, SELFMAG);
  b[EI_CLASS] = ELFCLASS64;
  b[EI_DATA] = msb ? ELFDATA2MSB : ELFDATA2LSB;
  b[EI_VERSION] = EV_CURRENT;
  put(b, 16, ET_DYN, 2, msb);
  put(b, 18, (uint64_t)machine, 2, msb);
  put(b, 20, EV_CURRENT, 4, msb);
  put(b, 32, EH, 8, msb);   /* e_phoff */
  put(b, 52, EH, 2, msb);   /* e_ehsize */
  put(b, 54, 56, 2, msb);   /* e_phentsize */
  put(b, 56, 3, 2, msb);    /* e_phnum */
  size_t ph = EH;
  put(b, ph, PT_LOAD, 4, msb);
  put(b, ph + 4, PF_R | PF_X, 4, msb);
  put(b, ph + 32, SIZE, 8, msb); /* p_filesz */
  put(b, ph + 40, SIZE, 8, msb); /* p_memsz */
  put(b, ph + 48, 4096, 8, msb);
  for (int k = 0; k < 2; k++) {
    ph += 56;
    put(b, ph, PT_NOTE, 4, msb);
    put(b, ph + 4, PF_R, 4, msb);
    put(b, ph + 8, k ? BID : NOTE, 8, msb);
    put(b, ph + 32, k ? 36 : 80, 8, msb);
    put(b, ph + 40, k ? 36 : 80, 8, msb);
    put(b, ph + 48, 4, 8, msb);
  }
  /* the seal note as aot.c's C defines it (aotseal.c) */
  put(b, NOTE, 4, 4, msb);
  put(b, NOTE + 4, 64, 4, msb);
  put(b, NOTE + 8, 0x4c414553, 4, msb);
  memcpy(b + NOTE + 12, seal_note ? "DNC" : "XYZ", 4);
  memcpy(b + NOTE + 16, "DNCSEAL", 8);
  put(b, NOTE + 24, 1, 4, msb); /* DNC_AOT_ABI */
  memcpy(b + NOTE + 48, "0.4.0", 5);
  put(b, BID, 4, 4, msb);
  put(b, BID + 4, 20, 4, msb);
  put(b, BID + 8, NT_GNU_BUILD_ID, 4, msb);
  memcpy(b + BID + 12, "GNU", 4);
  for (int i = 0; i < 20; i++)
    b[BID + 16 + i] = (unsigned char)(0xa0 + i);
  for (int i = 0; i < 200; i++)
    b[CODE + i] = (unsigned char)(i * 7 + 1);
}

static char dir[] = "/tmp/dnc-test-aotseal.XXXXXX";
static char path[256];

static void save(const unsigned char *b, size_t n)
{
  FILE *f = fopen(path, "wb");
  fwrite(b, 1, n, f);
  fclose(f);
}

static size_t load(unsigned char *b, size_t n)
{
  FILE *f = fopen(path, "rb");
  size_t got = fread(b, 1, n, f);
  fclose(f);
  return got;
}

/* check: 0, or the reason contains want */
static void check(const unsigned char *b, size_t n, const char *want,
                  const char *name)
{
  char err[256] = "";
  save(b, n);
  int rc = dnc_aot_check_file(path, err, sizeof err);
  if (!want)
    ok(rc == 0, "%s: accepted%s%s", name, rc ? ": " : "", err);
  else
    ok(rc == -1 && strstr(err, want), "%s: refused, saying %s (%s)", name,
       want, err);
}

static void test_native(void)
{
  static unsigned char b[SIZE], s[SIZE], c[SIZE];
  char err[256] = "";
  image(b, 0, EM_X86_64, 1);
  save(b, SIZE);
  check(b, SIZE, "its dnc seal was never filled in", "before sealing");
  is_int(dnc_aot_seal(path, err, sizeof err), 0, "sealed %s", err);
  is_int((int)load(s, SIZE), SIZE, "the size unchanged");
  memcpy(c, s, SIZE);
  memset(c + NOTE + 28, 0, 20);
  ok(!memcmp(c, b, SIZE), "only the seal's count and digest written");
  is_int((int)get(s, NOTE + 28, 4, 0), 1, "the count: 1 loaded segment");
  int hex = 1;
  for (int i = 0; i < 16; i++)
    hex &= !!strchr("0123456789abcdef", s[NOTE + 32 + i]);
  ok(hex, "the digest: 16 hex digits");
  is_int(dnc_aot_seal(path, err, sizeof err), 0, "sealed again");
  load(c, SIZE);
  ok(!memcmp(c, s, SIZE), "the same seal (its own bytes left out)");
  check(s, SIZE, NULL, "the sealed image");

  /* what strip rewrites: the section header fields of the ELF header,
   * and what follows the loaded segments */
  memcpy(c, s, SIZE);
  put(c, 40, 0x12345, 8, 0); /* e_shoff */
  put(c, 58, 64, 2, 0);      /* e_shentsize */
  put(c, 62, 7, 2, 0);       /* e_shstrndx */
  check(c, SIZE, NULL, "the ELF header's section fields changed");
  for (int i = 0; i < 20; i++)
    c[BID + 16 + i] ^= 0x55; /* RPM's debugedit */
  check(c, SIZE, NULL, "and a new build-id");
  static unsigned char big[SIZE + 100];
  memcpy(big, s, SIZE);
  memset(big + SIZE, 'x', 100);
  check(big, SIZE + 100, NULL, "bytes after the loaded segments");

  /* what the loader reads */
  const struct { size_t off; const char *what; } flips[] = {
      {CODE + 100, "a code byte"}, {EH + 56 + 4, "a program header"},
      {18, "e_machine"}, {48, "e_flags"},
      {NOTE + 12 + 60, "the seal's version"}, {NOTE + 28, "the seal's count"},
      {NOTE + 32 + 3, "the digest"}, {BID + 4, "the build-id's size"}};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    memcpy(c, s, SIZE);
    c[flips[i].off] ^= 0x01;
    check(c, SIZE, flips[i].off == 18 ? "another architecture" :
                   flips[i].off == NOTE + 28 ? "were rewritten" :
                   "its digest differs", flips[i].what);
  }
  memcpy(c, s, SIZE);
  put(c, NOTE + 24, 7, 4, 0);
  check(c, SIZE, "for library ABI 7", "another ABI");
  check(s, SIZE - 1, "truncated?", "one byte short");
  check(s, 100, "truncated?", "cut in the program headers");

  /* damaged headers and notes: refused, nothing read past the file
   * (ASan) */
  memcpy(c, s, SIZE);
  put(c, 56, 0xffff, 2, 0);
  check(c, SIZE, "program headers lie past its end", "e_phnum 65535");
  memcpy(c, s, SIZE);
  put(c, NOTE, 0xfffffff0u, 4, 0);
  check(c, SIZE, "it has no dnc seal", "a note's name size 2^32 - 16");
  memcpy(c, s, SIZE);
  put(c, NOTE + 4, 0xffffffffu, 4, 0);
  check(c, SIZE, "it has no dnc seal", "a note's size 2^32 - 1");
  memcpy(c, s, SIZE);
  put(c, EH + 2 * 56 + 32, 0x7fffffff, 8, 0);
  check(c, SIZE, "a segment lies past its end", "a note segment too long");
  memcpy(c, s, SIZE);
  put(c, 40, SIZE - 10, 8, 0);
  put(c, 58, 64, 2, 0);
  put(c, 60, 1, 2, 0);
  check(c, SIZE, "section headers lie past its end", "a section header "
        "table past the end");
  memcpy(c, s, SIZE);
  put(c, EH + 40, SIZE + 4096, 8, 0); /* memsz: code not in the file */
  check(c, SIZE, "a debug-info file", "an executable segment larger in "
        "memory than in the file");
}

static void test_foreign(void)
{
  static unsigned char b[SIZE], s[SIZE];
  char err[256] = "";
  image(b, 1, EM_PPC64, 1);
  save(b, SIZE);
  is_int(dnc_aot_seal(path, err, sizeof err), 0, "a powerpc64 image sealed "
         "%s", err);
  load(s, SIZE);
  is_int((int)get(s, NOTE + 28, 4, 1), 1, "its count big-endian");
  ok(s[NOTE + 32] != 0, "its digest written");
  check(s, SIZE, "built for another architecture (ELF machine 21, "
        "big-endian)", "a powerpc64 library here");

  image(b, 0, EM_X86_64, 0);
  save(b, SIZE);
  is_int(dnc_aot_seal(path, err, sizeof err), -1, "an image without the "
         "seal note is not sealed");
  ok(strstr(err, "lost its dnc seal note") != NULL, "  saying so: %s", err);

  image(b, 0, EM_386, 1);
  b[EI_CLASS] = ELFCLASS32;
  save(b, SIZE);
  is_int(dnc_aot_seal(path, err, sizeof err), 0, "a 32-bit library: 0");
  load(s, SIZE);
  ok(!memcmp(s, b, SIZE), "  left as it is (dnc_module_load reads 64-bit "
     "only)");
  static const unsigned char wasm[] = {0, 'a', 's', 'm', 1, 0, 0, 0};
  save(wasm, sizeof wasm);
  is_int(dnc_aot_seal(path, err, sizeof err), 0, "a wasm module: 0");
  is_int((int)load(s, SIZE), (int)sizeof wasm, "  left as it is");
}

int main(void)
{
  if (!mkdtemp(dir)) {
    printf("Bail out! no temporary directory\n");
    return 1;
  }
  snprintf(path, sizeof path, "%s/lib.so", dir);
  test_native();
  test_foreign();
  unlink(path);
  rmdir(dir);
  return done_testing();
}
