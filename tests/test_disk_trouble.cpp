// Checkpoints when the disk misbehaves: a full file system (ENOSPC) at every
// point of a checkpoint write, a file-size limit (EFBIG, runs without root),
// and a read-only output directory. In every case the write must fail with a
// clear error naming the path and the cause, the previous checkpoint must
// still verify and read back bit for bit, and no temporary file or directory
// may be left behind.
//
// The full and read-only file systems are small tmpfs mounts made by the test,
// which needs root (CI runs as root); elsewhere those tests skip with the
// reason. The RLIMIT_FSIZE test runs everywhere.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "model/config.h"
#include "model/param_layout.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

std::string test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::path(KILN_TEST_TMPDIR) / "disk_trouble" /
                 (std::string(info->test_suite_name()) + "." + info->name() + "." +
                  std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// 5712 parameters: model.safetensors ~23 KB, optimizer.safetensors ~46 KB.
ModelConfig small_config() {
  ModelConfig c;
  c.dim = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.hidden_dim = 32;
  c.vocab_size = 64;
  c.max_seq_len = 32;
  c.tie_embeddings = true;
  c.validate("small");
  return c;
}

struct Model {
  ModelConfig config = small_config();
  ParamLayout layout{config};
  std::vector<float> params, m, v;
  nlohmann::json state;

  explicit Model(uint64_t seed) {
    Rng rng(seed, 3);
    for (int64_t i = 0; i < layout.total(); ++i) {
      params.push_back(rng.normal());
      m.push_back(0.1f * rng.normal());
      v.push_back(0.01f * std::fabs(rng.normal()));
    }
    state = {{"step", int64_t(seed)}, {"tokens", int64_t(seed) * 512}};
  }
  CheckpointContents contents() const {
    CheckpointContents c;
    c.config = &config;
    c.layout = &layout;
    c.params = params.data();
    c.m = m.data();
    c.v = v.data();
    c.state = state;
    return c;
  }
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Hidden entries (".tmp-...", ".<file>.tmp-<pid>") anywhere under dir.
std::vector<std::string> leftovers(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().starts_with(".")) out.push_back(e.path().string());
  return out;
}

// The previous checkpoint must verify and hold exactly what was written.
void expect_intact(const std::string& dir, const Model& model) {
  ASSERT_NO_THROW(verify_checkpoint(dir)) << dir;
  const LoadedCheckpoint back = read_checkpoint(dir);
  EXPECT_TRUE(same_bits(back.params, model.params)) << dir << ": params changed";
  EXPECT_TRUE(same_bits(back.m, model.m)) << dir << ": m changed";
  EXPECT_TRUE(same_bits(back.v, model.v)) << dir << ": v changed";
  EXPECT_EQ(back.state["step"], model.state["step"]) << dir;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.json", "model.safetensors",
                                             "optimizer.safetensors", "trainer_state.json"}))
      << dir;
}

// Runs write_checkpoint expecting a failure; returns the error message.
std::string expect_write_fails(const std::string& parent, const std::string& name,
                               const Model& model) {
  try {
    write_checkpoint(parent, name, model.contents());
  } catch (const RuntimeError& e) {
    return e.what();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "write_checkpoint(" << parent << ", " << name << ") did not fail";
  return "";
}

// A tmpfs mounted for the lifetime of the object (root only).
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, const std::string& options) : dir_(dir) {
    if (::geteuid() != 0) {
      reason_ = "mounting a tmpfs needs root (CI runs as root)";
      return;
    }
    if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      reason_ = std::string("mount -t tmpfs failed: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~TmpfsMount() {
    if (mounted_ && ::umount2(dir_.c_str(), 0) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& reason() const { return reason_; }
  bool remount(unsigned long flags) {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV | flags,
                   nullptr) == 0;
  }

 private:
  std::string dir_, reason_;
  bool mounted_ = false;
};

uint64_t free_bytes(const std::string& dir) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) return 0;
  return uint64_t(st.f_bavail) * st.f_bsize;
}

// (Re)writes `path` so that about `leave` bytes stay free on its file system.
void fill_leaving(const std::string& path, uint64_t leave) {
  fs::remove(path);
  const uint64_t avail = free_bytes(fs::path(path).parent_path().string());
  uint64_t todo = avail > leave ? avail - leave : 0;
  std::ofstream out(path, std::ios::binary);
  const std::vector<char> zeros(4096, 0);
  while (todo > 0 && out) {
    const size_t n = size_t(std::min<uint64_t>(todo, zeros.size()));
    out.write(zeros.data(), std::streamsize(n));
    todo -= n;
  }
}

}  // namespace

