/*
 * llvm_host.c - what LLVM knows about the host: its version, and the CPU
 * name and features that the code generator (a later pass) targets.
 * Queried once; the strings are copied out of LLVM and kept for the process.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "dnc_int.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char version[32];
static char *cpu, *features;

static char *take(char *llvm_msg)
{
  char *s = strdup(llvm_msg ? llvm_msg : "");
  LLVMDisposeMessage(llvm_msg);
  if (!s)
    dnc_die(__FILE__, __LINE__, "out of memory");
  return s;
}

static void query(void)
{
  unsigned major, minor, patch;
  LLVMGetVersion(&major, &minor, &patch);
  snprintf(version, sizeof version, "%u.%u.%u", major, minor, patch);
  cpu = take(LLVMGetHostCPUName());
  features = take(LLVMGetHostCPUFeatures());
}

const char *dnc_llvm_version(void)
{
  pthread_once(&once, query);
  return version;
}

const char *dnc_host_cpu(void)
{
  pthread_once(&once, query);
  return cpu;
}

const char *dnc_host_features(void)
{
  pthread_once(&once, query);
  return features;
}
