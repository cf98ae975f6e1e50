/* smp_pipeline_run_step from plain C99 against the public header, under
 * mpirun (every rank one stage of PP_GROUP; TP_GROUP, of one rank, runs
 * the one-stage path where chunks hand over in memory):
 * - a small affine chain (virtual stage g: y = w_g x + b_g, loss sum(y^2)/2
 *   on the last) over every schedule kind (the zero-bubble ones with the
 *   backward split: backward gives the input gradient, backward_weight
 *   later the parameter gradients; and without backward_weight), with microbatches of varying
 *   shapes: each stage's per-microbatch parameter gradients, the losses
 *   and the input gradients equal, bit for bit, the chain run serially in
 *   this process; every tensor the callbacks made is freed by the
 *   executor (the live count returns to zero);
 * - recv_shape: a matching one passes, a wrong one fails every stage;
 * - bad arguments: SMP_ERR_INVALID_ARGUMENT and a message, at once;
 * - a callback that fails on one stage (early, at the stage's very last
 *   operation, with a status that is not an smp_status_t, or returning no
 *   tensor): every stage returns an error, the failing one its own, the
 *   others SMP_ERR_PEER_FAILED with its message, and the next step runs
 *   clean. The test runs with SMP_TIMEOUT set, so a hang aborts it.
 * Any failure aborts the job with the line. */
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

enum { W = 4, MAX_MB = 16, MAX_VS = 16, MAX_ELEMS = 3 * W };

/* ---- Tensors the callbacks make (float64, rows x W), counted live ---- */

static int g_live = 0;

typedef struct {
  DLManagedTensor m;
  int64_t shape[2];
  double data[MAX_ELEMS];
} tensor_t;

static void tensor_free(DLManagedTensor *m) {
  --g_live;
  free(m->manager_ctx);
}

static DLManagedTensor *tensor_new(int rows, const double *data) {
  tensor_t *t = calloc(1, sizeof *t);
  CHECK(t != NULL && rows * W <= MAX_ELEMS);
  t->shape[0] = rows;
  t->shape[1] = W;
  memcpy(t->data, data, (size_t)(rows * W) * sizeof(double));
  t->m.dl_tensor.data = t->data;
  t->m.dl_tensor.device.device_type = kDLCPU;
  t->m.dl_tensor.ndim = 2;
  t->m.dl_tensor.dtype.code = kDLFloat;
  t->m.dl_tensor.dtype.bits = 64;
  t->m.dl_tensor.dtype.lanes = 1;
  t->m.dl_tensor.shape = t->shape;
  t->m.manager_ctx = t;
  t->m.deleter = tensor_free;
  ++g_live;
  return &t->m;
}

/* ---- The model: the same arithmetic for the executor and the serial run ---- */

static int g_fixed_rows = 0; /* > 0: every microbatch has this many rows */
static int rows_of(int m) { return g_fixed_rows > 0 ? g_fixed_rows : 1 + m % 3; }
static double weight(int g) { return 1.0 + 0.125 * g; }
static double bias(int g) { return 0.0625 * g - 0.25; }
static void input_of(int m, double *x) {
  for (int i = 0; i < rows_of(m) * W; ++i) x[i] = 0.25 * (m + 1) - 0.125 * i;
}
static void affine(int g, int n, const double *x, double *y) {
  for (int i = 0; i < n; ++i) y[i] = weight(g) * x[i] + bias(g);
}

typedef struct {
  double loss[MAX_MB];
  double dw[MAX_VS][MAX_MB], db[MAX_VS][MAX_MB];
  double input_grad[MAX_MB]; /* sum of d loss / d input of virtual stage 0 */
} results_t;

/* Backward of virtual stage g at input x with output gradient gy: the
 * parameter gradients, and the input gradient into gx. */
static void affine_backward(int g, int n, const double *x, const double *gy, double *gx,
                            double *dw, double *db) {
  *dw = 0;
  *db = 0;
  for (int i = 0; i < n; ++i) {
    *dw += gy[i] * x[i];
    *db += gy[i];
    gx[i] = weight(g) * gy[i];
  }
}

