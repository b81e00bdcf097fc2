// CPU GEMM through oneDNN matmul primitives, and the cast op.
//
// A oneDNN primitive is expensive to create (it picks a kernel: AMX, AVX-512
// bf16, AVX2 ..., and may JIT-compile it) and cheap to run, so each distinct
// (M, N, K, trans_a, trans_b, dtype, accumulate) gets one primitive, created on
// first use and reused for the rest of the run ("compile once, weights are
// inputs"). The primitive's memory objects are created with it and re-pointed
// at the caller's buffers on every call, and oneDNN's scratchpad is ours and
// grow-only, so a call allocates nothing. Like the rest of CpuBackend, one
// backend is driven by one host thread at a time (oneDNN then uses all cores).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <memory>
#include <unordered_map>

#include "backend/cpu/bf16_convert.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm_cache.h"
#include "backend/cpu/gemv.h"
#include "core/error.h"

namespace kiln {
namespace {

std::atomic<int64_t> g_primitives_created{0};

struct GemmKey {
  int64_t M, N, K;
  uint8_t flags;  // bit 0 trans_a, bit 1 trans_b, bit 2 accumulate, bit 3 bf16
  bool operator==(const GemmKey&) const = default;
};

struct GemmKeyHash {
  size_t operator()(const GemmKey& key) const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint64_t v : {uint64_t(key.M), uint64_t(key.N), uint64_t(key.K), uint64_t(key.flags)})
      h = (h ^ v) * 0xbf58476d1ce4e5b9ull, h ^= h >> 31;
    return size_t(h);
  }
};

// One cached matmul and the memory objects its arguments are bound through.
struct GemmPrimitive {
  dnnl::matmul matmul;
  dnnl::memory a, b, c, scratchpad;
  size_t scratchpad_bytes = 0;
};

struct AlignedBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  void* reserve(size_t want) {
    if (want <= bytes) return ptr;
    std::free(ptr);
    const size_t rounded = (want + 63) / 64 * 64;
    ptr = std::aligned_alloc(64, rounded);
    if (!ptr) {
      bytes = 0;
      fail_runtime("cpu backend",
                   "out of memory allocating " + std::to_string(want) + " bytes of GEMM scratch");
    }
    bytes = rounded;
    return ptr;
  }
  ~AlignedBuffer() { std::free(ptr); }
};

int64_t checked_product(int64_t a, int64_t b, const char* what) {
  int64_t p;
  // Bytes are at most 4 per element; keep every size well inside int64 and size_t.
  if (__builtin_mul_overflow(a, b, &p) || p > (int64_t(1) << 60))
    fail_input("matmul", std::string(what) + " has too many elements", "at most 2^60",
               std::to_string(a) + " x " + std::to_string(b));
  return p;
}

}  // namespace

struct GemmCache {
  dnnl::engine engine;
  dnnl::stream stream;
  std::unordered_map<GemmKey, GemmPrimitive, GemmKeyHash> primitives;
  AlignedBuffer scratchpad;  // oneDNN's, shared by every primitive (calls are sequential)
  AlignedBuffer scratch[kGemmScratchSlots];

  GemmPrimitive& get(const GemmKey& key);
};

GemmCache* create_gemm_cache() {
  // Reading the CPU features asks Linux for the AMX tile state (arch_prctl), which
  // must happen before oneDNN creates an AMX kernel in this process.
  (void)cpu_features();
  auto cache = std::make_unique<GemmCache>();
  try {
    cache->engine = dnnl::engine(dnnl::engine::kind::cpu, 0);
    cache->stream = dnnl::stream(cache->engine);
    return cache.release();
  } catch (const dnnl::error& e) {
    fail_runtime("oneDNN", std::string("could not create the CPU engine: ") + e.what());
  }
}

void GemmCacheDeleter::operator()(GemmCache* cache) const { delete cache; }

void* gemm_scratch(GemmCache& cache, int slot, size_t bytes) {
  return cache.scratch[slot].reserve(bytes);
}

int64_t gemm_primitives_created() { return g_primitives_created.load(); }

