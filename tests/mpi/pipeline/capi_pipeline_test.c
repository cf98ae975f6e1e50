/* The pipeline section of smp.h from plain C99, under mpirun: the pure
 * queries (valid before smp_init) with their error paths, then tensors
 * through smp_exchange_tensors(_deferred) / smp_send_tensor /
 * smp_recv_tensor(_into) along a chain and a ring of ranks. Any failure
 * aborts the job with the line. */
#include <dlpack/dlpack.h>
#include <smp/smp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_rank = -1;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "rank %d: %s:%d: CHECK failed: %s (last error: %s)\n", g_rank,  \
              __FILE__, __LINE__, #cond, smp_last_error());                          \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

static int contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

static void pure_queries(void) {
  size_t n = 0;
  smp_pipe_op_t ops[64];
  CHECK(smp_pipeline_schedule(SMP_SCHEDULE_INTERLEAVED, 4, 0, 8, 1, 0, NULL, 0, &n) == SMP_SUCCESS);
  CHECK(n > 16);
  size_t need = n;
  CHECK(smp_pipeline_schedule(SMP_SCHEDULE_INTERLEAVED, 4, 0, 8, 1, 0, ops, 3, &n) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(n == need && contains(smp_last_error(), "capacity 3"));
  CHECK(smp_pipeline_schedule(SMP_SCHEDULE_INTERLEAVED, 4, 0, 8, 1, 0, ops, 64, &n) == SMP_SUCCESS);
  /* Stage 0 of 1F1B starts with a forward of microbatch 0 and sends it on. */
  CHECK(ops[0].kind == SMP_PIPE_FORWARD && ops[0].microbatch == 0 && ops[0].batch == -1);
  CHECK(ops[1].kind == SMP_PIPE_SEND_ACTIVATION && ops[1].peer == 1 && ops[1].batch == 0);
  int forwards = 0, backwards = 0;
  for (size_t i = 0; i < n; ++i) {
    forwards += ops[i].kind == SMP_PIPE_FORWARD;
    backwards += ops[i].kind == SMP_PIPE_BACKWARD;
  }
  CHECK(forwards == 8 && backwards == 8);
  CHECK(smp_pipeline_schedule((smp_schedule_t)9, 4, 0, 8, 1, 0, NULL, 0, &n) == SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "kind 9 is not an smp_schedule_t"));
  CHECK(smp_pipeline_schedule(SMP_SCHEDULE_VIRTUAL, 4, 0, 6, 2, 0, NULL, 0, &n) == SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "multiple of pp"));
  CHECK(smp_pipeline_schedule(SMP_SCHEDULE_SIMPLE, 4, 4, 8, 1, 0, NULL, 0, &n) == SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_pipeline_schedule(SMP_SCHEDULE_SIMPLE, 4, 0, 8, 1, 0, NULL, 0, NULL) == SMP_ERR_INVALID_ARGUMENT);

  /* (p-1)/(m+p-1) for uniform stages and free transfers. */
  const double f[4] = {1, 1, 1, 1}, b[4] = {2, 2, 2, 2};
  double step = 0, bubble = 0;
  int peak[4];
  CHECK(smp_pipeline_simulate(SMP_SCHEDULE_INTERLEAVED, 4, 8, 1, 0, f, b, 0, 0, &step, &bubble, peak) ==
        SMP_SUCCESS);
  CHECK(step > 32.999999 && step < 33.000001);
  CHECK(bubble > 3.0 / 11 - 1e-12 && bubble < 3.0 / 11 + 1e-12);
  CHECK(peak[0] == 4 && peak[3] == 1);
  CHECK(smp_pipeline_simulate(SMP_SCHEDULE_SIMPLE, 4, 8, 1, 0, NULL, b, 0, 0, &step, &bubble, NULL) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_pipeline_simulate(SMP_SCHEDULE_SIMPLE, 4, 8, 1, 0, f, b, -1, 0, &step, &bubble, NULL) ==
        SMP_ERR_INVALID_ARGUMENT);
  /* Products that overflow int or would take gigabytes (issue 18). */
  CHECK(smp_pipeline_schedule(SMP_SCHEDULE_SIMPLE, 4, 0, 1 << 16, 1 << 15, 0, NULL, 0, &n) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "microbatches x chunks"));
  CHECK(smp_pipeline_simulate(SMP_SCHEDULE_SIMPLE, 4, 2147483647, 2, 0, f, b, 0, 0, &step, &bubble, NULL) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_pipeline_simulate(SMP_SCHEDULE_SIMPLE, 4, 1 << 20, 2, 0, f, b, 0, 0, &step, &bubble, NULL) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "microbatches x chunks"));

  const smp_layer_cost_t layers[5] = {{1, 10}, {1, 10}, {1, 10}, {1, 10}, {4, 10}};
  smp_stage_info_t st[2];
  double worst = 0;
  CHECK(smp_pipeline_partition(layers, 5, 2, 0.0, 0, st, &worst) == SMP_SUCCESS);
  CHECK(st[0].first_layer == 0 && st[0].num_layers == 4 && st[1].first_layer == 4);
  CHECK(worst == 0.5 && st[1].compute == 4 && st[0].memory == 40);
  CHECK(smp_pipeline_partition(layers, 5, 2, 0.0, 25, st, &worst) == SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "best split needs 30 bytes"));
  CHECK(smp_pipeline_partition(layers, 5, 2, 0.0, 0, NULL, &worst) == SMP_ERR_INVALID_ARGUMENT);
}