static void serial(int V, int M, results_t *r) {
  memset(r, 0, sizeof *r);
  for (int m = 0; m < M; ++m) {
    const int n = rows_of(m) * W;
    double xs[MAX_VS + 1][MAX_ELEMS];
    input_of(m, xs[0]);
    for (int g = 0; g < V; ++g) affine(g, n, xs[g], xs[g + 1]);
    double gy[MAX_ELEMS], gx[MAX_ELEMS];
    r->loss[m] = 0;
    for (int i = 0; i < n; ++i) {
      r->loss[m] += 0.5 * xs[V][i] * xs[V][i];
      gy[i] = xs[V][i];
    }
    for (int g = V - 1; g >= 0; --g) {
      affine_backward(g, n, xs[g], gy, gx, &r->dw[g][m], &r->db[g][m]);
      memcpy(gy, gx, sizeof gy);
    }
    r->input_grad[m] = 0;
    for (int i = 0; i < n; ++i) r->input_grad[m] += gy[i];
  }
}

/* ---- The stage's callbacks ---- */

typedef struct {
  int pp, stage, V, M;
  smp_schedule_t kind;
  int split; /* backward_weight is set: backward computes the input gradient only */
  DLManagedTensor *kept[MAX_VS][MAX_MB]; /* forward inputs, kept until backward (split: W) */
  double gy_kept[MAX_VS][MAX_MB][MAX_ELEMS]; /* split: the output gradient, for W */
  int weights;
  double x0[MAX_MB][MAX_ELEMS];          /* virtual stage 0's own inputs */
  results_t got;
  int forwards, backwards;
  /* Failure injection: on this stage, at (microbatch, chunk) of forward (0)
   * or backward (1), return fail_status (fail_status == 1: no tensor). */
  int fail_stage, fail_backward, fail_mb, fail_chunk, fail_status;
} stage_t;

static int fails_here(const stage_t *s, int backward, int m, int c) {
  return s->stage == s->fail_stage && backward == s->fail_backward && m == s->fail_mb &&
         c == s->fail_chunk;
}

/* Virtual stage of local chunk c (zb-v's V: the runtime's layout). */
static int vs_of(const stage_t *s, int c) {
  int g = -1;
  CHECK(smp_pipeline_virtual_stage(s->kind, s->pp, s->stage, c, &g) == SMP_SUCCESS);
  return g;
}

static const double *data_of(const DLManagedTensor *t, int m) {
  CHECK(t->dl_tensor.ndim == 2 && t->dl_tensor.shape[0] == rows_of(m) &&
        t->dl_tensor.shape[1] == W && t->dl_tensor.dtype.code == kDLFloat &&
        t->dl_tensor.dtype.bits == 64 && t->dl_tensor.device.device_type == kDLCPU);
  return (const double *)((const char *)t->dl_tensor.data + t->dl_tensor.byte_offset);
}

static smp_status_t forward(void *user, int m, int c, struct DLManagedTensor *input,
                            struct DLManagedTensor **output) {
  stage_t *s = user;
  const int g = vs_of(s, c), n = rows_of(m) * W;
  CHECK((input == NULL) == (g == 0) && *output == NULL);
  ++s->forwards;
  if (fails_here(s, 0, m, c)) {
    if (input != NULL) input->deleter(input);
    if (s->fail_status == 1) return SMP_SUCCESS; /* and no output */
    return smp_stage_error((smp_status_t)s->fail_status, "disk on fire");
  }
  const double *x = s->x0[m];
  if (g == 0) {
    input_of(m, s->x0[m]);
  } else {
    x = data_of(input, m);
  }
  s->kept[g][m] = input; /* ours until the backward */
  double y[MAX_ELEMS];
  affine(g, n, x, y);
  if (g == s->V - 1) {
    s->got.loss[m] = 0;
    for (int i = 0; i < n; ++i) s->got.loss[m] += 0.5 * y[i] * y[i];
  } else {
    *output = tensor_new(rows_of(m), y);
  }
  return SMP_SUCCESS;
}

