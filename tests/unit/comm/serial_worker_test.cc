// common/serial_worker.h: jobs run one at a time, in the order posted, on
// one thread other than the poster's; drain() waits for them; a bound
// makes post() wait; the destructor runs what is queued.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "common/serial_worker.h"

namespace smp {
namespace {

TEST(SerialWorker, RunsInPostOrderOnOneOtherThread) {
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  std::atomic<int> running{0};
  bool overlapped = false;
  {
    SerialWorker w;
    for (int i = 0; i < 200; ++i)
      w.post([&, i] {
        if (running.fetch_add(1) != 0) overlapped = true;
        order.push_back(i);
        threads.push_back(std::this_thread::get_id());
        running.fetch_sub(1);
      });
    w.drain();
    ASSERT_EQ(order.size(), 200u);
    w.post([&] { order.push_back(200); });
  }  // the destructor runs the last one
  ASSERT_EQ(order.size(), 201u);
  for (int i = 0; i <= 200; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
  EXPECT_FALSE(overlapped);
  for (auto id : threads) {
    EXPECT_EQ(id, threads.front());
    EXPECT_NE(id, std::this_thread::get_id());
  }
}

TEST(SerialWorker, BoundMakesPostWait) {
  std::mutex gate;
  std::unique_lock<std::mutex> hold(gate);
  SerialWorker w(2);
  std::atomic<int> posted{0};
  w.post([&] { std::lock_guard<std::mutex> g(gate); });  // runs, blocked on the gate
  std::thread poster([&] {
    for (int i = 0; i < 4; ++i) {
      w.post([] {});
      posted.fetch_add(1);
    }
  });
  // Two wait in the queue behind the blocked job; the third post waits.
  for (int spin = 0; spin < 200 && posted.load() < 2; ++spin)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(posted.load(), 2);
  hold.unlock();
  poster.join();
  w.drain();
  EXPECT_EQ(posted.load(), 4);
}

}  // namespace
}  // namespace smp
