/*
 * smp: collectives and process groups for hybrid-parallel training
 * (pipeline, tensor and data parallelism, sharded optimizer state).
 *
 * Plain C99; no CUDA or MPI types appear here. Every function returns an
 * smp_status_t; on failure smp_last_error() says what went wrong, in words.
 *
 * Ranks: `peer` and `root` arguments are ranks *within* the given group.
 * Memory: host buffers complete before the call returns and `stream` is
 * ignored; CUDA buffers (detected from the pointer) are enqueued on
 * `stream` (a cudaStream_t, NULL = the default stream).
 * Threads: every function may be called from several threads of a rank at
 * once. Operations on the same group issued concurrently from different
 * threads are matched across ranks in the order each rank issues them, so
 * a program that issues collectives on one group from several threads must
 * order them itself, as with MPI.
 */
#ifndef SMP_SMP_H
#define SMP_SMP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMP_VERSION_MAJOR 0
#define SMP_VERSION_MINOR 1
#define SMP_VERSION_PATCH 0

#if defined(__GNUC__)
#define SMP_API __attribute__((visibility("default")))
#else
#define SMP_API
#endif

typedef enum {
  SMP_SUCCESS = 0,
  SMP_ERR_INVALID_ARGUMENT = -1, /* a bad argument; nothing was communicated */
  SMP_ERR_NOT_INITIALIZED = -2,  /* called before smp_init or after smp_finalize */
  SMP_ERR_UNSUPPORTED = -3,      /* valid, but not available in this build */
  SMP_ERR_BACKEND = -4,          /* MPI, NCCL or CUDA reported an error */
  SMP_ERR_TIMEOUT = -5,          /* an operation outlived SMP_TIMEOUT */
  SMP_ERR_PEER_FAILED = -6,      /* another rank failed or disagreed (SMP_CHECK) */
  SMP_ERR_IO = -7,               /* a file could not be read or written */
  SMP_ERR_CORRUPT = -8,          /* a file is malformed or fails its checksum */
  SMP_ERR_INTERNAL = -9          /* a bug in smp; please report it */
} smp_status_t;

typedef enum {
  SMP_WORLD = 0,
  SMP_PP_GROUP,  /* same (tp, rdp): the stages of one pipeline */
  SMP_TP_GROUP,  /* same (pp, rdp): the shards of one tensor */
  SMP_DP_GROUP,  /* same pp: size tp * rdp */
  SMP_RDP_GROUP, /* same (pp, tp): replicas of the same parameters */
  SMP_MP_GROUP   /* same rdp: size pp * tp, one model replica */
} smp_group_t;

typedef enum {
  SMP_FLOAT32 = 0,
  SMP_FLOAT64,
  SMP_FLOAT16,
  SMP_BFLOAT16,
  SMP_INT8,
  SMP_UINT8,
  SMP_INT32,
  SMP_INT64
} smp_dtype_t;

/* SMP_AVG divides the sum by the group size: in the element type's own
 * arithmetic for floating types (FLOAT16/BFLOAT16 in float32, rounded once),
 * and with truncation toward zero for integer types (C's integer division).
 * Integer SUM and PROD wrap around (two's complement) on overflow. */
typedef enum { SMP_SUM = 0, SMP_AVG, SMP_MAX, SMP_MIN, SMP_PROD } smp_op_t;

typedef struct smp_request *smp_request_t;

/* Versioned configuration: set struct_size (SMP_CONFIG_INIT does) so that
 * later versions can add fields. A field left at its "unset" value is taken
 * from the environment smprun sets, and failing that from the default. */
typedef struct smp_config {
  size_t struct_size;      /* sizeof(smp_config_t) */
  int pp_size;             /* pipeline-parallel degree; 0 = unset (default 1) */
  int tp_size;             /* tensor-parallel degree; 0 = unset (default 1) */
  const char *placement;   /* "cluster", "spread" or a D/P/T permutation; NULL = unset */
  double timeout_seconds;  /* hang timeout of every operation; < 0 = unset, 0 = none */
  int check;               /* verify collective arguments across the group; -1 = unset */
} smp_config_t;

#define SMP_CONFIG_INIT { sizeof(smp_config_t), 0, 0, NULL, -1.0, -1 }

/* Start smp: initialize MPI if the program has not (MPI_THREAD_MULTIPLE
 * when available) and build one communicator per group. config may be NULL
 * (everything from the environment: SMP_PP_SIZE, SMP_TP_SIZE,
 * SMP_PLACEMENT, SMP_TIMEOUT, SMP_CHECK; the world's size and ranks come
 * from MPI). A program started without any launcher is a world of one.
 * Calling it twice is an error. SMP_TIMEOUT=S: an operation blocked for
 * more than S seconds prints one line (rank, operation, group, peer/root,
 * tag, count, the smp call it serves, the ranks that have not arrived)
 * and aborts the whole job. SMP_CHECK=1: every collective first compares
 * its arguments across the group; a mismatch returns SMP_ERR_PEER_FAILED
 * on every rank, naming the ranks and what differs. A blocking collective
 * also catches a rank that named another group; a non-blocking one
 * (smp_iallreduce, ...) compares arguments and membership only among the
 * ranks that issued it on the same group: a rank that issued it on another
 * group is left to SMP_TIMEOUT, whose line names that rank and the call it
 * waits in. A group of one compares nothing and sends nothing. */