static smp_status_t backward(void *user, int m, int c, struct DLManagedTensor *grad_output,
                             struct DLManagedTensor **grad_input) {
  stage_t *s = user;
  const int g = vs_of(s, c), n = rows_of(m) * W;
  CHECK((grad_output == NULL) == (g == s->V - 1) && *grad_input == NULL);
  ++s->backwards;
  if (fails_here(s, 1, m, c)) {
    if (grad_output != NULL) grad_output->deleter(grad_output);
    return smp_stage_error((smp_status_t)s->fail_status, "disk on fire");
  }
  const double *x = g == 0 ? s->x0[m] : data_of(s->kept[g][m], m);
  double gy[MAX_ELEMS], gx[MAX_ELEMS];
  if (g == s->V - 1) {
    affine(g, n, x, gy); /* d loss / d y = y */
  } else {
    memcpy(gy, data_of(grad_output, m), (size_t)n * sizeof(double));
    grad_output->deleter(grad_output);
  }
  double dw = 0, db = 0;
  affine_backward(g, n, x, gy, gx, &dw, &db);
  if (s->split) { /* W makes the parameter gradients, from x and gy */
    memcpy(s->gy_kept[g][m], gy, (size_t)n * sizeof(double));
  } else {
    s->got.dw[g][m] = dw;
    s->got.db[g][m] = db;
    if (s->kept[g][m] != NULL) s->kept[g][m]->deleter(s->kept[g][m]);
    s->kept[g][m] = NULL;
  }
  if (g == 0) {
    s->got.input_grad[m] = 0;
    for (int i = 0; i < n; ++i) s->got.input_grad[m] += gx[i];
  } else {
    *grad_input = tensor_new(rows_of(m), gx);
  }
  return SMP_SUCCESS;
}

/* W: the parameter gradients of (m, c), after its backward (B). */
static smp_status_t backward_weight(void *user, int m, int c) {
  stage_t *s = user;
  const int g = vs_of(s, c), n = rows_of(m) * W;
  CHECK(s->split);
  ++s->weights;
  const double *x = g == 0 ? s->x0[m] : data_of(s->kept[g][m], m);
  double gx[MAX_ELEMS];
  affine_backward(g, n, x, s->gy_kept[g][m], gx, &s->got.dw[g][m], &s->got.db[g][m]);
  if (s->kept[g][m] != NULL) s->kept[g][m]->deleter(s->kept[g][m]);
  s->kept[g][m] = NULL;
  return SMP_SUCCESS;
}

static void stage_init(stage_t *s, smp_group_t group, int chunks, int M) {
  memset(s, 0, sizeof *s);
  CHECK(smp_size(group, &s->pp) == SMP_SUCCESS && smp_rank(group, &s->stage) == SMP_SUCCESS);
  s->V = s->pp * chunks;
  s->M = M;
  s->fail_stage = -1;
  CHECK(s->V <= MAX_VS && M <= MAX_MB);
}

/* What a failed step left with us: inputs kept for backwards that never ran. */
static void stage_release(stage_t *s) {
  for (int g = 0; g < MAX_VS; ++g)
    for (int m = 0; m < MAX_MB; ++m)
      if (s->kept[g][m] != NULL) {
        s->kept[g][m]->deleter(s->kept[g][m]);
        s->kept[g][m] = NULL;
      }
}

static smp_stage_fns_t fns_of(stage_t *s) {
  smp_stage_fns_t f;
  memset(&f, 0, sizeof f);
  f.forward = forward;
  f.backward = backward;
  f.user = s;
  return f;
}

