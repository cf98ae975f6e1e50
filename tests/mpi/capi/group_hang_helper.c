/* For group_hang_test.py: world ranks 0, 2 and 3 create a group and give it
 * a timeout of its own (SMP_TIMEOUT unset); rank 3 never joins the group's
 * allreduce, rank 1 (not a member) just waits. Plain C on the public
 * header. Usage: group_hang_helper */
#include <stdio.h>
#include <unistd.h>

#include "smp/smp.h"

int main(void) {
  float buf[1234] = {0};
  int rank = 0;
  if (smp_init(NULL) != SMP_SUCCESS) {
    fprintf(stderr, "smp_init: %s\n", smp_last_error());
    return 3;
  }
  smp_rank(SMP_WORLD, &rank);
  if (rank == 1) {
    sleep(600);
    return 0;
  }
  const int members[3] = {0, 2, 3};
  smp_group_t g = SMP_WORLD;
  if (smp_group_create(members, 3, &g) != SMP_SUCCESS || smp_group_set_timeout(g, 2) != SMP_SUCCESS) {
    fprintf(stderr, "rank %d: %s\n", rank, smp_last_error());
    return 4;
  }
  if (rank == 3) sleep(600); /* never joins the allreduce */
  smp_allreduce(buf, buf, 1234, SMP_FLOAT32, SMP_SUM, g, NULL);
  smp_finalize();
  return 0;
}
