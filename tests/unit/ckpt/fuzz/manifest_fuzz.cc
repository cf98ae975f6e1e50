// libFuzzer target over checkpoint manifests. A real checkpoint (the
// fixture: two ranks' shards, rows, columns, optimizer ranges) is written
// once; each input becomes its MANIFEST.json, then a load into whole
// tensors must either give exactly the reference data or fail with
// smp::Error CORRUPT; never a success with other data, a crash, a hang or
// another exception.
//
// Each input is tried twice: as given (the manifest's checksum must reject
// almost every mutation), and resealed with a correct checksum, so the
// checks behind it (structure, element counts, tiling, the files' own
// records of their slices) face the mutation too. A resealed manifest may
// also name a tensor other than the one registered, which the load reports
// as INVALID_ARGUMENT (a registration the checkpoint does not have).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "manifest_fixture.h"

namespace {

std::string g_dir;

void check(const std::string &manifest, bool resealed) {
  namespace ck = smp::ckpt;
  const int fd = ck::io::create_write(ck::io::join(g_dir, ck::kManifestName));
  ck::io::write_all(fd, manifest.data(), manifest.size(), "manifest");
  ck::io::close_fd(fd, "manifest");
  try {
    const manifest_fixture::Loaded a = manifest_fixture::load(g_dir, true, 0);
    const manifest_fixture::Loaded b = manifest_fixture::load(g_dir, true, 0xffffffffu);
    if (!manifest_fixture::matches_reference(a) || !manifest_fixture::matches_reference(b)) std::abort();
  } catch (const smp::Error &e) {
    const bool ok = e.status() == smp::Status::Corrupt || (resealed && e.status() == smp::Status::InvalidArgument);
    if (!ok) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const char *base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/smp-manifest-fuzz-XXXXXX";
  if (!mkdtemp(tmpl.data())) std::abort();
  g_dir = tmpl;
  manifest_fixture::write(g_dir);
  // Left behind on exit (libFuzzer exits from many places); it is small
  // and under TMPDIR, which run_fuzz.sh points at its scratch folder.
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  check(text, false);
  const size_t seal = text.rfind("\"manifest_crc32c\"");
  check(smp::ckpt::seal_manifest(text.substr(0, seal == std::string::npos ? text.size() : seal)), true);
  return 0;
}