/* One step that must match the serial run. */
static void good_step(smp_group_t group, smp_schedule_t kind, int M, int chunks, int active,
                      const smp_stage_fns_t *with) {
  stage_t s;
  stage_init(&s, group, chunks, M);
  s.kind = kind;
  smp_stage_fns_t f = with ? *with : fns_of(&s);
  f.user = &s;
  s.split = f.backward_weight != NULL;
  /* A step that succeeds leaves this thread's last failure as it was. */
  CHECK(smp_stage_error(SMP_ERR_IO, "an earlier failure") == SMP_ERR_IO);
  CHECK(smp_pipeline_run_step(kind, M, chunks, active, group, &f) == SMP_SUCCESS);
  CHECK(strcmp(smp_last_error(), "an earlier failure") == 0);
  CHECK(g_live == 0);
  CHECK(s.forwards == M * chunks && s.backwards == M * chunks);
  CHECK(s.weights == (s.split ? M * chunks : 0));
  results_t ref;
  serial(s.V, M, &ref);
  for (int c = 0; c < chunks; ++c) {
    const int g = vs_of(&s, c);
    for (int m = 0; m < M; ++m) {
      CHECK(s.kept[g][m] == NULL);
      if (s.got.dw[g][m] != ref.dw[g][m] || s.got.db[g][m] != ref.db[g][m]) {
        fprintf(stderr, "rank %d: kind %d M %d chunks %d: virtual stage %d microbatch %d: "
                "dw %.17g db %.17g, serial %.17g %.17g\n", g_rank, (int)kind, M, chunks, g, m,
                s.got.dw[g][m], s.got.db[g][m], ref.dw[g][m], ref.db[g][m]);
        exit(1);
      }
      if (g == s.V - 1) CHECK(s.got.loss[m] == ref.loss[m]);
      if (g == 0) CHECK(s.got.input_grad[m] == ref.input_grad[m]);
    }
  }
}

static void schedules(smp_group_t group) {
  int pp = 1;
  CHECK(smp_size(group, &pp) == SMP_SUCCESS);
  good_step(group, SMP_SCHEDULE_SIMPLE, 1, 1, 0, NULL);
  good_step(group, SMP_SCHEDULE_SIMPLE, 2 * pp + 1, 1, 0, NULL);
  good_step(group, SMP_SCHEDULE_SIMPLE, pp + 1, 2, 0, NULL);
  good_step(group, SMP_SCHEDULE_INTERLEAVED, 2 * pp + 1, 1, 0, NULL);
  good_step(group, SMP_SCHEDULE_INTERLEAVED, pp + 1, 1, 1, NULL);
  good_step(group, SMP_SCHEDULE_VIRTUAL, pp, 2, 0, NULL);
  good_step(group, SMP_SCHEDULE_VIRTUAL, 2 * pp, 3, 0, NULL);
  if (pp < 2) return; /* the zero-bubble schedules need two stages */
  for (int split = 0; split < 2; ++split) {
    stage_t s;
    smp_stage_fns_t f = fns_of(&s);
    f.backward_weight = split ? backward_weight : NULL;
    good_step(group, SMP_SCHEDULE_ZB_H1, pp, 1, 0, &f);
    good_step(group, SMP_SCHEDULE_ZB_H1, 2 * pp + 1, 1, 0, &f);
    good_step(group, SMP_SCHEDULE_ZB_V, pp, 2, 0, &f);
    good_step(group, SMP_SCHEDULE_ZB_V, pp + 1, 2, 0, &f);
  }
  /* The V: chunk 1 of the last stage is virtual stage pp; of stage 0, the last. */
  int g = -1;
  CHECK(smp_pipeline_virtual_stage(SMP_SCHEDULE_ZB_V, pp, pp - 1, 1, &g) == SMP_SUCCESS && g == pp);
  CHECK(smp_pipeline_virtual_stage(SMP_SCHEDULE_ZB_V, pp, 0, 1, &g) == SMP_SUCCESS && g == 2 * pp - 1);
  CHECK(smp_pipeline_virtual_stage(SMP_SCHEDULE_ZB_V, pp, 0, 2, &g) == SMP_ERR_INVALID_ARGUMENT);
}