SMP_API smp_status_t smp_init(const smp_config_t *config);
/* Release every group (pending non-blocking collectives complete first);
 * finalize MPI only if smp_init initialized it. Refused with
 * SMP_ERR_INVALID_ARGUMENT while isend/irecv requests are not yet waited. */
SMP_API smp_status_t smp_finalize(void);
/* This rank's rank in group, and the group's size. */
SMP_API smp_status_t smp_rank(smp_group_t group, int *rank);
SMP_API smp_status_t smp_size(smp_group_t group, int *size);
/* This rank's place among the ranks on its host (MPI's shared-memory
 * node), ordered by world rank, and how many there are. */
SMP_API smp_status_t smp_local_rank(int *local_rank);
SMP_API smp_status_t smp_local_size(int *local_size);
/* The GPU this rank should use, as an index among the devices it sees:
 * SMP_DEVICE when set (smprun's choice, near the rank's cores), else the
 * local rank modulo the GPUs visible (ranks share GPUs when there are more
 * ranks than GPUs); -1 when there is no GPU (or smp was built without
 * CUDA). smp_init refuses an SMP_DEVICE that is not an integer >= -1. */
SMP_API smp_status_t smp_device(int *device);

/* recvbuf[i] = op over the group of sendbuf[i]. sendbuf == recvbuf is in
 * place. FLOAT16/BFLOAT16 accumulate in float32. */
SMP_API smp_status_t smp_allreduce(const void *sendbuf, void *recvbuf, size_t count,
                                   smp_dtype_t dtype, smp_op_t op, smp_group_t group,
                                   void *stream);
/* sendbuf holds size*recvcount elements; rank r receives block r of their
 * reduction. In place when sendbuf + rank*recvcount elements == recvbuf. */
SMP_API smp_status_t smp_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                        smp_dtype_t dtype, smp_op_t op, smp_group_t group,
                                        void *stream);
/* recvbuf (size*sendcount elements) gets every rank's sendbuf, in rank
 * order. In place when sendbuf == recvbuf + rank*sendcount elements. */
SMP_API smp_status_t smp_allgather(const void *sendbuf, void *recvbuf, size_t sendcount,
                                   smp_dtype_t dtype, smp_group_t group, void *stream);
/* Every rank's buf gets root's buf. */
SMP_API smp_status_t smp_broadcast(void *buf, size_t count, smp_dtype_t dtype, int root,
                                   smp_group_t group, void *stream);
/* root's recvbuf gets rank r's sendcount elements at offset
 * sum(recvcounts[0..r-1]); recvbuf and recvcounts are read on root only
 * (recvcounts[r] must equal rank r's sendcount). */
SMP_API smp_status_t smp_gatherv(const void *sendbuf, size_t sendcount, void *recvbuf,
                                 const size_t *recvcounts, smp_dtype_t dtype, int root,
                                 smp_group_t group, void *stream);
/* Returns once every rank of the group has called it. */
SMP_API smp_status_t smp_barrier(smp_group_t group);
/* root's recvbuf[i] = op over the group of sendbuf[i]; recvbuf is read on
 * root only (may be NULL elsewhere). sendbuf == recvbuf on root is in place. */
SMP_API smp_status_t smp_reduce(const void *sendbuf, void *recvbuf, size_t count,
                                smp_dtype_t dtype, smp_op_t op, int root, smp_group_t group,
                                void *stream);
/* The inverse of smp_gatherv: rank r's recvbuf gets the recvcount elements
 * of root's sendbuf at offset sum(sendcounts[0..r-1]); sendbuf and
 * sendcounts are read on root only (sendcounts[r] must equal rank r's
 * recvcount). */
SMP_API smp_status_t smp_scatterv(const void *sendbuf, const size_t *sendcounts, void *recvbuf,
                                  size_t recvcount, smp_dtype_t dtype, int root,
                                  smp_group_t group, void *stream);
/* Every rank sends sendcounts[p] elements at sendbuf + sdispls[p] to rank p
 * and receives recvcounts[p] elements from rank p at recvbuf + rdispls[p]
 * (displacements in elements; sendcounts[p] on rank r must equal
 * recvcounts[r] on rank p). The send and receive regions must not overlap. */
SMP_API smp_status_t smp_alltoallv(const void *sendbuf, const size_t *sendcounts,
                                   const size_t *sdispls, void *recvbuf,
                                   const size_t *recvcounts, const size_t *rdispls,
                                   smp_dtype_t dtype, smp_group_t group, void *stream);
/* smp_recv from whichever rank of the group sends first with this tag;
 * *source = that sender's rank in the group. */
SMP_API smp_status_t smp_recv_any(void *buf, size_t count, smp_dtype_t dtype, smp_group_t group,
                                  int tag, int *source, void *stream);

/* Groups beyond the layout's six: a group of any world ranks (group rank i
 * is world_ranks[i]; no duplicates), usable wherever an smp_group_t is.
 * Collective over the listed ranks only (every one of them calls it with
 * the same list, others do not take part); ranks creating overlapping
 * groups must do so in an order that cannot deadlock, as with any
 * collective. *group is a new handle, >= SMP_GROUP_USER_BASE, the same
 * value on every member, not reused before smp_finalize, valid until
 * smp_group_destroy or smp_finalize. */
#define SMP_GROUP_USER_BASE 64
SMP_API smp_status_t smp_group_create(const int *world_ranks, int nranks, smp_group_t *group);
/* Releases a created group (its pending non-blocking operations complete
 * first); the layout's groups cannot be destroyed. Not collective. */