/* A float32 tensor of shape (rows, 3) owned by the caller. */
typedef struct {
  DLManagedTensor m;
  int64_t shape[2];
  float *data;
} host_tensor;

static void host_tensor_init(host_tensor *t, int64_t rows, float base) {
  memset(t, 0, sizeof *t);
  t->shape[0] = rows;
  t->shape[1] = 3;
  t->data = malloc((size_t)(rows * 3) * sizeof(float));
  for (int64_t i = 0; i < rows * 3; ++i) t->data[i] = base + (float)i;
  t->m.dl_tensor.data = t->data;
  t->m.dl_tensor.device.device_type = kDLCPU;
  t->m.dl_tensor.ndim = 2;
  t->m.dl_tensor.dtype.code = kDLFloat;
  t->m.dl_tensor.dtype.bits = 32;
  t->m.dl_tensor.dtype.lanes = 1;
  t->m.dl_tensor.shape = t->shape;
}

static void transport(void) {
  int rank = 0, size = 1;
  CHECK(smp_rank(SMP_PP_GROUP, &rank) == SMP_SUCCESS && smp_size(SMP_PP_GROUP, &size) == SMP_SUCCESS);
  host_tensor mine, into;
  host_tensor_init(&mine, rank + 2, 100.0f * (float)rank);

  /* Everyone: send forward, receive (allocated) from behind. */
  smp_tensor_transfer_t send = {rank + 1, 7, &mine.m}, recv = {rank - 1, 7, NULL};
  CHECK(smp_exchange_tensors(&send, rank + 1 < size, &recv, rank > 0, SMP_PP_GROUP) == SMP_SUCCESS);
  if (rank > 0) {
    DLManagedTensor *got = recv.tensor;
    CHECK(got != NULL && got->dl_tensor.ndim == 2 && got->dl_tensor.shape[0] == rank + 1 &&
          got->dl_tensor.shape[1] == 3 && got->dl_tensor.dtype.code == kDLFloat);
    const float *p = (const float *)got->dl_tensor.data;
    for (int i = 0; i < (rank + 1) * 3; ++i) CHECK(p[i] == 100.0f * (float)(rank - 1) + (float)i);
    got->deleter(got);
  }

  /* Rank 0 -> 1: a mismatched receive, then the allocating and the
   * matching one. */
  if (rank == 0) {
    for (int k = 0; k < 3; ++k) CHECK(smp_send_tensor(&mine.m, 1, SMP_PP_GROUP, 2) == SMP_SUCCESS);
  } else if (rank == 1) {
    host_tensor_init(&into, 5, 0);
    CHECK(smp_recv_tensor_into(&into.m, 0, SMP_PP_GROUP, 2) == SMP_ERR_PEER_FAILED);
    CHECK(contains(smp_last_error(), "dimension 0 differs (2 vs 5)"));
    DLManagedTensor *got = NULL;
    CHECK(smp_recv_tensor(&got, 0, SMP_PP_GROUP, 2) == SMP_SUCCESS);
    CHECK(got->dl_tensor.shape[0] == 2 && ((const float *)got->dl_tensor.data)[5] == 5.0f);
    got->deleter(got);
    free(into.data);
    host_tensor_init(&into, 2, -1);
    CHECK(smp_recv_tensor_into(&into.m, 0, SMP_PP_GROUP, 2) == SMP_SUCCESS);
    CHECK(into.data[4] == 4.0f);
    free(into.data);
  }
  CHECK(smp_send_tensor(NULL, 0, SMP_PP_GROUP, 0) == SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_recv_tensor(NULL, 0, SMP_PP_GROUP, 0) == SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_send_tensor(&mine.m, size, SMP_PP_GROUP, 0) == SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "is not a rank of PP_GROUP"));
  CHECK(smp_send_tensor(&mine.m, 0, (smp_group_t)42, 0) == SMP_ERR_INVALID_ARGUMENT);
  free(mine.data);
  CHECK(smp_barrier(SMP_WORLD) == SMP_SUCCESS);
}

