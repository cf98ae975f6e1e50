#include "comm/context.h"

#include <mpi.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "comm/backend_select.h"
#include "comm/call_checker.h"
#include "comm/groups.h"
#include "comm/mpi/mpi_call_checker.h"
#include "comm/mpi/mpi_request.h"
#include "comm/mpi/mpi_util.h"
#include "comm/watchdog.h"
#include "common/env.h"
#include "common/error.h"
#if SMP_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace smp::comm {

namespace {

std::mutex g_init_mu;                 // init() / finalize() one at a time
std::atomic<Context *> g_context{nullptr};
bool g_mpi_started_here = false;      // MPI can be initialized once per process

using env::value;

// Unset: 0 (the callers' "not given").
int env_int(const char *name, int min) { return static_cast<int>(env::integer(name, 0, min)); }

// Elements per MPI call; a tuning and testing knob (tests set it small to
// exercise the chunked paths that > 2^31-element buffers take).
size_t max_chunk() {
  return static_cast<size_t>(
      std::min<unsigned long long>(env::count("SMP_MAX_CHUNK_ELEMENTS", INT_MAX, 1, "an integer"), INT_MAX));
}

void finalize_mpi_if_ours() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (g_mpi_started_here && initialized && !finalized && g_context.load() == nullptr) MPI_Finalize();
}

}  // namespace

Context *Context::current() { return g_context.load(std::memory_order_acquire); }

Context &Context::get() {
  Context *c = current();
  if (!c) fail(Status::NotInitialized, "smp is not initialized: call smp_init first");
  return *c;
}

Context &Context::init(const Options &o) {
  std::lock_guard<std::mutex> lock(g_init_mu);
  if (current()) invalid("smp_init: smp is already initialized (call smp_finalize first)");

  // Settings first, so a bad one fails before MPI starts.
  if (o.pp_size < 0) invalid("smp_init: pp_size " + std::to_string(o.pp_size) + " must be >= 1 (0 = unset)");
  if (o.tp_size < 0) invalid("smp_init: tp_size " + std::to_string(o.tp_size) + " must be >= 1 (0 = unset)");
  const int pp = o.pp_size > 0 ? o.pp_size : std::max(1, env_int("SMP_PP_SIZE", 1));
  const int tp = o.tp_size > 0 ? o.tp_size : std::max(1, env_int("SMP_TP_SIZE", 1));
  topo::Placement placement;
  const std::string ptext = !o.placement.empty() ? o.placement : (value("SMP_PLACEMENT") ? value("SMP_PLACEMENT") : "");
  if (!ptext.empty()) {
    try {
      placement = topo::Placement::parse(ptext);
    } catch (const std::invalid_argument &e) {
      invalid(std::string("smp_init: ") + (o.placement.empty() ? "SMP_PLACEMENT: " : "placement: ") + e.what());
    }
  }
  double timeout = o.timeout_seconds >= 0 ? o.timeout_seconds : env::seconds("SMP_TIMEOUT", -1);
  if (timeout < 0) timeout = 0;
  int check = o.check >= 0 ? o.check : env_int("SMP_CHECK", 0);
  if (check > 1) invalid("smp_init: SMP_CHECK must be 0 or 1");
  const size_t chunk = max_chunk();
  const char *device_env = value("SMP_DEVICE");
  const int device = device_env ? env_int("SMP_DEVICE", -1) : -2;  // -2: unset

  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    fail(Status::Backend, "smp_init: MPI has been finalized in this process and cannot start again");
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
      fail(Status::Backend, "smp_init: MPI_Init_thread failed");
    g_mpi_started_here = true;
    // If this init fails after this point, MPI stays up for a corrected
    // retry (MPI cannot start twice); finalize it at exit in that case, or
    // mpirun would report the rank as having died.
    std::atexit(finalize_mpi_if_ours);
  } else {
    MPI_Query_thread(&provided);
  }
  const bool own = g_mpi_started_here;
  int world_rank = 0, world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);

  std::unique_ptr<topo::Layout> layout;
  try {
    layout = std::make_unique<topo::Layout>(world_size, pp, tp, placement);
  } catch (const std::invalid_argument &e) {
    invalid(std::string("smp_init: ") + e.what());
  }

  std::unique_ptr<Context> ctx(new Context(*layout, world_rank, timeout, check == 1, own));
  MPI_Comm node = MPI_COMM_NULL;
  mpi::check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node),
                 "smp_init: MPI_Comm_split_type");
  MPI_Comm_rank(node, &ctx->local_rank_);
  MPI_Comm_size(node, &ctx->local_size_);
  MPI_Comm_free(&node);
  ctx->device_ = device;