SMP_API smp_status_t smp_group_destroy(smp_group_t group);
/* Hang timeout of the operations on one group (a created one or a layout
 * group), in seconds (0 = none), in place of SMP_TIMEOUT for that group,
 * also when SMP_TIMEOUT is unset: an operation on it blocked longer ends
 * the job with SMP_TIMEOUT's line, which names the group ("group 64 (world
 * ranks 0,2,3)") and the members that have not arrived. Local: call it on
 * every member (a member that has not cannot tell the others what it is
 * doing). seconds < 0, NaN or infinite: SMP_ERR_INVALID_ARGUMENT. */
SMP_API smp_status_t smp_group_set_timeout(smp_group_t group, double seconds);

/* Point-to-point. Messages between the same pair, group and tag arrive in
 * the order they were sent. tag >= 0. A received message shorter than
 * count is an error (SMP_ERR_INVALID_ARGUMENT); a longer one, SMP_ERR_BACKEND. */
SMP_API smp_status_t smp_send(const void *buf, size_t count, smp_dtype_t dtype, int peer,
                              smp_group_t group, int tag, void *stream);
SMP_API smp_status_t smp_recv(void *buf, size_t count, smp_dtype_t dtype, int peer,
                              smp_group_t group, int tag, void *stream);

/* Non-blocking twins: the buffers must stay untouched until smp_wait, or
 * smp_test reporting done, which also free the request. Non-blocking
 * collectives progress on their own (a worker thread per group runs them
 * in issue order); every rank must issue them in the same order. */
SMP_API smp_status_t smp_isend(const void *buf, size_t count, smp_dtype_t dtype, int peer,
                               smp_group_t group, int tag, void *stream,
                               smp_request_t *request);
SMP_API smp_status_t smp_irecv(void *buf, size_t count, smp_dtype_t dtype, int peer,
                               smp_group_t group, int tag, void *stream,
                               smp_request_t *request);
SMP_API smp_status_t smp_iallreduce(const void *sendbuf, void *recvbuf, size_t count,
                                    smp_dtype_t dtype, smp_op_t op, smp_group_t group,
                                    void *stream, smp_request_t *request);
SMP_API smp_status_t smp_ireduce_scatter(const void *sendbuf, void *recvbuf,
                                         size_t recvcount, smp_dtype_t dtype, smp_op_t op,
                                         smp_group_t group, void *stream,
                                         smp_request_t *request);
SMP_API smp_status_t smp_iallgather(const void *sendbuf, void *recvbuf, size_t sendcount,
                                    smp_dtype_t dtype, smp_group_t group, void *stream,
                                    smp_request_t *request);
/* Block until the request completes; frees it (also on failure). */
SMP_API smp_status_t smp_wait(smp_request_t request);
/* *done = 1 (and the request is freed) once complete, else *done = 0. */
SMP_API smp_status_t smp_test(smp_request_t request, int *done);

SMP_API void smp_version(int *major, int *minor, int *patch);
SMP_API const char *smp_status_string(smp_status_t status);
/* This thread's last failure, in words ("" if none). */
SMP_API const char *smp_last_error(void);

/* The pipeline, optimizer and checkpoint modules add their functions below,
 * one section each, in the same style. */

/* ---- Pipeline: tensor transport, schedules, simulator, partitioner ---- */

/* Tensors are DLPack's (dlpack/dlpack.h). DLTensor is an anonymous typedef
 * there, which C cannot forward-declare, so these functions take the named
 * struct DLManagedTensor: what frameworks hand out (to_dlpack, __dlpack__
 * capsules); wrap a hand-made DLTensor as { tensor, NULL, NULL }. Tensors
 * must be contiguous (row-major); CPU memory (CUDA once comm supports it).
 * A small header (dtype, shape) travels with every tensor, so a receiver
 * learns both from the sender. Tags: 0..16383. */
struct DLManagedTensor;

/* Send tensor to peer; returns once the tensor may be reused. */
SMP_API smp_status_t smp_send_tensor(const struct DLManagedTensor *tensor, int peer,
                                     smp_group_t group, int tag);
/* Receive a tensor of whatever dtype and shape the sender sent: *tensor is
 * a new host tensor; free it with (*tensor)->deleter(*tensor). */
SMP_API smp_status_t smp_recv_tensor(struct DLManagedTensor **tensor, int peer, smp_group_t group,
                                     int tag);
/* Receive into tensor. If the sender's dtype or shape differ, the data is
 * discarded and SMP_ERR_PEER_FAILED says what differs. */
SMP_API smp_status_t smp_recv_tensor_into(struct DLManagedTensor *tensor, int peer,
                                          smp_group_t group, int tag);

typedef struct smp_tensor_transfer {
  int peer;
  int tag;
  /* sends: the tensor; receives: the tensor to fill, or NULL to have a new
   * one (freed with its deleter) stored here */
  struct DLManagedTensor *tensor;
} smp_tensor_transfer_t;

/* Issue every send and receive at once, then wait for all of them: cannot
 * deadlock whatever order the neighbours list or make their calls in.
 * Receives from one (peer, tag) match that peer's sends in order. */
SMP_API smp_status_t smp_exchange_tensors(const smp_tensor_transfer_t *sends, size_t nsends,
                                          smp_tensor_transfer_t *recvs, size_t nrecvs,
                                          smp_group_t group);
