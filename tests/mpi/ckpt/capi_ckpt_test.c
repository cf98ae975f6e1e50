/* The checkpoint section of the C API, from C99 against smp.h alone, under
 * mpirun: save with tensor-parallel column slices, a replicated bias and a
 * sharded optimizer range; load into row slices dealt in reverse rank
 * order; user content per rank; single safetensors files; and every
 * argument check returns its status with a message. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, truncate */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smp/smp.h"

static int failures = 0;
static int me = 0, np = 1;

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      ++failures;                                                                      \
      fprintf(stderr, "[rank %d] %s:%d: CHECK(%s) failed; last error: %s\n", me,       \
              __FILE__, __LINE__, #cond, smp_last_error());                            \
    }                                                                                  \
  } while (0)

/* A bad call: the expected status and a non-empty message. */
#define EXPECT_STATUS(call, status)                                                    \
  do {                                                                                 \
    smp_status_t st_ = (call);                                                         \
    if (st_ != (status) || smp_last_error()[0] == '\0') {                              \
      ++failures;                                                                      \
      fprintf(stderr, "[rank %d] %s:%d: %s returned %d (%s), expected %d\n", me,       \
              __FILE__, __LINE__, #call, (int)st_, smp_last_error(), (int)(status));   \
    }                                                                                  \
  } while (0)

enum { R = 7, C = 10 }; /* W is R x C */

static float w_value(size_t r, size_t c) { return (float)(r * 100 + c) * 0.5f; }
static float opt_value(size_t i) { return (float)i * -0.25f; }

/* Part i of n of len: the first len % n parts get one more. */
static void split(size_t len, size_t n, size_t i, size_t *off, size_t *cnt) {
  *cnt = len / n + (i < len % n ? 1 : 0);
  *off = i * (len / n) + (i < len % n ? i : len % n);
}

static void test_save_and_reshard(const char *dir) {
  const size_t shape[2] = {R, C};
  size_t off[2] = {0, 0}, ext[2] = {R, 0}, i, j;
  /* Save: column slices of W, the whole bias replicated, optimizer state of
   * W as a flat range per rank. */
  split(C, (size_t)np, (size_t)me, &off[1], &ext[1]);
  float *w = malloc(sizeof(float) * R * (ext[1] + 1));
  for (i = 0; i < R; ++i)
    for (j = 0; j < ext[1]; ++j) w[i * ext[1] + j] = w_value(i, off[1] + j);
  int64_t bias[3] = {-1, 2, -3};
  size_t ob, oc;
  split(R * C, (size_t)np, (size_t)me, &ob, &oc);
  float *o = malloc(sizeof(float) * (oc + 1));
  for (i = 0; i < oc; ++i) o[i] = opt_value(ob + i);
  const size_t bshape[1] = {3};

  smp_ckpt_t ck = NULL;
  CHECK(smp_ckpt_create(&ck) == SMP_SUCCESS);
  CHECK(smp_ckpt_add_tensor(ck, "w", SMP_FLOAT32, 2, shape, off, ext, w, 0) == SMP_SUCCESS);
  CHECK(smp_ckpt_add_tensor(ck, "bias", SMP_INT64, 1, bshape, NULL, NULL, bias, SMP_CKPT_REPLICATED) == SMP_SUCCESS);
  CHECK(smp_ckpt_add_range(ck, "w", SMP_FLOAT32, 2, shape, NULL, NULL, ob, oc, o, SMP_CKPT_OPTIMIZER) == SMP_SUCCESS);
  char rng[32];
  snprintf(rng, sizeof rng, "rng-%d", me);
  CHECK(smp_ckpt_set_user(ck, "rng", rng, strlen(rng)) == SMP_SUCCESS);
  CHECK(smp_ckpt_set_user(ck, "step", "77", 2) == SMP_SUCCESS);
  CHECK(smp_ckpt_set_options(ck, 4096, 0, 1) == SMP_SUCCESS);
  CHECK(smp_ckpt_save(ck, dir, SMP_CKPT_CONSOLIDATED, 1) == SMP_SUCCESS);
  CHECK(smp_ckpt_save(ck, dir, SMP_CKPT_SHARDED, 1) == SMP_SUCCESS); /* keeps only this one */
  const char *path = NULL;
  CHECK(smp_ckpt_last_path(ck, &path) == SMP_SUCCESS && strstr(path, "ckpt-00000002") != NULL);

  /* Load: row slices, dealt in reverse rank order; optimizer state whole
   * on every rank. */
  const int lr = np - 1 - me;
  size_t loff[2] = {0, 0}, lext[2] = {0, C};
  split(R, (size_t)np, (size_t)lr, &loff[0], &lext[0]);
  float *lw = calloc(lext[0] * C + 1, sizeof(float));
  float *lo = calloc(R * C, sizeof(float));
  int64_t lbias[3] = {0, 0, 0};
  smp_ckpt_t ld = NULL;
  CHECK(smp_ckpt_create(&ld) == SMP_SUCCESS);
  CHECK(smp_ckpt_add_tensor(ld, "w", SMP_FLOAT32, 2, shape, loff, lext, lw, 0) == SMP_SUCCESS);
  CHECK(smp_ckpt_add_tensor(ld, "bias", SMP_INT64, 1, bshape, NULL, NULL, lbias, SMP_CKPT_REPLICATED) == SMP_SUCCESS);
  CHECK(smp_ckpt_add_tensor(ld, "w", SMP_FLOAT32, 2, shape, NULL, NULL, lo, SMP_CKPT_OPTIMIZER | SMP_CKPT_REPLICATED) ==
        SMP_SUCCESS);
  CHECK(smp_ckpt_load(ld, dir) == SMP_SUCCESS);
  int bad = 0;
  for (i = 0; i < lext[0]; ++i)
    for (j = 0; j < C; ++j) bad += lw[i * C + j] != w_value(loff[0] + i, j);
  for (i = 0; i < R * C; ++i) bad += lo[i] != opt_value(i);
  CHECK(bad == 0);
  CHECK(lbias[0] == -1 && lbias[1] == 2 && lbias[2] == -3);
  int saved = 0;
  CHECK(smp_ckpt_saved_world_size(ld, &saved) == SMP_SUCCESS && saved == np);

  char buf[64];
  size_t len = 0;
  CHECK(smp_ckpt_get_user(ld, "rng", -1, NULL, 0, &len) == SMP_SUCCESS && len == strlen(rng));
  CHECK(smp_ckpt_get_user(ld, "rng", -1, buf, sizeof buf, &len) == SMP_SUCCESS && memcmp(buf, rng, len) == 0);
  CHECK(smp_ckpt_get_user(ld, "step", 0, buf, sizeof buf, &len) == SMP_SUCCESS && len == 2 && buf[0] == '7');
  EXPECT_STATUS(smp_ckpt_get_user(ld, "rng", -1, buf, 2, &len), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_get_user(ld, "nothing", 0, buf, sizeof buf, &len), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_get_user(ld, "rng", np, buf, sizeof buf, &len), SMP_ERR_INVALID_ARGUMENT);

  /* A registration the checkpoint cannot satisfy fails on every rank. */
  smp_ckpt_t wrong = NULL;
  const size_t wshape[2] = {R, C + 1};
  CHECK(smp_ckpt_create(&wrong) == SMP_SUCCESS);
  CHECK(smp_ckpt_add_tensor(wrong, "w", SMP_FLOAT32, 2, me == 0 ? wshape : shape, NULL, NULL, lo, 0) == SMP_SUCCESS);
  EXPECT_STATUS(smp_ckpt_load(wrong, dir), SMP_ERR_INVALID_ARGUMENT);
  char missing[512];
  snprintf(missing, sizeof missing, "%s/does-not-exist", dir);
  EXPECT_STATUS(smp_ckpt_load(wrong, missing), SMP_ERR_IO);
  CHECK(smp_ckpt_destroy(wrong) == SMP_SUCCESS);

  CHECK(smp_ckpt_destroy(ck) == SMP_SUCCESS);
  CHECK(smp_ckpt_destroy(ld) == SMP_SUCCESS);
  free(w);
  free(o);
  free(lw);
  free(lo);
}

static void test_argument_checks(const char *dir) {
  smp_ckpt_t ck = NULL;
  float x[4] = {0};
  const size_t s4[1] = {4}, o3[1] = {3}, e2[1] = {2};
  EXPECT_STATUS(smp_ckpt_create(NULL), SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_ckpt_create(&ck) == SMP_SUCCESS);
  EXPECT_STATUS(smp_ckpt_add_tensor(NULL, "a", SMP_FLOAT32, 1, s4, NULL, NULL, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, NULL, SMP_FLOAT32, 1, s4, NULL, NULL, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "", SMP_FLOAT32, 1, s4, NULL, NULL, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "a", (smp_dtype_t)42, 1, s4, NULL, NULL, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "a", SMP_FLOAT32, 9, s4, NULL, NULL, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "a", SMP_FLOAT32, 1, NULL, NULL, NULL, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "a", SMP_FLOAT32, 1, s4, o3, NULL, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "a", SMP_FLOAT32, 1, s4, o3, e2, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "a", SMP_FLOAT32, 1, s4, NULL, NULL, NULL, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "a", SMP_FLOAT32, 1, s4, NULL, NULL, x, 8), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_add_range(ck, "a", SMP_FLOAT32, 1, s4, NULL, NULL, 3, 2, x, 0), SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_ckpt_add_tensor(ck, "a", SMP_FLOAT32, 1, s4, NULL, NULL, x, SMP_CKPT_REPLICATED) == SMP_SUCCESS);
  EXPECT_STATUS(smp_ckpt_add_tensor(ck, "a", SMP_FLOAT32, 1, s4, NULL, NULL, x, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_set_user(ck, NULL, "x", 1), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_set_user(ck, "", "x", 1), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_set_user(ck, "k", NULL, 1), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_set_options(ck, 100, 0, 1), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_set_options(ck, 0, 0, 2), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_save(ck, NULL, SMP_CKPT_SHARDED, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_save(ck, dir, (smp_ckpt_mode_t)5, 0), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_save(ck, dir, SMP_CKPT_SHARDED, -1), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_load(ck, ""), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_saved_world_size(ck, NULL), SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_ckpt_destroy(ck) == SMP_SUCCESS);
  EXPECT_STATUS(smp_ckpt_destroy(ck), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_ckpt_set_user(ck, "k", "x", 1), SMP_ERR_INVALID_ARGUMENT);
}

static void test_safetensors_files(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/plain-%d.safetensors", dir, me);
  const uint16_t h[3] = {0x3f80, 0xc000, 0x0000}; /* BF16 1, -2, 0 */
  const size_t hs[2] = {1, 3};
  const int32_t k = 42;
  smp_tensor_view_t v[2] = {{"h", SMP_BFLOAT16, 2, hs, h}, {"k", SMP_INT32, 0, NULL, &k}};
  CHECK(smp_safetensors_write(path, v, 2) == SMP_SUCCESS);
  smp_safetensors_t f = NULL;
  CHECK(smp_safetensors_open(path, &f) == SMP_SUCCESS);
  size_t n = 0;
  CHECK(smp_safetensors_count(f, &n) == SMP_SUCCESS && n == 2);
  const char *name = NULL;
  smp_dtype_t dt;
  int nd = -1;
  const size_t *shape = NULL;
  CHECK(smp_safetensors_info(f, 0, &name, &dt, &nd, &shape) == SMP_SUCCESS);
  CHECK(strcmp(name, "h") == 0 && dt == SMP_BFLOAT16 && nd == 2 && shape[0] == 1 && shape[1] == 3);
  uint16_t back[3] = {0, 0, 0};
  CHECK(smp_safetensors_read(f, "h", back, sizeof back) == SMP_SUCCESS && memcmp(back, h, sizeof h) == 0);
  EXPECT_STATUS(smp_safetensors_read(f, "h", back, 4), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_safetensors_read(f, "zz", back, 6), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_safetensors_info(f, 2, &name, &dt, &nd, &shape), SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_safetensors_close(f) == SMP_SUCCESS);
  EXPECT_STATUS(smp_safetensors_close(f), SMP_ERR_INVALID_ARGUMENT);
  v[1].dtype = (smp_dtype_t)-3;
  EXPECT_STATUS(smp_safetensors_write(path, v, 2), SMP_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(smp_safetensors_write(path, NULL, 1), SMP_ERR_INVALID_ARGUMENT);

  /* Truncated and header-flipped files: SMP_ERR_CORRUPT. */
  FILE *fp = fopen(path, "r+b");
  CHECK(fp != NULL);
  if (fp) {
    fseek(fp, 8, SEEK_SET);
    fputc('[', fp);
    fclose(fp);
  }
  EXPECT_STATUS(smp_safetensors_open(path, &f), SMP_ERR_CORRUPT);
  CHECK(truncate(path, 5) == 0);
  EXPECT_STATUS(smp_safetensors_open(path, &f), SMP_ERR_CORRUPT);
  snprintf(path, sizeof path, "%s/none.safetensors", dir);
  EXPECT_STATUS(smp_safetensors_open(path, &f), SMP_ERR_IO);
}

int main(void) {
  if (smp_init(NULL) != SMP_SUCCESS) {
    fprintf(stderr, "smp_init: %s\n", smp_last_error());
    return 1;
  }
  smp_rank(SMP_WORLD, &me);
  smp_size(SMP_WORLD, &np);
  char dir[256] = {0};
  if (me == 0) {
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/smp-ckpt-capi-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) dir[0] = '\0';
  }
  smp_broadcast(dir, sizeof dir, SMP_UINT8, 0, SMP_WORLD, NULL);
  CHECK(dir[0] != '\0');
  test_save_and_reshard(dir);
  test_argument_checks(dir);
  test_safetensors_files(dir);
  smp_barrier(SMP_WORLD);
  if (me == 0) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  }
  long long local = failures, total = 0;
  smp_allreduce(&local, &total, 1, SMP_INT64, SMP_SUM, SMP_WORLD, NULL);
  smp_finalize();
  return total == 0 ? 0 : 1;
}
