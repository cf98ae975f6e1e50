// SMP_CHECK for blocking collectives, including the group each rank named.
//
// Comparing calls over the group's own communicator cannot catch a rank
// that named another group: the members of the two groups wait in two
// different exchanges for ranks that never join. So each member of a call
// sends its descriptor (group, its call number on that group, the group's
// membership, the arguments) to every other member on a world-level
// channel, and takes one descriptor from each. A member found in a blocking
// collective on another group that holds them both (it sent us that call's
// descriptor, and we are in no call on that group) is a mismatch: both
// calls fail on this rank, and every other member of both groups is sent a
// notice that fails its side of them too, so nobody waits for --timeout.
// Different groups still run concurrently: ranks only ever hear from the
// members of groups they belong to, and only the call in progress on the
// group named is compared.
//
// The rule assumes what blocking collectives already require of a correct
// program: a rank waiting on group G for a member that sits in a blocking
// collective on another group H (holding both) would wait for ever, since
// that member waits on H for this rank. Blocking collectives running
// concurrently on one rank from several threads are told apart by the
// calls in progress here; a call on H that another thread of this rank has
// not started yet when the member's H descriptor arrives is reported as a
// mismatch (the Python front end calls from one thread at a time).
//
// Non-blocking collectives are not checked here: each compares its
// descriptor with its group's members over the group's own communicator
// (Communicator::verify), so arguments and membership are verified, but a
// rank that issued the call on another group is not caught. The rule above
// cannot be applied to them: a rank that issued a non-blocking call on G
// is free to issue anything, on any group, before it waits, so a member's
// descriptor for another group proves nothing until both sides block in
// smp_wait, which this channel does not see. That hang is SMP_TIMEOUT's:
// its line names the member that has not arrived and the call it waits in
// (tests/mpi/comm/call_hang_test.py, check-iallreduce-group).
//
// A group of one has nothing to compare: Communicator::verify returns at
// once, without a message or a call number.
#pragma once

#include <vector>

#include "comm/check.h"
#include "topo/layout.h"

namespace smp::comm {

class CallChecker {
 public:
  virtual ~CallChecker() = default;
  // Every member's descriptor of this call in group-rank order (`mine` at
  // index `rank`); members are world ranks. Throws smp::Error(PeerFailed)
  // when a member named another group or other members, or a notice says
  // another rank found this call mismatched.
  virtual std::vector<CallDesc> exchange(topo::Group group, const std::vector<int> &members,
                                         int rank, const CallDesc &mine) = 0;
};

}  // namespace smp::comm
