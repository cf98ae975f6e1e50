// Cross-rank check that every rank of a group registered the same tensors:
// peers that disagree would pair different buckets and hang or corrupt
// silently, so the mismatch is found up front and named on every rank.
#include <sstream>

#include "common/error.h"
#include "common/hash.h"
#include "optim/sharded_optimizer.h"

namespace smp::optim {

std::string compare_tensor_lists(comm::Communicator &g, const std::vector<TensorSpec> &tensors,
                                 uint64_t settings_hash, bool local_ok) {
  const int n = g.size();
  Fnv1a list_hash;
  for (const TensorSpec &t : tensors) list_hash.word(ShardLayout::tensor_hash(t));
  const uint64_t mine[4] = {tensors.size(), list_hash.h, settings_hash, local_ok ? 1u : 0u};
  std::vector<uint64_t> table(4 * static_cast<size_t>(n));
  g.allgather(mine, table.data(), 4, DType::I64);

  const std::string where = std::string("optimizer: ranks of ") + g.group_name();
  std::string failed;
  for (int r = 0; r < n; ++r)
    if (table[4 * r + 3] == 0) failed += (failed.empty() ? "" : ", ") + std::to_string(r);
  if (!failed.empty())
    return std::string("optimizer: rank(s) ") + failed + " of " + g.group_name() +
           " rejected their arguments (see the error there); no optimizer was created";
  std::vector<uint64_t> all(3 * static_cast<size_t>(n));
  for (int r = 0; r < n; ++r)
    for (int k = 0; k < 3; ++k) all[3 * r + k] = table[4 * r + k];

  bool lists_same = true, settings_same = true;
  for (int r = 0; r < n; ++r) {
    lists_same &= all[3 * r] == all[0] && all[3 * r + 1] == all[1];
    settings_same &= all[3 * r + 2] == all[2];
  }
  if (lists_same && settings_same) return "";  // every rank sees the same table: all agree
  if (lists_same)
    return (where + " registered the same tensors but different settings (bucket size, "
                    "alignment, optimizer kind, clipping, finite check, or host vs CUDA memory); every "
                    "rank of the group must pass the same configuration");

  // Name the first difference: compare every rank's list with rank 0's.
  const size_t n0 = all[0];
  std::vector<uint64_t> ref(3 * n0);
  if (g.rank() == 0)
    for (size_t i = 0; i < n0; ++i) {
      ref[3 * i] = ShardLayout::tensor_hash(tensors[i]);
      ref[3 * i + 1] = tensors[i].count;
      ref[3 * i + 2] = static_cast<uint64_t>(tensors[i].dtype);
    }
  if (n0 > 0) g.broadcast(ref.data(), ref.size(), DType::I64, 0);
  size_t first = 0;
  while (first < tensors.size() && first < n0 &&
         ShardLayout::tensor_hash(tensors[first]) == ref[3 * first])
    ++first;
  const uint64_t my_first = first;
  std::vector<uint64_t> firsts(static_cast<size_t>(n));
  g.allgather(&my_first, firsts.data(), 1, DType::I64);

  std::ostringstream msg;
  msg << where << " registered different tensor lists (rank 0: " << n0 << " tensors";
  for (int r = 1; r < n; ++r)
    if (all[3 * r] != all[0] || all[3 * r + 1] != all[1])
      msg << "; rank " << r << ": " << all[3 * r] << " tensors, first differs at #"
          << firsts[static_cast<size_t>(r)];
  msg << ")";
  if (g.rank() != 0 && (all[3 * g.rank()] != n0 || all[3 * g.rank() + 1] != all[1])) {
    msg << "; here (rank " << g.rank() << ") ";
    if (first < tensors.size()) {
      const TensorSpec &t = tensors[first];
      msg << "tensor #" << first << " is '" << t.name << "' (" << t.count << " x "
          << dtype_name(t.dtype) << ")";
      if (first < n0)
        msg << ", rank 0's is " << (ref[3 * first + 1] == t.count &&
                                            ref[3 * first + 2] == static_cast<uint64_t>(t.dtype)
                                        ? "named differently"
                                        : "(" + std::to_string(ref[3 * first + 1]) + " x " +
                                              dtype_name(static_cast<DType>(ref[3 * first + 2])) + ")");
      else
        msg << " and rank 0 has no tensor #" << first;
    } else {
      msg << "the list ends after " << tensors.size() << " tensors where rank 0's goes on";
    }
  }
  return msg.str();
}

}  // namespace smp::optim
