/*
 * aotseal.h - the seal note of a library `dnc compile` writes (aotseal.c).
 *
 * aot.c puts the note's C definition (dnc_aot_seal_note_c) into the
 * dispatch source it links into every library; after the link,
 * dnc_aot_seal fills in the digest; dnc_module_load (runtime/api.c, through
 * dnc_aot_check_file) reads it back. One definition of the layout, here
 * and in aotseal.c, so the three cannot disagree.
 */
#ifndef DNC_AOTSEAL_H
#define DNC_AOTSEAL_H

#include <stdio.h>

/* Writes, to the library's dispatch C source, the ELF note that carries
 * the seal: an allocated SHT_NOTE section ".note.dnc", which the linker
 * puts in a PT_NOTE segment inside the first loaded segment and which
 * strip keeps, its digest zero until dnc_aot_seal fills it in. Only for a
 * 64-bit ELF target (#if in the C): dnc_module_load reads no other. */
void dnc_aot_seal_note_c(FILE *fp);

#endif