/* As smp_exchange_tensors, but returns once every receive has completed,
 * leaving the sends in flight: *sends_done is a request (smp_wait /
 * smp_test) that completes when they have; the sent tensors must stay
 * untouched until then. This is how a pipeline schedule's exchanges are
 * meant to run (smp_pipe_op_t.batch): waiting for a send inside its own
 * exchange stalls once the tensor is too large for MPI to buffer and the
 * peer receives it only in a later exchange (several chunks per stage). */
SMP_API smp_status_t smp_exchange_tensors_deferred(const smp_tensor_transfer_t *sends,
                                                   size_t nsends, smp_tensor_transfer_t *recvs,
                                                   size_t nrecvs, smp_group_t group,
                                                   smp_request_t *sends_done);

/* Schedules. SIMPLE: GPipe (all forwards, then all backwards). INTERLEAVED:
 * 1F1B, a backward as soon as one is ready, at most active_microbatches in
 * flight (0 = pp + 2, SageMaker's default; 1F1B needs pp - stage, so caps
 * >= pp are plain 1F1B). VIRTUAL: Megatron-LM's interleaved 1F1B over
 * `chunks` model chunks per rank (virtual stage c*pp + s on rank s);
 * microbatches must be a multiple of pp when chunks > 1.
 * ZB_H1, ZB_V: zero-bubble schedules (Qi et al. 2023), pp >= 2 and
 * microbatches >= pp; each backward is split into BACKWARD_INPUT (B, the
 * input gradient the previous stage waits for) and BACKWARD_WEIGHT (W, the
 * parameters' gradients), and W fills the pipeline's idle time. ZB_H1:
 * one chunk, 1F1B's activation memory (pp - stage microbatches), bubble
 * (pp-1)/(3m+pp-1) with F = B = W. ZB_V: two chunks in a V (chunk 0 of
 * rank s is virtual stage s, chunk 1 is 2*pp-1-s; the loss is on rank 0),
 * at most 2*pp chunk activations per rank (1F1B's first stage), bubble
 * about 0. A microbatch's activations count as freed at its B. */
typedef enum {
  SMP_SCHEDULE_SIMPLE = 0,
  SMP_SCHEDULE_INTERLEAVED,
  SMP_SCHEDULE_VIRTUAL,
  SMP_SCHEDULE_ZB_H1,
  SMP_SCHEDULE_ZB_V
} smp_schedule_t;

typedef enum {
  SMP_PIPE_FORWARD = 0,
  SMP_PIPE_BACKWARD,
  SMP_PIPE_SEND_ACTIVATION, /* to the next virtual stage */
  SMP_PIPE_RECV_ACTIVATION, /* from the previous virtual stage */
  SMP_PIPE_SEND_GRADIENT,   /* to the previous virtual stage */
  SMP_PIPE_RECV_GRADIENT,   /* from the next virtual stage */
  SMP_PIPE_BACKWARD_INPUT,  /* B: the input gradient (ZB_H1, ZB_V) */
  SMP_PIPE_BACKWARD_WEIGHT  /* W: the parameters' gradients, after its B */
} smp_pipe_op_kind_t;

typedef struct smp_pipe_op {
  smp_pipe_op_kind_t kind;
  int microbatch;
  int chunk;
  int peer;  /* the stage on the other side of a send/receive; -1 for compute */
  int batch; /* consecutive sends/receives with one batch form one exchange
              * (smp_exchange_tensors_deferred); its sends may complete
              * later, by the end of the step; -1 for compute */
} smp_pipe_op_t;

/* Stage `stage`'s operations for one step, in order, into ops[0..*n). With
 * ops == NULL only *n is set; a capacity below *n is an error (*n is still
 * set). chunks must be 1 except for SIMPLE and VIRTUAL (and 2 for ZB_V);
 * active_microbatches must be 0 except for INTERLEAVED. */
SMP_API smp_status_t smp_pipeline_schedule(smp_schedule_t kind, int pp, int stage,
                                           int microbatches, int chunks,
                                           int active_microbatches, smp_pipe_op_t *ops,
                                           size_t capacity, size_t *n);

/* Virtual stage of chunk `chunk` of stage `stage` under schedule kind:
 * c*pp + s, except ZB_V's V (see above). A pure query. */
SMP_API smp_status_t smp_pipeline_virtual_stage(smp_schedule_t kind, int pp, int stage, int chunk,
                                                int *vstage);

/* A stage's compute, called by smp_pipeline_run_step on the calling thread
 * for each (microbatch, chunk) of its schedule; virtual stage c*pp + s is
 * chunk c of stage s (ZB_V: smp_pipeline_virtual_stage). Tensors pass in ownership: the callee owns input /
 * grad_output whatever it returns (free with t->deleter(t); it may keep an
 * input until its backward, or after a failed step until it sees the
 * failure); the executor owns *output / *grad_input, keeps them untouched
 * until sent and then frees them with their deleter.
 * forward: input is NULL on virtual stage 0 (read your own data); *output
 * goes to the next virtual stage, and may stay NULL on the last one (the
 * loss lives there). backward: grad_output is NULL on the last virtual
 * stage (start from the loss); *grad_input goes to the previous virtual
 * stage, and may stay NULL on virtual stage 0. Outputs that are sent must
 * be contiguous CPU or CUDA tensors. A callback fails by returning another
 * status than SMP_SUCCESS (with smp_stage_error for a message).
 * recv_shape: when not NULL, every activation and gradient received must be
 * recv_dtype with these recv_ndim extents (else SMP_ERR_PEER_FAILED); NULL
 * takes any dtype and shape. Received tensors are host memory.
 * backward_weight (may be NULL): with ZB_H1 / ZB_V, backward is then the
 * input-gradient half (B; keep what the weight gradient needs) and
 * backward_weight, called later, computes and accumulates the parameters'
 * gradients of (microbatch, chunk) (W). NULL: B runs the whole backward
 * and W nothing. The other schedules never call it. */
