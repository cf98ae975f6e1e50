/* The sharded optimizer through the public C header alone (C99), under
 * mpirun: AdamW steps against a scalar reference written here, the shard
 * metadata, state export/import, the inf/NaN skip, and argument errors
 * (including a tensor list that differs on one rank). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp/smp.h"

static int failures = 0;
static int world_rank = 0;

#define CHECK(cond, ...)                                                 \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "rank %d: %s:%d: CHECK(%s) failed: ", world_rank,  \
              __FILE__, __LINE__, #cond);                                \
      fprintf(stderr, __VA_ARGS__);                                      \
      fprintf(stderr, "\n");                                             \
      ++failures;                                                        \
    }                                                                    \
  } while (0)

#define CHECK_OK(call) CHECK((call) == SMP_SUCCESS, "%s", smp_last_error())

static int expect_invalid(smp_status_t st, const char *needle) {
  CHECK(st == SMP_ERR_INVALID_ARGUMENT, "status %d (%s)", (int)st, smp_status_string(st));
  CHECK(strstr(smp_last_error(), needle) != NULL, "message '%s' lacks '%s'", smp_last_error(), needle);
  return st == SMP_ERR_INVALID_ARGUMENT;
}

/* Gradient of rank r: small multiples of 2^-10, exact in bf16 and in any sum. */
static float grad_value(int r, int step, size_t t, size_t i) {
  unsigned long long x = (unsigned long long)r * 1000003ull + (unsigned long long)step * 7919ull +
                         (unsigned long long)t * 104729ull + (unsigned long long)i * 2654435761ull;
  x ^= x >> 17;
  x *= 0xed5ad4bbull;
  x ^= x >> 11;
  return (float)((int)(x % 511) - 255) / 1024.0f;
}