static void recv_shapes(void) {
  int pp = 1;
  CHECK(smp_size(SMP_PP_GROUP, &pp) == SMP_SUCCESS);
  stage_t s;
  const size_t good[2] = {2, W}, bad[2] = {3, W};
  g_fixed_rows = 2;
  smp_stage_fns_t f = fns_of(&s);
  f.recv_shape = good;
  f.recv_ndim = 2;
  f.recv_dtype = SMP_FLOAT64;
  good_step(SMP_PP_GROUP, SMP_SCHEDULE_INTERLEAVED, 2 * pp, 1, 0, &f);
  if (pp > 1) {
    stage_init(&s, SMP_PP_GROUP, 1, 2 * pp);
    f.user = &s;
    f.recv_shape = bad;
    CHECK(smp_pipeline_run_step(SMP_SCHEDULE_INTERLEAVED, 2 * pp, 1, 0, SMP_PP_GROUP, &f) ==
          SMP_ERR_PEER_FAILED);
    CHECK(contains(smp_last_error(), "float64[2, 4], but float64[3, 4] was expected"));
    stage_release(&s);
    CHECK(g_live == 0);
    f.recv_shape = good;
    f.recv_dtype = SMP_FLOAT32;
    stage_init(&s, SMP_PP_GROUP, 1, 2 * pp);
    f.user = &s;
    CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2 * pp, 1, 0, SMP_PP_GROUP, &f) ==
          SMP_ERR_PEER_FAILED);
    CHECK(contains(smp_last_error(), "but float32[2, 4] was expected"));
    stage_release(&s);
    CHECK(g_live == 0);
  }
  g_fixed_rows = 0;
}

static void bad_arguments(void) {
  stage_t s;
  stage_init(&s, SMP_PP_GROUP, 1, 2);
  smp_stage_fns_t f = fns_of(&s);
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2, 1, 0, SMP_PP_GROUP, NULL) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "smp_pipeline_run_step: fns is NULL"));
  f.backward = NULL;
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2, 1, 0, SMP_PP_GROUP, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "forward and fns->backward must both be set"));
  f = fns_of(&s);
  CHECK(smp_pipeline_run_step((smp_schedule_t)7, 2, 1, 0, SMP_PP_GROUP, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "kind 7 is not an smp_schedule_t"));
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2, 1, 0, (smp_group_t)42, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "group 42 is not an smp_group_t"));
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 0, 1, 0, SMP_PP_GROUP, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "smp_pipeline_run_step: microbatches must be >= 1"));
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_INTERLEAVED, 2, 2, 0, SMP_PP_GROUP, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2, 1, 3, SMP_PP_GROUP, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  f.recv_ndim = 2;
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2, 1, 0, SMP_PP_GROUP, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "fns->recv_ndim is 2 but fns->recv_shape is NULL"));
  const size_t shape[2] = {2, W};
  f.recv_shape = shape;
  f.recv_dtype = (smp_dtype_t)99;
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2, 1, 0, SMP_PP_GROUP, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "fns->recv_dtype 99 is not an smp_dtype_t"));
  f.recv_dtype = SMP_FLOAT64;
  f.recv_ndim = 17;
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2, 1, 0, SMP_PP_GROUP, &f) ==
        SMP_ERR_INVALID_ARGUMENT);
  CHECK(contains(smp_last_error(), "fns->recv_ndim 17 is not in 0..16"));
  /* Nothing was called, nothing communicated. */
  CHECK(s.forwards == 0 && s.backwards == 0 && g_live == 0);
  CHECK(smp_stage_error(SMP_ERR_IO, "words") == SMP_ERR_IO && strcmp(smp_last_error(), "words") == 0);
  CHECK(smp_barrier(SMP_WORLD) == SMP_SUCCESS);
}

/* Stage fail_stage fails at (microbatch, chunk) of its forward or
 * backward; every stage must return an error carrying `words`, then the
 * next step must run clean. */