typedef struct smp_stage_fns {
  smp_status_t (*forward)(void *user, int microbatch, int chunk, struct DLManagedTensor *input,
                          struct DLManagedTensor **output);
  smp_status_t (*backward)(void *user, int microbatch, int chunk,
                           struct DLManagedTensor *grad_output,
                           struct DLManagedTensor **grad_input);
  void *user; /* passed to every callback */
  const size_t *recv_shape;
  int recv_ndim;
  smp_dtype_t recv_dtype;
  smp_status_t (*backward_weight)(void *user, int microbatch, int chunk);
} smp_stage_fns_t;

/* Run one training step of this rank's stage: its schedule (as
 * smp_pipeline_schedule lists it, pp = the size of group, stage = this
 * rank in it), calling fns and moving tensors between the stages of group
 * (tags 0 and 1 of smp_send_tensor's space; nothing else may use them
 * meanwhile). Collective over group. A failed callback strands no stage:
 * its stage stops calling fns, the others stop as the failure reaches them,
 * every stage still completes the step's messages; then the failing stage
 * returns the callback's status, every other one SMP_ERR_PEER_FAILED, all
 * with its message ("pipeline stage S: forward of microbatch M, chunk C:
 * ..."). */
SMP_API smp_status_t smp_pipeline_run_step(smp_schedule_t kind, int microbatches, int chunks,
                                           int active_microbatches, smp_group_t group,
                                           const smp_stage_fns_t *fns);
/* For a stage callback's failure: records message as this thread's
 * smp_last_error() and returns status (return smp_stage_error(...)). */
SMP_API smp_status_t smp_stage_error(smp_status_t status, const char *message);

/* Run every stage's schedule on a simulated clock: forward_time[s] and
 * backward_time[s] (pp entries) are one chunk of one microbatch on stage s,
 * the transfer times one tensor between neighbours. Outputs: the step time,
 * the bubble (1 - busy / (pp * step)), and per stage (pp entries, may be
 * NULL) the most activations held at once (from a forward to its backward
 * or B). ZB_H1 / ZB_V take half of backward_time for each of B and W. */
SMP_API smp_status_t smp_pipeline_simulate(smp_schedule_t kind, int pp, int microbatches,
                                           int chunks, int active_microbatches,
                                           const double *forward_time,
                                           const double *backward_time,
                                           double activation_transfer,
                                           double gradient_transfer, double *step_time,
                                           double *bubble_fraction, int *peak_activations);
/* As smp_pipeline_simulate with the backward's halves timed apart:
 * backward_input_time[s] (B) and backward_weight_time[s] (W); a schedule
 * that does not split its backward takes their sum. */
SMP_API smp_status_t smp_pipeline_simulate_split(
    smp_schedule_t kind, int pp, int microbatches, int chunks, int active_microbatches,
    const double *forward_time, const double *backward_input_time,
    const double *backward_weight_time, double activation_transfer, double gradient_transfer,
    double *step_time, double *bubble_fraction, int *peak_activations);

typedef struct smp_layer_cost {
  double compute; /* time (or any measure) of the layer */
  double memory;  /* bytes on its device: parameters (with their gradients and
                   * optimizer state, as you count them) + activations */
} smp_layer_cost_t;

typedef struct smp_stage_info {
  size_t first_layer;
  size_t num_layers;
  double compute; /* sums over the stage's layers */
  double memory;
  double cost;    /* memory_weight * memory/total_memory
                   * + (1 - memory_weight) * compute/total_compute */
} smp_stage_info_t;

/* Split layers (in execution order) into pp contiguous stages minimising
 * the largest stage cost (exact, dynamic programming), every stage within
 * memory_limit bytes (<= 0: no limit). Fills stages[0..pp); *max_cost may
 * be NULL. No split fitting in memory_limit: SMP_ERR_INVALID_ARGUMENT with
 * the memory the best split would need. */
SMP_API smp_status_t smp_pipeline_partition(const smp_layer_cost_t *layers, size_t nlayers,
                                            int pp, double memory_weight,
                                            double memory_limit, smp_stage_info_t *stages,
                                            double *max_cost);

/* Timeline (SMP_TIMELINE=path, smprun --timeline; set it on every rank or
 * none). Every runtime call is recorded by itself, named after its C
 * function without "smp_", with args bytes and group (and peer): each
 * collective, send / recv, barrier, a non-blocking call's post ("iallreduce",
 * "isend", ...) and its "wait" / "test" (with the post's args), tensor
 * sends, receives and exchanges, "optimizer_create", "optimizer_step",
 * "optimizer_gather_params", "ckpt_save", "ckpt_load" (category "runtime"
 * in the file). bytes: count x element size; for reduce-scatter and
 * allgather the whole buffer (count x group size). These two mark the
 * framework's own regions (e.g. "forward" of microbatch m, chunk c; -1
 * where not applicable; category "framework") on the calling thread, and
 * may nest. Everything is a no-op when off (one load of a flag per call). */