#if SMP_HAVE_CUDA
  if (device == -2) ctx->device_ = cuda::device_count() > 0 ? ctx->local_rank_ % cuda::device_count() : -1;
#else
  if (device == -2) ctx->device_ = -1;
#endif
  int *tag_ub = nullptr;
  int flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &flag);
  CommSettings settings;
  settings.world_rank = world_rank;
  settings.check = check == 1;
  settings.max_tag = flag && tag_ub ? *tag_ub : 32767;
  settings.async_thread = provided == MPI_THREAD_MULTIPLE;
  if (check == 1) {
    ctx->checker_ = std::make_unique<mpi::MpiCallChecker>(*layout, world_rank);
    settings.checker = ctx->checker_.get();
  }
  ctx->settings_ = settings;
  ctx->select_ = std::make_unique<BackendSelect>(MPI_COMM_WORLD, chunk, timeout, world_rank);
  // One communicator per group: split the world by the group's colour,
  // ordered by world rank (the layout's rank-in-group).
  for (topo::Group g : topo::kAllGroups) {
    MPI_Comm comm = MPI_COMM_NULL;
    mpi::check_mpi(MPI_Comm_split(MPI_COMM_WORLD, layout->group_color(g, world_rank), world_rank, &comm),
                   "smp_init: MPI_Comm_split");
    int r = 0;
    MPI_Comm_rank(comm, &r);
    GroupBackends b = ctx->select_->select(comm);
    MPI_Comm_free(&comm);
    if (r != layout->group_rank(g, world_rank))
      fail(Status::Internal, "smp_init: MPI's rank in " + std::string(topo::group_name(g)) +
                                 " disagrees with the layout");
    auto &c = ctx->groups_[static_cast<size_t>(g)];
    c = std::make_unique<Communicator>(g, layout->group_members(g, world_rank), r, settings, std::move(b.host),
                                       std::move(b.host_async));
    if (b.device) c->set_device_backends(std::move(b.device), std::move(b.device_async));
  }
  // The watchdog's control channel: its thread asks and answers which
  // operation each rank waits in, which needs MPI_THREAD_MULTIPLE. Made
  // also without SMP_TIMEOUT: a group's own timeout (set later, locally)
  // starts the thread.
  MPI_Comm control = MPI_COMM_NULL;
  if (provided == MPI_THREAD_MULTIPLE) {
    mpi::check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &control), "smp_init: MPI_Comm_dup (watchdog)");
    MPI_Comm_set_errhandler(control, MPI_ERRORS_RETURN);
  }
  ctx->watchdog_ = std::make_unique<Watchdog>(timeout, world_rank, *layout, control);
  g_context.store(ctx.get(), std::memory_order_release);
  return *ctx.release();
}

void Context::finalize() {
  std::lock_guard<std::mutex> lock(g_init_mu);
  Context *c = current();
  if (!c) fail(Status::NotInitialized, "smp_finalize: smp is not initialized");
  if (const int n = mpi::pending_requests(); n > 0)
    invalid("smp_finalize: " + std::to_string(n) +
            " isend/irecv request(s) were never waited for; smp_wait them first");
  g_context.store(nullptr, std::memory_order_release);
  const bool own = c->own_mpi_;
  delete c;  // drains non-blocking work, frees the communicators
  if (own) MPI_Finalize();
}

Context::Context(topo::Layout layout, int world_rank, double timeout, bool check, bool own_mpi)
    : layout_(std::move(layout)), world_rank_(world_rank), timeout_(timeout), check_(check),
      own_mpi_(own_mpi) {}

Communicator &Context::group(topo::Group g) {
  if (is_layout_group(g)) return *groups_[static_cast<size_t>(g)];
  if (Communicator *c = find_group(static_cast<int>(g))) return *c;
  if (is_user_group(g))
    invalid("group " + std::to_string(static_cast<int>(g)) +
            " is not a group of this rank: never created here (smp_group_create), or destroyed");
  invalid("group " + std::to_string(static_cast<int>(g)) +
          " is not an smp_group_t (SMP_WORLD..SMP_MP_GROUP, or a handle from smp_group_create)");
}

Communicator *Context::find_group(int g) noexcept {
  if (is_layout_group(static_cast<topo::Group>(g))) return groups_[static_cast<size_t>(g)].get();
  std::lock_guard<std::mutex> lock(user_mu_);
  auto it = user_groups_.find(g);
  return it == user_groups_.end() ? nullptr : it->second.get();
}