static void failing_step(smp_schedule_t kind, int M, int chunks, int fail_stage, int fail_backward,
                         int fail_mb, int fail_chunk, int fail_status, smp_status_t want,
                         const char *words) {
  int pp = 1;
  CHECK(smp_size(SMP_PP_GROUP, &pp) == SMP_SUCCESS);
  stage_t s;
  stage_init(&s, SMP_PP_GROUP, chunks, M);
  s.fail_stage = fail_stage;
  s.fail_backward = fail_backward;
  s.fail_mb = fail_mb;
  s.fail_chunk = fail_chunk;
  s.fail_status = fail_status;
  smp_stage_fns_t f = fns_of(&s);
  const smp_status_t st = smp_pipeline_run_step(kind, M, chunks, 0, SMP_PP_GROUP, &f);
  char where[128];
  snprintf(where, sizeof where, "pipeline stage %d: %s of microbatch %d, chunk %d: ", fail_stage,
           fail_backward ? "backward" : "forward", fail_mb, fail_chunk);
  if (st != (s.stage == fail_stage ? want : SMP_ERR_PEER_FAILED) ||
      !contains(smp_last_error(), where) || !contains(smp_last_error(), words)) {
    fprintf(stderr, "rank %d: kind %d, failure on stage %d: got %s, \"%s\"\n", g_rank, (int)kind,
            fail_stage, smp_status_string(st), smp_last_error());
    exit(1);
  }
  stage_release(&s);
  CHECK(g_live == 0);
  good_step(SMP_PP_GROUP, kind, M, chunks, 0, NULL);
}

static void failures(void) {
  int pp = 1;
  CHECK(smp_size(SMP_PP_GROUP, &pp) == SMP_SUCCESS);
  const int last = pp - 1, M = 2 * pp;
  /* Early, on the last stage. */
  failing_step(SMP_SCHEDULE_INTERLEAVED, M, 1, last, 0, 1, 0, SMP_ERR_IO, SMP_ERR_IO, "disk on fire");
  /* Stage 0's very last operation: nothing more goes out of it, only the
   * step's closing agreement tells the others. */
  failing_step(SMP_SCHEDULE_INTERLEAVED, M, 1, 0, 1, M - 1, 0, SMP_ERR_UNSUPPORTED,
               SMP_ERR_UNSUPPORTED, "disk on fire");
  failing_step(SMP_SCHEDULE_SIMPLE, M, 1, 0, 1, 0, 0, SMP_ERR_UNSUPPORTED, SMP_ERR_UNSUPPORTED,
               "disk on fire");
  /* A middle stage's second chunk (odd pp: stage 1 is in the middle). */
  failing_step(SMP_SCHEDULE_VIRTUAL, pp, 2, pp / 2, 0, pp - 1, 1, SMP_ERR_BACKEND, SMP_ERR_BACKEND,
               "disk on fire");
  /* A status that is not an smp_status_t. */
  failing_step(SMP_SCHEDULE_SIMPLE, M, 1, last, 1, 0, 0, 5, SMP_ERR_INTERNAL,
               "the callback returned 5, which is not an smp_status_t (disk on fire)");
  /* No tensor where the next virtual stage needs one (pp > 1: stage 0
   * forwards to stage 1). */
  if (pp > 1)
    failing_step(SMP_SCHEDULE_SIMPLE, M, 1, 0, 0, 1, 0, 1, SMP_ERR_INVALID_ARGUMENT,
                 "returned no tensor, but virtual stage 1 needs one");
}

int main(void) {
  stage_t s;
  memset(&s, 0, sizeof s);
  smp_stage_fns_t f = fns_of(&s);
  CHECK(smp_pipeline_run_step(SMP_SCHEDULE_SIMPLE, 2, 1, 0, SMP_PP_GROUP, &f) ==
        SMP_ERR_NOT_INITIALIZED);
  smp_config_t config = SMP_CONFIG_INIT;
  const char *size = getenv("OMPI_COMM_WORLD_SIZE");
  config.pp_size = size ? atoi(size) : 1; /* every rank one stage */
  CHECK(smp_init(&config) == SMP_SUCCESS);
  CHECK(smp_rank(SMP_WORLD, &g_rank) == SMP_SUCCESS);
  CHECK(getenv("SMP_TIMEOUT") != NULL); /* a hang must abort, not stall the suite */
  schedules(SMP_PP_GROUP);
  schedules(SMP_TP_GROUP); /* one stage: chunks hand over in memory */
  recv_shapes();
  bad_arguments();
  failures();
  if (g_rank == 0) printf("smp_pipeline_run_step ok\n");
  CHECK(smp_finalize() == SMP_SUCCESS);
  return 0;
}