SMP_API smp_status_t smp_timeline_begin(const char *name, int microbatch, int chunk);
SMP_API smp_status_t smp_timeline_end(void);
/* Collective over SMP_WORLD: gather every rank's events into the one
 * Chrome-trace JSON file SMP_TIMELINE names (one track per rank, loads in
 * Perfetto) and clear them. No-op when off.
 * smp_finalize writes it too when the timeline is on, events are pending
 * and it was never written: collective then (one small allreduce agrees
 * first), and skipped when any rank has seen a timeout, peer failure,
 * backend or internal error; a failed write is reported after smp is
 * finalized all the same. It waits for every rank, as Open MPI's
 * MPI_Finalize does anyway; a rank that never gets there is ended by the
 * launcher (a process exiting without finalize) or by SMP_TIMEOUT's
 * watchdog (which watches the agreement and the write). */
SMP_API smp_status_t smp_timeline_write(void);

/* ---- Sharded optimizer ---- */

/* ZeRO-1: every rank of a group holds the same parameters, keeps only its
 * 1/n shard of the float32 optimizer state (master weights and moments),
 * and per step reduce-scatters the gradients (average), updates its shard
 * with a fused AdamW or SGD kernel and allgathers the new parameters into
 * the model's tensors. Parameters and gradients are FLOAT32, BFLOAT16 or
 * FLOAT16 (mixed precision: a 16-bit model copy over float32 masters).
 * Memory: all params and grads in host memory, or all on one CUDA device
 * (a mix is SMP_ERR_INVALID_ARGUMENT, on every rank). With CUDA tensors
 * the state lives in device memory and the step (collectives, norm, fused
 * kernels) is enqueued on the default stream, like a collective on CUDA
 * buffers with stream NULL; clipping and check_finite read the norm back,
 * synchronizing once per step. export/import_state copy to and from host
 * memory; create and export/import are complete when they return. */
typedef struct smp_optimizer *smp_optimizer_t;

typedef enum { SMP_ADAMW = 0, SMP_SGD = 1 } smp_optimizer_kind_t;

/* norm_group values besides an smp_group_t. */
#define SMP_NORM_GROUP_AUTO (-1) /* the complement of group: DP -> PP, RDP -> MP */
#define SMP_NORM_GROUP_NONE (-2) /* the norm is summed over group only */

/* Versioned: set struct_size (SMP_OPTIMIZER_CONFIG_INIT does). Hyper-
 * parameters follow torch.optim.AdamW / torch.optim.SGD. */
typedef struct smp_optimizer_config {
  size_t struct_size;        /* sizeof(smp_optimizer_config_t) */
  smp_optimizer_kind_t kind; /* SMP_ADAMW (default) or SMP_SGD */
  double lr;                 /* < 0 = default: 1e-3 (AdamW), 1e-2 (SGD) */
  double beta1, beta2, eps;  /* AdamW: 0.9, 0.999, 1e-8 */
  double weight_decay;       /* < 0 = default: 0.01 (AdamW, decoupled), 0 (SGD, L2) */
  double momentum;           /* SGD: 0 = plain SGD */
  double dampening;          /* SGD */
  int nesterov;              /* SGD: 1 = Nesterov momentum (needs dampening 0) */
  smp_group_t group;         /* sharding group: SMP_DP_GROUP (default), or
                                SMP_RDP_GROUP when tensor parallelism
                                distributes parameters, or SMP_WORLD */
  int norm_group;            /* groups whose ranks hold distinct gradients
                                beyond `group` (pipeline stages, TP slices):
                                the global norm is summed over group, then
                                over norm_group (an smp_group_t or
                                SMP_NORM_GROUP_AUTO / _NONE) */
  size_t bucket_bytes;       /* communication bucket cap; 0 = 25 MiB */
  double max_grad_norm;      /* > 0: clip by the global L2 norm (as
                                torch.nn.utils.clip_grad_norm_); 0 = off */
  int check_finite;          /* 1: if any gradient on any rank of group or
                                norm_group is inf/NaN, every rank skips the
                                step (dynamic loss scaling) */
} smp_optimizer_config_t;

#define SMP_OPTIMIZER_CONFIG_INIT                                              \
  { sizeof(smp_optimizer_config_t), SMP_ADAMW, -1.0, 0.9, 0.999, 1e-8, -1.0,    \
    0.0, 0.0, 0, SMP_DP_GROUP, SMP_NORM_GROUP_AUTO, 0, 0.0, 0 }

/* One model tensor. name, count and dtype must be the same, in the same
 * order, on every rank of the group. */
typedef struct smp_optimizer_tensor {
  const char *name;   /* unique; keys the exported state */
  size_t count;       /* elements; 0 is allowed (nothing to update) */
  smp_dtype_t dtype;  /* of param and grad: FLOAT32, BFLOAT16 or FLOAT16 */
  void *param;        /* the model's copy: read at creation, rewritten by every step */
  const void *grad;   /* its gradient: read by every step */
  int tp_replicated;  /* 1: the same on every rank of the TP group (with an
                         RDP or PP sharding group): counted once in the
                         global norm, on tp_rank 0 */
} smp_optimizer_tensor_t;

