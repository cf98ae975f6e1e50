/* A program that misbehaves on purpose, for hang_test.py: one rank never
 * joins a collective, never sends, dies, or exits early. Plain C on the
 * public header. Usage: hang_helper MODE */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smp/smp.h"

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  float buf[1234] = {0};
  int rank = 0, size = 1;
  if (smp_init(NULL) != SMP_SUCCESS) {
    fprintf(stderr, "smp_init: %s\n", smp_last_error());
    return 3;
  }
  smp_rank(SMP_WORLD, &rank);
  smp_size(SMP_WORLD, &size);
  const int odd = rank == size - 1;
  if (strcmp(mode, "never-join") == 0) {
    if (odd) sleep(600); /* never joins the allreduce */
    smp_allreduce(buf, buf, 1234, SMP_FLOAT32, SMP_SUM, SMP_WORLD, NULL);
  } else if (strcmp(mode, "never-send") == 0) {
    if (rank == 0) smp_recv(buf, 10, SMP_FLOAT32, 1, SMP_WORLD, 42, NULL);
    else sleep(600);
  } else if (strcmp(mode, "killed") == 0 || strcmp(mode, "exit-early") == 0) {
    for (int i = 0;; ++i) {
      if (odd && i == 5) {
        if (mode[0] == 'k') raise(SIGKILL);
        exit(0); /* without smp_finalize */
      }
      smp_allreduce(buf, buf, 1234, SMP_FLOAT32, SMP_SUM, SMP_WORLD, NULL);
    }
  } else {
    fprintf(stderr, "unknown mode '%s'\n", mode);
    return 2;
  }
  smp_finalize();
  return 0;
}
