/* One rank (the last) never joins a call the others make: a checkpoint
 * save or load, a tensor receive, a tensor exchange; or an allreduce
 * (never-join), for smprun. For call_hang_test.py. Plain C on the public
 * header and DLPack.
 * Usage: call_hang_helper MODE [DIR]
 *   ckpt-save DIR   the others save a sharded checkpoint under DIR
 *   ckpt-load DIR   every rank saves one under DIR, then the others load it
 *   recv-tensor     the others smp_recv_tensor(peer last, WORLD, tag 5)
 *   exchange        the others exchange a tensor each way with the last
 *   exchange-deferred  the others send the last 1 MiB (too large to go
 *                   before it is received) with smp_exchange_tensors_deferred
 *                   and smp_wait the sends
 *   optimizer-step  every rank creates a sharded optimizer (DP_GROUP),
 *                   the others step it
 *   never-join      the others smp_allreduce on WORLD
 *   iallreduce-group  the others smp_iallreduce on WORLD, the last on
 *                   TP_GROUP (SMP_CHECK does not catch it: call_checker.h) */
#include <dlpack/dlpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smp/smp.h"

static float g_data[4];
static int64_t g_shape[1] = {4};
static float g_big[1 << 18];
static int64_t g_big_shape[1] = {1 << 18};

static DLManagedTensor *host_tensor(int big) {
  static DLManagedTensor m;
  memset(&m, 0, sizeof m);
  m.dl_tensor.data = big ? g_big : g_data;
  m.dl_tensor.device.device_type = kDLCPU;
  m.dl_tensor.ndim = 1;
  m.dl_tensor.dtype.code = kDLFloat;
  m.dl_tensor.dtype.bits = 32;
  m.dl_tensor.dtype.lanes = 1;
  m.dl_tensor.shape = big ? g_big_shape : g_shape;
  return &m;
}

static int fail(const char *what, smp_status_t st) {
  fprintf(stderr, "%s: %s: %s\n", what, smp_status_string(st), smp_last_error());
  return 3;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  const char *dir = argc > 2 ? argv[2] : "";
  int rank = 0, size = 1;
  smp_status_t st = smp_init(NULL);
  if (st != SMP_SUCCESS) return fail("smp_init", st);
  smp_rank(SMP_WORLD, &rank);
  smp_size(SMP_WORLD, &size);
  const int last = size - 1, odd = rank == last;
  if (strncmp(mode, "ckpt-", 5) == 0) {
    smp_ckpt_t ck = NULL;
    size_t global = 4 * (size_t)size, off = 4 * (size_t)rank, local = 4;
    if ((st = smp_ckpt_create(&ck)) != SMP_SUCCESS) return fail("smp_ckpt_create", st);
    st = smp_ckpt_add_tensor(ck, "w", SMP_FLOAT32, 1, &global, &off, &local, g_data, 0);
    if (st != SMP_SUCCESS) return fail("smp_ckpt_add_tensor", st);
    if (strcmp(mode, "ckpt-load") == 0) {
      if ((st = smp_ckpt_save(ck, dir, SMP_CKPT_SHARDED, 0)) != SMP_SUCCESS) return fail("smp_ckpt_save", st);
      if (odd) sleep(600); /* never joins the load */
      st = smp_ckpt_load(ck, dir);
    } else {
      if (odd) sleep(600); /* never joins the save */
      st = smp_ckpt_save(ck, dir, SMP_CKPT_SHARDED, 0);
    }
    if (st != SMP_SUCCESS) return fail(mode, st);
    smp_ckpt_destroy(ck);
  } else if (strcmp(mode, "recv-tensor") == 0) {
    if (odd) sleep(600); /* never sends */
    DLManagedTensor *got = NULL;
    if ((st = smp_recv_tensor(&got, last, SMP_WORLD, 5)) != SMP_SUCCESS) return fail(mode, st);
  } else if (strcmp(mode, "exchange") == 0) {
    if (odd) sleep(600); /* never joins */
    smp_tensor_transfer_t send = {last, 7, host_tensor(0)}, recv = {last, 7, NULL};
    if ((st = smp_exchange_tensors(&send, 1, &recv, 1, SMP_WORLD)) != SMP_SUCCESS) return fail(mode, st);
  } else if (strcmp(mode, "exchange-deferred") == 0) {
    if (odd) sleep(600); /* never receives */
    smp_tensor_transfer_t send = {last, 9, host_tensor(1)};
    smp_request_t sends_done = NULL;
    st = smp_exchange_tensors_deferred(&send, 1, NULL, 0, SMP_WORLD, &sends_done);
    if (st != SMP_SUCCESS) return fail(mode, st);
    if ((st = smp_wait(sends_done)) != SMP_SUCCESS) return fail(mode, st);
  } else if (strcmp(mode, "optimizer-step") == 0) {
    smp_optimizer_config_t cfg = SMP_OPTIMIZER_CONFIG_INIT;
    smp_optimizer_tensor_t t = {"w", 1 << 12, SMP_FLOAT32, g_big, g_big + (1 << 12), 0};
    smp_optimizer_t opt = NULL;
    if ((st = smp_optimizer_create(&cfg, &t, 1, &opt)) != SMP_SUCCESS) return fail("smp_optimizer_create", st);
    if (odd) sleep(600); /* never steps */
    if ((st = smp_optimizer_step(opt, 1.0, NULL, NULL)) != SMP_SUCCESS) return fail(mode, st);
    smp_optimizer_destroy(opt);
  } else if (strcmp(mode, "never-join") == 0) {
    if (odd) sleep(600);
    st = smp_allreduce(g_data, g_data, 4, SMP_FLOAT32, SMP_SUM, SMP_WORLD, NULL);
    if (st != SMP_SUCCESS) return fail(mode, st);
  } else if (strcmp(mode, "iallreduce-group") == 0) {
    smp_request_t r = NULL;
    st = smp_iallreduce(g_data, g_data, 4, SMP_FLOAT32, SMP_SUM, odd ? SMP_TP_GROUP : SMP_WORLD, NULL, &r);
    if (st != SMP_SUCCESS) return fail(mode, st);
    if ((st = smp_wait(r)) != SMP_SUCCESS) return fail(mode, st);
  } else {
    fprintf(stderr, "unknown mode '%s'\n", mode);
    return 2;
  }
  smp_finalize();
  return 0;
}