GemmPrimitive& GemmCache::get(const GemmKey& key) {
  auto found = primitives.find(key);
  if (found != primitives.end()) return found->second;

  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const bool trans_a = key.flags & 1, trans_b = key.flags & 2, accumulate = key.flags & 4;
  const dt operand = (key.flags & 8) ? dt::bf16 : dt::f32;
  // Logical shapes op(A) [M, K], op(B) [K, N], C [M, N]; a transposed operand is
  // the same logical matrix stored column-major (format tag `ba`).
  const dnnl::memory::desc a_md({key.M, key.K}, operand, trans_a ? tag::ba : tag::ab);
  const dnnl::memory::desc b_md({key.K, key.N}, operand, trans_b ? tag::ba : tag::ab);
  const dnnl::memory::desc c_md({key.M, key.N}, dt::f32, tag::ab);
  try {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (accumulate) {
      // C = 1 * C_old + A B: the sum post-op is GEMM's beta = 1.
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    const dnnl::matmul::desc desc(a_md, b_md, c_md);
    const dnnl::matmul::primitive_desc pd(desc, attr, engine);
    GemmPrimitive p;
    p.matmul = dnnl::matmul(pd);
    p.a = dnnl::memory(a_md, engine, DNNL_MEMORY_NONE);
    p.b = dnnl::memory(b_md, engine, DNNL_MEMORY_NONE);
    p.c = dnnl::memory(c_md, engine, DNNL_MEMORY_NONE);
    p.scratchpad_bytes = pd.scratchpad_desc().get_size();
    if (p.scratchpad_bytes > 0) {
      scratchpad.reserve(p.scratchpad_bytes);
      p.scratchpad = dnnl::memory(pd.scratchpad_desc(), engine, DNNL_MEMORY_NONE);
    }
    g_primitives_created.fetch_add(1);
    return primitives.emplace(key, std::move(p)).first->second;
  } catch (const dnnl::error& e) {
    const std::string shape = std::to_string(key.M) + "x" + std::to_string(key.N) + "x" +
                              std::to_string(key.K) + (operand == dt::bf16 ? " bf16" : " fp32");
    if (e.status == dnnl_unimplemented && operand == dt::bf16)
      fail_runtime("oneDNN matmul " + shape,
                   "no bf16 kernel for this CPU or ISA cap (bf16 needs AVX-512; "
                   "use --dtype fp32, or unset ONEDNN_MAX_CPU_ISA)");
    fail_runtime("oneDNN matmul " + shape,
                 std::string("could not create the primitive: ") + e.what());
  }
}

// C[M, N] (= or +=) op(A)[M, K] op(B)[K, N]; see backend.h.
void CpuBackend::matmul(float* C, const void* A, const void* B, DType dtype, int64_t M, int64_t N,
                        int64_t K, bool trans_a, bool trans_b, bool accumulate) {
  if (M < 0 || N < 0 || K < 0)
    fail_input("matmul", "negative dimension", "M, N, K >= 0",
               std::to_string(M) + ", " + std::to_string(N) + ", " + std::to_string(K));
  checked_product(M, K, "A");
  checked_product(K, N, "B");
  checked_product(M, N, "C");
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = 0, or C unchanged when accumulating
    if (!accumulate) zero(C, size_t(M * N) * sizeof(float));
    return;
  }

  // A linear layer applied to a few rows (a decode step): a bandwidth-bound kernel.
  if (!trans_a && trans_b && cpu::gemv_linear(C, A, B, dtype, M, N, K, accumulate)) return;

  const GemmKey key{M, N, K,
                    uint8_t((trans_a ? 1 : 0) | (trans_b ? 2 : 0) | (accumulate ? 4 : 0) |
                            (dtype == DType::bf16 ? 8 : 0))};
  GemmCache& cache = *gemm_;
  GemmPrimitive& p = cache.get(key);
  // Re-point the cached memory objects at this call's buffers (no allocation).
  p.a.set_data_handle(const_cast<void*>(A));
  p.b.set_data_handle(const_cast<void*>(B));
  p.c.set_data_handle(C);
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p.a.get()},
                             {DNNL_ARG_WEIGHTS, p.b.get()},
                             {DNNL_ARG_DST, p.c.get()},
                             {DNNL_ARG_SCRATCHPAD, nullptr}};
  int n_args = 3;
  if (p.scratchpad_bytes > 0) {
    p.scratchpad.set_data_handle(cache.scratchpad.ptr);
    args[n_args++].memory = p.scratchpad.get();
  }
  // The C API takes a plain array; the C++ execute() builds a hash map per call.
  const dnnl_status_t status =
      dnnl_primitive_execute(p.matmul.get(), cache.stream.get(), n_args, args);
  if (status != dnnl_success)
    fail_runtime("oneDNN matmul", "execution failed with status " + std::to_string(int(status)));
  cache.stream.wait();
}

// dst[n] (=) src converted to dst_dtype.
void CpuBackend::cast(void* dst, DType dst_dtype, const float* src, int64_t n) {
  if (n < 0) fail_input("cast", "negative element count", ">= 0", std::to_string(n));
  if (dst_dtype == DType::f32) {
    copy(dst, src, size_t(n) * sizeof(float));
    return;
  }
  uint16_t* out = static_cast<uint16_t*>(dst);
  // Blocks of 16 Ki values: big enough to amortise the dispatch, small enough
  // that both threads get work on a 2-core machine for any n above a few blocks.
  const int64_t block = 1 << 14;
  const int64_t n_blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t begin = b * block, count = std::min(block, n - begin);
    f32_to_bf16(out + begin, src + begin, count);
  }
}

}  // namespace kiln