static unsigned short to_bf16(float f) {
  unsigned int u;
  memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
static float from_bf16(unsigned short h) {
  unsigned int u = (unsigned int)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#define NT 4
static const size_t counts[NT] = {1031, 0, 77, 4099};
static const smp_dtype_t dtypes[NT] = {SMP_FLOAT32, SMP_FLOAT32, SMP_BFLOAT16, SMP_FLOAT32};
static const char *names[NT] = {"emb.weight", "empty.bias", "ln.weight", "fc.weight"};

typedef struct {
  void *param[NT];
  void *grad[NT];
  smp_optimizer_tensor_t t[NT];
} model_t;

static void model_init(model_t *m) {
  for (size_t k = 0; k < NT; ++k) {
    const size_t ds = dtypes[k] == SMP_FLOAT32 ? 4 : 2;
    m->param[k] = calloc(counts[k] + 1, ds);
    m->grad[k] = calloc(counts[k] + 1, ds);
    for (size_t i = 0; i < counts[k]; ++i) {
      const float v = 0.5f * sinf((float)(i + 17 * k));
      if (ds == 4) ((float *)m->param[k])[i] = v;
      else ((unsigned short *)m->param[k])[i] = to_bf16(v);
    }
    smp_optimizer_tensor_t t = {names[k], counts[k], dtypes[k], m->param[k], m->grad[k], 0};
    m->t[k] = t;
  }
}
static void model_free(model_t *m) {
  for (size_t k = 0; k < NT; ++k) free(m->param[k]), free(m->grad[k]);
}
static float model_get(const model_t *m, size_t k, size_t i) {
  return dtypes[k] == SMP_FLOAT32 ? ((float *)m->param[k])[i]
                                  : from_bf16(((unsigned short *)m->param[k])[i]);
}
static void fill_grads(model_t *m, int rank, int step) {
  for (size_t k = 0; k < NT; ++k)
    for (size_t i = 0; i < counts[k]; ++i) {
      const float g = grad_value(rank, step, k, i);
      if (dtypes[k] == SMP_FLOAT32) ((float *)m->grad[k])[i] = g;
      else ((unsigned short *)m->grad[k])[i] = to_bf16(g);
    }
}

int main(void) {
  CHECK_OK(smp_init(NULL));
  int n = 1;
  CHECK_OK(smp_rank(SMP_WORLD, &world_rank));
  CHECK_OK(smp_size(SMP_DP_GROUP, &n));

  smp_optimizer_config_t cfg = SMP_OPTIMIZER_CONFIG_INIT;
  cfg.lr = 1e-2;
  cfg.bucket_bytes = 4096;
  model_t m;
  model_init(&m);

  /* Scalar reference: float32 masters and moments for every element. */
  float *rp[NT], *rm[NT], *rv[NT];
  for (size_t k = 0; k < NT; ++k) {
    rp[k] = calloc(counts[k] + 1, 4), rm[k] = calloc(counts[k] + 1, 4), rv[k] = calloc(counts[k] + 1, 4);
    for (size_t i = 0; i < counts[k]; ++i) rp[k][i] = model_get(&m, k, i);
  }

  smp_optimizer_t opt = NULL;
  CHECK_OK(smp_optimizer_create(&cfg, m.t, NT, &opt));
  for (int step = 1; step <= 4; ++step) {
    fill_grads(&m, world_rank, step);
    int skipped = -1;
    double norm = 0;
    CHECK_OK(smp_optimizer_step(opt, 1.0, &skipped, &norm));
    CHECK(skipped == 0 && norm == -1.0, "skipped %d norm %g", skipped, norm);
    const double bc1 = 1 - pow(0.9, step), bc2 = 1 - pow(0.999, step);
    for (size_t k = 0; k < NT; ++k)
      for (size_t i = 0; i < counts[k]; ++i) {
        float sum = 0;
        for (int r = 0; r < n; ++r) sum += grad_value(r, step, k, i);
        float g = sum / (float)n;
        if (dtypes[k] == SMP_BFLOAT16) g = from_bf16(to_bf16(g));
        rp[k][i] *= (float)(1 - 1e-2 * 0.01);
        rm[k][i] = rm[k][i] * 0.9f + (float)(1 - 0.9) * g;
        rv[k][i] = rv[k][i] * 0.999f + (float)(1 - 0.999) * g * g;
        rp[k][i] += (float)(-1e-2 / bc1) * rm[k][i] / (sqrtf(rv[k][i]) / (float)sqrt(bc2) + 1e-8f);
      }
  }
  for (size_t k = 0; k < NT; ++k)
    for (size_t i = 0; i < counts[k]; ++i) {
      const float got = model_get(&m, k, i), want = rp[k][i];
      const double tol = dtypes[k] == SMP_FLOAT32 ? 1e-6 : 1.0 / 256;
      if (fabs(got - want) > tol * fabs(want) * 1.0001 + 1e-30) {
        CHECK(0, "%s[%zu]: %.9g vs reference %.9g", names[k], i, got, want);
        break;
      }
    }

  /* Shard metadata: pieces cover every element once across the group. */
  size_t shard = 0, nstates = 0, npieces = 0, bytes = 0;
  long long steps = 0;
  CHECK_OK(smp_optimizer_shard_info(opt, &shard, &nstates, &npieces, &steps));
  CHECK_OK(smp_optimizer_state_bytes(opt, &bytes));
  CHECK(nstates == 3 && steps == 4 && bytes == 12 * shard, "%zu states, %lld steps, %zu bytes",
        nstates, steps, bytes);
  double covered = 0, total = 0;
  for (size_t p = 0; p < npieces; ++p) {
    smp_optimizer_piece_t pc;
    CHECK_OK(smp_optimizer_piece(opt, p, &pc));
    CHECK(pc.shard_offset + pc.length <= shard && pc.tensor_offset + pc.length <= counts[pc.tensor_index] &&
              strcmp(pc.tensor_name, names[pc.tensor_index]) == 0,
          "piece %zu out of range", p);
    covered += (double)pc.length;
  }
  for (size_t k = 0; k < NT; ++k) total += (double)counts[k];
  CHECK_OK(smp_allreduce(&covered, &covered, 1, SMP_FLOAT64, SMP_SUM, SMP_DP_GROUP, NULL));
  CHECK(covered == total, "pieces cover %g of %g elements", covered, total);
  const char *sname = NULL;
  CHECK_OK(smp_optimizer_state_name(opt, 2, &sname));
  CHECK(sname && strcmp(sname, "exp_avg_sq") == 0, "state 2 is %s", sname ? sname : "NULL");

  /* Export into a second optimizer over a zeroed model, gather, compare. */
  model_t m2;
  model_init(&m2);
  smp_optimizer_t opt2 = NULL;
  CHECK_OK(smp_optimizer_create(&cfg, m2.t, NT, &opt2));
  float *buf = malloc((shard + 1) * sizeof(float));
  const char *states[3] = {"master", "exp_avg", "exp_avg_sq"};
  for (int s = 0; s < 3; ++s) {
    CHECK_OK(smp_optimizer_export_state(opt, states[s], buf, shard));
    CHECK_OK(smp_optimizer_import_state(opt2, states[s], buf, shard));
  }
  CHECK_OK(smp_optimizer_set_step(opt2, steps));
  CHECK_OK(smp_optimizer_gather_params(opt2));
  for (size_t k = 0; k < NT; ++k)
    CHECK(memcmp(m.param[k], m2.param[k], counts[k] * (dtypes[k] == SMP_FLOAT32 ? 4 : 2)) == 0,
          "%s differs after import + gather", names[k]);
  expect_invalid(smp_optimizer_export_state(opt, "master", buf, shard + 1), "!= shard_elems");
  expect_invalid(smp_optimizer_export_state(opt, "momentum_buffer", buf, shard), "no state 'momentum_buffer'");
  expect_invalid(smp_optimizer_piece(opt, npieces, NULL), "NULL");
  free(buf);
  CHECK_OK(smp_optimizer_destroy(opt2));
  model_free(&m2);

  /* inf on one rank: every rank skips together (check_finite). */
  smp_optimizer_config_t fc = cfg;
  fc.check_finite = 1;
  smp_optimizer_t fopt = NULL;
  CHECK_OK(smp_optimizer_create(&fc, m.t, NT, &fopt));
  fill_grads(&m, world_rank, 9);
  if (world_rank == n - 1) ((float *)m.grad[3])[100] = INFINITY;
  int skipped = 0;
  double norm = 0;
  CHECK_OK(smp_optimizer_step(fopt, 1.0, &skipped, &norm));
  CHECK(skipped == 1 && !isfinite(norm), "skipped %d norm %g", skipped, norm);
  CHECK_OK(smp_optimizer_destroy(fopt));

  /* Argument errors, returned at once with a message. */
  smp_optimizer_t bad = NULL;
  expect_invalid(smp_optimizer_create(NULL, m.t, NT, &bad), "config is NULL");
  expect_invalid(smp_optimizer_create(&cfg, m.t, NT, NULL), "optimizer (the output) is NULL");
  smp_optimizer_config_t small = cfg;
  small.struct_size = 8;
  expect_invalid(smp_optimizer_create(&small, m.t, NT, &bad), "struct_size 8 is too small");
  smp_optimizer_config_t kind = cfg;
  kind.kind = (smp_optimizer_kind_t)7;
  expect_invalid(smp_optimizer_create(&kind, m.t, NT, &bad), "config->kind 7");
  smp_optimizer_config_t grp = cfg;
  grp.group = (smp_group_t)42;
  expect_invalid(smp_optimizer_create(&grp, m.t, NT, &bad), "config->group 42");
  expect_invalid(smp_optimizer_step(NULL, 1.0, NULL, NULL), "optimizer is NULL");
  expect_invalid(smp_optimizer_step(opt, 0.0, NULL, NULL), "grad_scale");
  expect_invalid(smp_optimizer_set_lr(opt, -1.0), "lr");

  /* Tensor-level errors are agreed collectively: every rank fails. */
  smp_optimizer_tensor_t tl[NT];
  memcpy(tl, m.t, sizeof tl);
  tl[0].dtype = SMP_INT32;
  expect_invalid(smp_optimizer_create(&cfg, tl, NT, &bad), "dtype I32");
  memcpy(tl, m.t, sizeof tl);
  tl[2].name = names[0];
  expect_invalid(smp_optimizer_create(&cfg, tl, NT, &bad), "registered twice");
  memcpy(tl, m.t, sizeof tl);
  if (world_rank == n - 1) tl[3].name = NULL;
  expect_invalid(smp_optimizer_create(&cfg, tl, NT, &bad),
                 world_rank == n - 1 ? "tensors[3].name is NULL" : (n > 1 ? "rejected their arguments" : "name is NULL"));
  if (n > 1) {
    memcpy(tl, m.t, sizeof tl);
    if (world_rank == n - 1) tl[2].count = 76;  /* a different list on one rank */
    expect_invalid(smp_optimizer_create(&cfg, tl, NT, &bad),
                   world_rank == n - 1 ? "tensor #2 is 'ln.weight' (76 x BF16)" : "different tensor lists");
  }
  CHECK(bad == NULL, "a failed create returned a handle");

  CHECK_OK(smp_optimizer_destroy(opt));
  expect_invalid(smp_optimizer_destroy(opt), "not a live handle");
  CHECK_OK(smp_optimizer_destroy(NULL));
  for (size_t k = 0; k < NT; ++k) free(rp[k]), free(rm[k]), free(rv[k]);
  model_free(&m);
  CHECK_OK(smp_finalize());
  if (failures == 0 && world_rank == 0) printf("optim C API test: all checks passed on %d ranks\n", n);
  return failures == 0 ? 0 : 1;
}
