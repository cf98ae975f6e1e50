// The CUDA backends' environment knobs (comm/device_env.h): defaults
// when unset or empty, the accepted values, and a one-line usage error that
// names the variable for everything else.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "comm/device_env.h"

namespace smp::comm {
namespace {

// Sets (or, for nullptr, unsets) one variable for a test's duration.
class Env {
 public:
  Env(const char *name, const char *value) : name_(name) {
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~Env() { unsetenv(name_); }

 private:
  const char *name_;
};

std::string error_of(void (*f)()) {
  try {
    f();
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::InvalidArgument);
    return e.what();
  }
  return "";
}

TEST(DeviceEnv, BytesDefaultWhenUnsetOrEmpty) {
  {
    Env e("SMP_TEST_BYTES", nullptr);
    EXPECT_EQ(env_bytes("SMP_TEST_BYTES", 4096, 8), 4096u);
  }
  Env e("SMP_TEST_BYTES", "");
  EXPECT_EQ(env_bytes("SMP_TEST_BYTES", 4096, 8), 4096u);
}

TEST(DeviceEnv, BytesTakeANumberAtLeastTheMinimum) {
  Env e("SMP_TEST_BYTES", "65536");
  EXPECT_EQ(env_bytes("SMP_TEST_BYTES", 1, 512), 65536u);
}

TEST(DeviceEnv, BadBytesNameTheVariableAndTheMinimum) {
  for (const char *bad : {"512x", "abc", "-4096", "100", " 4096"}) {
    Env e("SMP_TEST_BYTES", bad);
    const std::string what = error_of([] { env_bytes("SMP_TEST_BYTES", 1, 512); });
    EXPECT_EQ(what, std::string("SMP_TEST_BYTES='") + bad + "' is not a number of bytes >= 512") << bad;
  }
}

TEST(DeviceEnv, IpcModes) {
  const std::pair<const char *, IpcMode> cases[] = {
      {nullptr, IpcMode::On}, {"", IpcMode::On}, {"0", IpcMode::Off}, {"1", IpcMode::On},
      {"require", IpcMode::Required}};
  for (const auto &[value, mode] : cases) {
    Env e("SMP_CUDA_IPC", value);
    EXPECT_EQ(ipc_mode(), mode) << (value ? value : "(unset)");
  }
}

TEST(DeviceEnv, BadIpcModeIsAUsageError) {
  for (const char *bad : {"yes", "2", "REQUIRE", "on"}) {
    Env e("SMP_CUDA_IPC", bad);
    EXPECT_EQ(error_of([] { ipc_mode(); }), std::string("SMP_CUDA_IPC='") + bad + "' is not 0, 1 or require")
        << bad;
  }
}

}  // namespace
}  // namespace smp::comm