/* Collective over group and norm_group: checks that every rank passed the
 * same tensor list and settings (else every rank fails, the message naming
 * the first differing tensor), builds the shard layout and copies this
 * rank's shard of the parameters into float32 master weights. The tensors'
 * memory must stay valid until smp_optimizer_destroy. */
SMP_API smp_status_t smp_optimizer_create(const smp_optimizer_config_t *config,
                                          const smp_optimizer_tensor_t *tensors, size_t count,
                                          smp_optimizer_t *optimizer);
/* Frees the optimizer (local, not collective). Call it before smp_finalize. */
SMP_API smp_status_t smp_optimizer_destroy(smp_optimizer_t optimizer);
/* One step (collective). grad_scale multiplies every gradient first (1 /
 * loss scale; 1.0 = none). *skipped (may be NULL) = 1 if inf/NaN made every
 * rank skip; *grad_norm (may be NULL) = the global norm of the scaled,
 * averaged gradients, or -1 when neither clipping nor check_finite is on. */
SMP_API smp_status_t smp_optimizer_step(smp_optimizer_t optimizer, double grad_scale,
                                        int *skipped, double *grad_norm);
/* Learning rate for the following steps (schedules). */
SMP_API smp_status_t smp_optimizer_set_lr(smp_optimizer_t optimizer, double lr);
/* Rewrites every param from the master weights (collective), e.g. after
 * smp_optimizer_import_state. */
SMP_API smp_status_t smp_optimizer_gather_params(smp_optimizer_t optimizer);

/* A run of one tensor in this rank's shard: state elements
 * [shard_offset, shard_offset + length) hold the tensor's elements
 * [tensor_offset, tensor_offset + length) (flat, row-major). */
typedef struct smp_optimizer_piece {
  size_t tensor_index;     /* in registration order */
  const char *tensor_name; /* valid until smp_optimizer_destroy */
  size_t tensor_offset;
  size_t shard_offset;
  size_t length;
} smp_optimizer_piece_t;

/* This rank's shard: elements per state buffer, number of state buffers,
 * of pieces, and steps taken. Any output may be NULL. */
SMP_API smp_status_t smp_optimizer_shard_info(smp_optimizer_t optimizer, size_t *shard_elems,
                                              size_t *num_states, size_t *num_pieces,
                                              long long *step);
/* Name of state buffer index: "master", then "exp_avg", "exp_avg_sq"
 * (AdamW) or "momentum_buffer" (SGD with momentum). */
SMP_API smp_status_t smp_optimizer_state_name(smp_optimizer_t optimizer, size_t index,
                                              const char **name);
/* Piece index (0..num_pieces-1), in shard order. */
SMP_API smp_status_t smp_optimizer_piece(smp_optimizer_t optimizer, size_t index,
                                         smp_optimizer_piece_t *piece);
/* Copies state buffer `state` of this rank's shard (count == shard_elems
 * float32 values; padding is 0) out, or in. */
SMP_API smp_status_t smp_optimizer_export_state(smp_optimizer_t optimizer, const char *state,
                                                float *out, size_t count);
SMP_API smp_status_t smp_optimizer_import_state(smp_optimizer_t optimizer, const char *state,
                                                const float *in, size_t count);
/* Steps taken (bias correction uses it); for restoring a checkpoint. */
SMP_API smp_status_t smp_optimizer_set_step(smp_optimizer_t optimizer, long long step);
/* Bytes of optimizer state this rank holds (states x shard_elems x 4). */
SMP_API smp_status_t smp_optimizer_state_bytes(smp_optimizer_t optimizer, size_t *bytes);

/* ---- Checkpoints ---- */

/* A checkpoint handle collects this rank's pieces of the job's tensors
 * (where they live in host memory) and user content, then saves or loads
 * them collectively over SMP_WORLD. Consolidated checkpoints are standard
 * safetensors files (model.safetensors, optimizer.safetensors, or several
 * files with a Hugging Face style *.safetensors.index.json); sharded ones
 * are one file per rank plus the index in MANIFEST.json. Either loads into
 * any (pp, tp, rdp) layout: each rank reads just the byte ranges it needs.
 * Each save creates DIR/ckpt-NNNNNNNN atomically (written under a
 * temporary name, fsynced, renamed, MANIFEST.json with every file's CRC32C
 * written last) and updates DIR/latest; a job killed mid-save leaves the
 * previous checkpoint intact, and a partial one is never loaded.
 * Host memory only for now (CUDA buffers: SMP_ERR_UNSUPPORTED). */
typedef struct smp_ckpt *smp_ckpt_t;

typedef enum {
  SMP_CKPT_CONSOLIDATED = 0, /* gathered into whole tensors (writer ranks) */
  SMP_CKPT_SHARDED = 1       /* every rank writes its own pieces, in parallel */
} smp_ckpt_mode_t;

/* smp_ckpt_add_tensor flags, or-ed. */
#define SMP_CKPT_REPLICATED 1 /* other ranks hold identical copies of this
                                 piece (data parallel, unsplit by tensor
                                 parallelism): written once */
#define SMP_CKPT_OPTIMIZER 2  /* optimizer state: stored apart from the
                                 model (names may repeat model names) */

/* A new, empty handle (local, no communication; valid before smp_init). */
SMP_API smp_status_t smp_ckpt_create(smp_ckpt_t *ckpt);
SMP_API smp_status_t smp_ckpt_destroy(smp_ckpt_t ckpt);

