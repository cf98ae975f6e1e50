// ckpt_many_tensors ROOT N [sharded|consolidated]: saves a checkpoint of N
// small tensors ("t<i>", [4] float32, element k = 4 * i + k, exact in
// float32 up to N = 2^22) under ROOT and prints its folder. The scale test
// and bench/ckpt/scale.sh time smp-ckpt and Python on it; the values are
// the reference they check against.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "common/error.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ckpt_many_tensors ROOT N [sharded|consolidated]\n");
    return 2;
  }
  const size_t n = std::strtoull(argv[2], nullptr, 10);
  const bool sharded = argc < 4 || std::strcmp(argv[3], "consolidated") != 0;
  std::vector<float> data(n * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  try {
    smp::ckpt::Checkpoint c;
    for (size_t i = 0; i < n; ++i)
      c.add("t" + std::to_string(i), smp::ckpt::Kind::Model, smp::DType::F32,
            smp::ckpt::Piece::whole({4}, "t"), data.data() + 4 * i, false);
    smp::comm::SelfBootstrap ex;
    smp::ckpt::SaveOptions opt;
    opt.sharded = sharded;
    std::printf("%s\n", c.save(ex, argv[1], opt).c_str());
  } catch (const smp::Error &e) {
    std::fprintf(stderr, "ckpt_many_tensors: %s\n", e.what());
    return 1;
  }
  return 0;
}