topo::Group Context::create_group(const std::vector<int> &ranks) {
  const char *what = "smp_group_create";
  const int n = static_cast<int>(ranks.size());
  if (n < 1) invalid(std::string(what) + ": nranks " + std::to_string(n) + " must be >= 1");
  std::vector<bool> seen(static_cast<size_t>(world_size()), false);
  int mine = -1;
  for (int i = 0; i < n; ++i) {
    const int r = ranks[static_cast<size_t>(i)];
    if (r < 0 || r >= world_size())
      invalid(std::string(what) + ": world_ranks[" + std::to_string(i) + "] = " + std::to_string(r) +
              " is out of range (the world has ranks 0.." + std::to_string(world_size() - 1) + ")");
    if (seen[static_cast<size_t>(r)])
      invalid(std::string(what) + ": world rank " + std::to_string(r) + " is listed twice (world_ranks[" +
              std::to_string(i) + "])");
    seen[static_cast<size_t>(r)] = true;
    if (r == world_rank_) mine = i;
  }
  if (mine < 0)
    invalid(std::string(what) + ": this rank (world rank " + std::to_string(world_rank_) +
            ") is not in world_ranks; only the listed ranks call it");

  std::lock_guard<std::mutex> creating(create_mu_);
  constexpr int kCreateTag = 0x534d50;  // MPI_Comm_create_group's tag: smp's own
  MPI_Group world = MPI_GROUP_NULL, sub = MPI_GROUP_NULL;
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  int rc = MPI_Group_incl(world, n, ranks.data(), &sub);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_create_group(MPI_COMM_WORLD, sub, kCreateTag, &comm);
  MPI_Group_free(&world);
  if (sub != MPI_GROUP_NULL) MPI_Group_free(&sub);
  mpi::check_mpi(rc, "smp_group_create: MPI_Comm_create_group");
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  // The id: above every id any member has used, so that no two groups of
  // one rank share a value, and the same on every member (comm/groups.h).
  int id = 0;
  rc = MPI_Allreduce(&next_user_id_, &id, 1, MPI_INT, MPI_MAX, comm);
  if (rc != MPI_SUCCESS) MPI_Comm_free(&comm);
  mpi::check_mpi(rc, "smp_group_create: MPI_Allreduce");
  next_user_id_ = id + 1;
  const auto g = static_cast<topo::Group>(kFirstUserGroup + id);
  int r = 0;
  MPI_Comm_rank(comm, &r);
  std::unique_ptr<Communicator> c;
  try {
    GroupBackends b = select_->select(comm);
    register_user_group(g, ranks);
    c = std::make_unique<Communicator>(g, ranks, r, settings_, std::move(b.host), std::move(b.host_async));
    if (b.device) c->set_device_backends(std::move(b.device), std::move(b.device_async));
  } catch (...) {
    unregister_user_group(g);
    MPI_Comm_free(&comm);
    throw;
  }
  MPI_Comm_free(&comm);
  if (r != mine) fail(Status::Internal, "smp_group_create: MPI's rank in the new group disagrees with world_ranks");
  std::lock_guard<std::mutex> lock(user_mu_);
  user_groups_[static_cast<int>(g)] = std::move(c);
  return g;
}

void Context::destroy_group(topo::Group g) {
  if (is_layout_group(g))
    invalid(std::string("smp_group_destroy: ") + topo::group_name(g) +
            " is one of the layout's groups, which cannot be destroyed");
  std::unique_ptr<Communicator> c;
  {
    std::lock_guard<std::mutex> lock(user_mu_);
    auto it = user_groups_.find(static_cast<int>(g));
    if (it != user_groups_.end()) {
      c = std::move(it->second);
      user_groups_.erase(it);
    }
  }
  if (!c) group(g);  // throws the message for an unknown value
  c.reset();         // drains its queued non-blocking collectives
  unregister_user_group(g);
}

void Context::set_group_timeout(topo::Group g, double seconds) {
  if (!(seconds >= 0) || std::isinf(seconds))
    invalid("smp_group_set_timeout: seconds " + std::to_string(seconds) +
            " must be a finite number >= 0 (0: no timeout)");
  Communicator &c = group(g);
  c.set_timeout(seconds);
  watchdog_->watch_group(seconds);
}

Context::~Context() {
  for (auto &u : user_groups_) {
    const auto g = static_cast<topo::Group>(u.first);
    u.second.reset();
    unregister_user_group(g);
  }
  user_groups_.clear();
  for (auto &g : groups_) g.reset();
  checker_.reset();
  watchdog_.reset();
}

}  // namespace smp::comm