/* Registers this rank's piece of global tensor `name` (shape global_shape,
 * ndim dimensions, 0..8): the box [offsets, offsets + local_shape), stored
 * at data as a contiguous row-major buffer. A pipeline stage passes whole
 * tensors (offsets 0, local_shape = global_shape), a tensor-parallel rank
 * its slice. offsets / local_shape may be NULL for the whole tensor. data
 * must stay valid until the handle is destroyed; save reads it, load
 * writes it. Across ranks, the pieces of a tensor must tile it exactly
 * (copies flagged SMP_CKPT_REPLICATED count once). */
SMP_API smp_status_t smp_ckpt_add_tensor(smp_ckpt_t ckpt, const char *name, smp_dtype_t dtype,
                                         int ndim, const size_t *global_shape,
                                         const size_t *offsets, const size_t *local_shape,
                                         void *data, int flags);
/* As smp_ckpt_add_tensor, for elements [range_begin, range_begin +
 * range_count) of the box in its row-major order: a sharded optimizer's
 * state (smp_optimizer_piece_t: tensor_offset, length) of a tensor-parallel
 * slice. data holds range_count elements. */
SMP_API smp_status_t smp_ckpt_add_range(smp_ckpt_t ckpt, const char *name, smp_dtype_t dtype,
                                        int ndim, const size_t *global_shape,
                                        const size_t *offsets, const size_t *local_shape,
                                        size_t range_begin, size_t range_count, void *data,
                                        int flags);
/* This rank's user content under key (step, schedules, loss scale, data
 * position, RNG state, ...): len bytes, copied now; replaces an earlier
 * value of the key. */
SMP_API smp_status_t smp_ckpt_set_user(smp_ckpt_t ckpt, const char *key, const void *bytes,
                                       size_t len);
/* Consolidated saves gather at most buffer_bytes at a time (0 = 64 MiB;
 * writers hold about 4x that) and split files above max_file_bytes (0 =
 * never). Load checks every file's CRC32C first unless verify is 0. */
SMP_API smp_status_t smp_ckpt_set_options(smp_ckpt_t ckpt, size_t buffer_bytes,
                                          size_t max_file_bytes, int verify);

/* Collective over SMP_WORLD: saves a new checkpoint under dir (created if
 * needed), keeping the newest keep_last complete ones (0 = all). Every
 * rank must call it with the same arguments. */
SMP_API smp_status_t smp_ckpt_save(smp_ckpt_t ckpt, const char *dir, smp_ckpt_mode_t mode,
                                   int keep_last);
/* Collective over SMP_WORLD: fills every registered buffer from path (a
 * checkpoint folder, or a folder of them: its newest complete one),
 * whatever layout saved it. SMP_ERR_CORRUPT if a file fails its checksum
 * or is malformed, SMP_ERR_IO if none can be read, SMP_ERR_INVALID_ARGUMENT
 * if a registered tensor is missing or has another dtype or shape. A
 * failure on one rank fails every rank, with that rank's message. */
SMP_API smp_status_t smp_ckpt_load(smp_ckpt_t ckpt, const char *path);
/* The folder the last save or load used (valid until the next one). */
SMP_API smp_status_t smp_ckpt_last_path(smp_ckpt_t ckpt, const char **path);
/* After smp_ckpt_load: user content `key` that rank `rank` of the saving
 * job set (-1 = this rank's own world rank). *len gets its size; it is
 * copied to buf if cap >= *len (buf may be NULL to ask the size).
 * SMP_ERR_INVALID_ARGUMENT if there is no such content or cap is short. */
SMP_API smp_status_t smp_ckpt_get_user(smp_ckpt_t ckpt, const char *key, int rank, void *buf,
                                       size_t cap, size_t *len);
/* World size of the job that saved the loaded checkpoint. */
SMP_API smp_status_t smp_ckpt_saved_world_size(smp_ckpt_t ckpt, int *size);

/* Single safetensors files (no smp_init needed). */
typedef struct smp_tensor_view {
  const char *name;
  smp_dtype_t dtype;
  int ndim;            /* 0..8 */
  const size_t *shape; /* ndim extents (may be NULL when ndim is 0) */
  const void *data;    /* row-major, little-endian */
} smp_tensor_view_t;

/* Writes count tensors to path atomically (temporary file, fsync, rename). */
SMP_API smp_status_t smp_safetensors_write(const char *path, const smp_tensor_view_t *tensors,
                                           size_t count);
typedef struct smp_safetensors *smp_safetensors_t;
/* Opens and validates path (SMP_ERR_CORRUPT for a malformed file). */
SMP_API smp_status_t smp_safetensors_open(const char *path, smp_safetensors_t *file);
SMP_API smp_status_t smp_safetensors_close(smp_safetensors_t file);
SMP_API smp_status_t smp_safetensors_count(smp_safetensors_t file, size_t *count);
/* Tensor index (in file order): name, dtype, ndim and shape stay valid
 * until close. SMP_ERR_UNSUPPORTED for a dtype smp has no type for (BOOL,
 * U16, F8_*, ...). */
SMP_API smp_status_t smp_safetensors_info(smp_safetensors_t file, size_t index,
                                          const char **name, smp_dtype_t *dtype, int *ndim,
                                          const size_t **shape);
/* Reads tensor `name` into buf (bytes must equal its size). */
SMP_API smp_status_t smp_safetensors_read(smp_safetensors_t file, const char *name, void *buf,
                                          size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* SMP_SMP_H */
