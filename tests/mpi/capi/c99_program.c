/* A plain C99 program built against the installed smp.h and libsmp alone
 * (see install_test.sh). Run without a launcher: a world of one. */
#include <stdio.h>
#include <string.h>

#include <smp/smp.h>

#define CHECK(call)                                                              \
  do {                                                                           \
    smp_status_t st_ = (call);                                                   \
    if (st_ != SMP_SUCCESS) {                                                    \
      fprintf(stderr, "%s: %s (%s)\n", #call, smp_status_string(st_), smp_last_error()); \
      return 1;                                                                  \
    }                                                                            \
  } while (0)

int main(void) {
  smp_config_t config = SMP_CONFIG_INIT;
  config.check = 1;
  config.timeout_seconds = 30.0;
  int major, minor, patch, rank = -1, size = -1, i;
  float x[4] = {1.0f, 2.0f, 3.0f, 4.0f}, y[4];
  smp_request_t req;
  smp_version(&major, &minor, &patch);
  if (smp_rank(SMP_WORLD, &rank) != SMP_ERR_NOT_INITIALIZED) return 1;
  CHECK(smp_init(&config));
  CHECK(smp_rank(SMP_WORLD, &rank));
  CHECK(smp_size(SMP_MP_GROUP, &size));
  CHECK(smp_allreduce(x, y, 4, SMP_FLOAT32, SMP_AVG, SMP_WORLD, NULL));
  CHECK(smp_iallgather(x, y, 4, SMP_FLOAT32, SMP_DP_GROUP, NULL, &req));
  CHECK(smp_wait(req));
  for (i = 0; i < 4; ++i)
    if (y[i] != x[i]) return 1;
  if (smp_broadcast(x, 4, SMP_FLOAT32, 1, SMP_WORLD, NULL) != SMP_ERR_INVALID_ARGUMENT) return 1;
  printf("smp %d.%d.%d rank %d of %d: %s\n", major, minor, patch, rank, size,
         strstr(smp_last_error(), "root") ? "root error named" : "?");
  CHECK(smp_finalize());
  return 0;
}