// ENOSPC at every point of a checkpoint: the free space is swept page by page
// from nothing up to what a checkpoint needs, so the disk fills during
// model.safetensors, config.json, optimizer.safetensors or trainer_state.json.
TEST(DiskTrouble, FullDiskAtEveryPointKeepsPreviousCheckpoint) {
  const std::string mnt = test_dir() + "/mnt";
  fs::create_directories(mnt);
  TmpfsMount tmpfs(mnt, "size=1m,mode=0755");
  if (!tmpfs.mounted()) GTEST_SKIP() << tmpfs.reason();

  const std::string parent = mnt + "/run";
  const Model first(1), second(2);
  const std::string first_dir = write_checkpoint(parent, checkpoint_name(1), first.contents());
  expect_intact(first_dir, first);

  // What one checkpoint takes on this file system (tmpfs counts whole pages).
  const uint64_t page = 4096;
  const uint64_t before = free_bytes(mnt);
  const std::string probe = write_checkpoint(mnt + "/probe", checkpoint_name(9), second.contents());
  const uint64_t needed = before - free_bytes(mnt);
  fs::remove_all(mnt + "/probe");
  ASSERT_GT(needed, 8 * page) << "the probe checkpoint should span several pages";

  const std::string filler = mnt + "/filler";
  int failures = 0;
  for (uint64_t leave = 0; leave < needed; leave += page) {
    SCOPED_TRACE("free bytes left: " + std::to_string(leave));
    fill_leaving(filler, leave);
    // A new checkpoint, and a rewrite of the existing name (moved aside only
    // once the new one is complete), must both fail cleanly.
    for (const std::string& name : {checkpoint_name(2), checkpoint_name(1)}) {
      const std::string message = expect_write_fails(parent, name, second);
      EXPECT_NE(message.find(parent), std::string::npos) << "message must name the path: " << message;
      EXPECT_NE(message.find("No space left on device"), std::string::npos)
          << "message must give the cause: " << message;
      ++failures;
    }
    expect_intact(first_dir, first);
    EXPECT_EQ(leftovers(parent), std::vector<std::string>{});
    const auto listed = list_checkpoints(parent);
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].path, first_dir);
  }
  EXPECT_GE(failures, 16);

  // Space again: the next checkpoint goes through and the first is untouched.
  fs::remove(filler);
  const std::string second_dir = write_checkpoint(parent, checkpoint_name(2), second.contents());
  expect_intact(second_dir, second);
  expect_intact(first_dir, first);
  EXPECT_EQ(leftovers(parent), std::vector<std::string>{});
}

// Read-only --out: writing and rotating fail with the cause, nothing changes.
TEST(DiskTrouble, ReadOnlyOutputKeepsPreviousCheckpoint) {
  const std::string mnt = test_dir() + "/mnt";
  fs::create_directories(mnt);
  TmpfsMount tmpfs(mnt, "size=1m,mode=0755");
  if (!tmpfs.mounted()) GTEST_SKIP() << tmpfs.reason();

  const std::string parent = mnt + "/run";
  const Model first(1), second(2), third(3);
  const std::string first_dir = write_checkpoint(parent, checkpoint_name(1), first.contents());
  const std::string second_dir = write_checkpoint(parent, checkpoint_name(2), second.contents());
  ASSERT_TRUE(tmpfs.remount(MS_RDONLY)) << "remount,ro failed: " << std::strerror(errno);

  for (const std::string& name : {checkpoint_name(3), checkpoint_name(2)}) {
    const std::string message = expect_write_fails(parent, name, third);
    EXPECT_NE(message.find(parent), std::string::npos) << "message must name the path: " << message;
    EXPECT_NE(message.find("Read-only file system"), std::string::npos)
        << "message must give the cause: " << message;
  }
  // Rotation cannot delete either; it must say so and leave both in place.
  EXPECT_THROW(rotate_checkpoints(parent, 1), RuntimeError);
  expect_intact(first_dir, first);
  expect_intact(second_dir, second);
  EXPECT_EQ(list_checkpoints(parent).size(), 2u);

  // Writable again: training can carry on where it was.
  ASSERT_TRUE(tmpfs.remount(0)) << "remount,rw failed: " << std::strerror(errno);
  const std::string third_dir = write_checkpoint(parent, checkpoint_name(3), third.contents());
  expect_intact(third_dir, third);
  expect_intact(second_dir, second);
  EXPECT_EQ(leftovers(parent), std::vector<std::string>{});
}

// The same failure without root: a per-process file-size limit makes write()
// fail with EFBIG part-way through model.safetensors or optimizer.safetensors.
TEST(DiskTrouble, FileSizeLimitKeepsPreviousCheckpoint) {
  const std::string parent = test_dir() + "/run";
  const Model first(1), second(2);
  const std::string first_dir = write_checkpoint(parent, checkpoint_name(1), first.contents());

  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  // Without SIG_IGN, exceeding the limit kills the process with SIGXFSZ.
  void (*old_handler)(int) = std::signal(SIGXFSZ, SIG_IGN);
  std::vector<std::string> messages;
  // 8 KB stops model.safetensors (~23 KB); 30 KB lets it through and stops the
  // optimizer file (~46 KB).
  for (rlim_t limit : {rlim_t(8 << 10), rlim_t(30 << 10)}) {
    struct rlimit low = saved;
    low.rlim_cur = std::min<rlim_t>(limit, saved.rlim_max);
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &low), 0);
    std::string message;
    try {
      write_checkpoint(parent, checkpoint_name(2), second.contents());
    } catch (const std::exception& e) {
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &saved);  // before any gtest output
    messages.push_back(message);
  }
  std::signal(SIGXFSZ, old_handler);

  ASSERT_EQ(messages.size(), 2u);
  EXPECT_NE(messages[0].find("model.safetensors"), std::string::npos) << messages[0];
  EXPECT_NE(messages[1].find("optimizer.safetensors"), std::string::npos) << messages[1];
  for (const std::string& m : messages) {
    EXPECT_NE(m.find(parent), std::string::npos) << "message must name the path: " << m;
    EXPECT_NE(m.find("File too large"), std::string::npos) << "message must give the cause: " << m;
  }
  expect_intact(first_dir, first);
  EXPECT_EQ(leftovers(parent), std::vector<std::string>{});
  ASSERT_EQ(list_checkpoints(parent).size(), 1u);
}