/* Every rank sends a 4 MiB tensor (far above MPI's eager limit, so a send
 * completes only once the peer receives) around the ring in one exchange
 * and receives its neighbour's in the next one. With smp_exchange_tensors
 * every rank would wait in the first exchange for a receive its neighbour
 * posts only in the second; the deferred form leaves the sends in flight. */
static void deferred(void) {
  int rank = 0, size = 1;
  CHECK(smp_rank(SMP_PP_GROUP, &rank) == SMP_SUCCESS && smp_size(SMP_PP_GROUP, &size) == SMP_SUCCESS);
  const int64_t rows = (4 << 20) / (3 * (int64_t)sizeof(float));
  host_tensor mine;
  host_tensor_init(&mine, rows, 1000.0f * (float)rank);
  smp_tensor_transfer_t send = {(rank + 1) % size, 9, &mine.m};
  smp_tensor_transfer_t recv = {(rank + size - 1) % size, 9, NULL};
  smp_request_t sent = NULL;
  CHECK(smp_exchange_tensors_deferred(&send, 1, NULL, 0, SMP_PP_GROUP, &sent) == SMP_SUCCESS);
  CHECK(sent != NULL);
  smp_request_t none = NULL; /* nothing sent: a request all the same */
  CHECK(smp_exchange_tensors_deferred(NULL, 0, &recv, 1, SMP_PP_GROUP, &none) == SMP_SUCCESS);
  CHECK(none != NULL && smp_wait(none) == SMP_SUCCESS);
  CHECK(smp_wait(sent) == SMP_SUCCESS);
  DLManagedTensor *got = recv.tensor;
  CHECK(got != NULL && got->dl_tensor.shape[0] == rows && got->dl_tensor.shape[1] == 3);
  const float *p = (const float *)got->dl_tensor.data;
  const float base = 1000.0f * (float)((rank + size - 1) % size);
  for (int64_t i = 0; i < rows * 3; i += 4099) CHECK(p[i] == base + (float)i);
  CHECK(p[rows * 3 - 1] == base + (float)(rows * 3 - 1));
  got->deleter(got);

  CHECK(smp_exchange_tensors_deferred(&send, 1, NULL, 0, SMP_PP_GROUP, NULL) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "sends_done is NULL"));
  send.peer = size;
  CHECK(smp_exchange_tensors_deferred(&send, 1, NULL, 0, SMP_PP_GROUP, &sent) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(sent == NULL);
  free(mine.data);
  CHECK(smp_barrier(SMP_WORLD) == SMP_SUCCESS);
}

int main(void) {
  pure_queries();
  host_tensor t;
  host_tensor_init(&t, 1, 0);
  CHECK(smp_send_tensor(&t.m, 0, SMP_PP_GROUP, 0) == SMP_ERR_NOT_INITIALIZED);
  free(t.data);
  smp_config_t config = SMP_CONFIG_INIT;
  const char *size = getenv("OMPI_COMM_WORLD_SIZE");
  config.pp_size = size ? atoi(size) : 1;  /* every rank one stage */
  CHECK(smp_init(&config) == SMP_SUCCESS);
  CHECK(smp_rank(SMP_WORLD, &g_rank) == SMP_SUCCESS);
  transport();
  deferred();
  if (g_rank == 0) printf("C API pipeline section ok\n");
  CHECK(smp_finalize() == SMP_SUCCESS);
  return 0;
}
