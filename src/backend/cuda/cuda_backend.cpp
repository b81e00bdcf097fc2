// CudaBackend: device discovery, construction, memory, grow-only scratch and the
// RoPE tables. The ops live in their own files (see cuda_backend.h).
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/attention_launch.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace kiln {

// Kiln's kernels use bf16 tensor-core instructions (mma.sync m16n8k16) and the
// binary carries compute_80 PTX: compute capability 8.0 (Ampere) is the floor.
constexpr int kMinComputeMajor = 8;

bool cuda_available(std::string* why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (why)
      *why = std::string("CUDA is not usable here: ") + cudaGetErrorName(status) + " (" +
             cudaGetErrorString(status) + ")";
    (void)cudaGetLastError();  // clear it, so later calls do not report it again
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA device is present";
    return false;
  }
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    if (why) *why = "could not read the compute capability of CUDA device 0";
    return false;
  }
  if (major < kMinComputeMajor) {
    if (why)
      *why = "CUDA device 0 has compute capability " + std::to_string(major) + "." +
             std::to_string(minor) + "; Kiln's CUDA kernels need 8.0 (Ampere) or newer";
    return false;
  }
  if (why) why->clear();
  return true;
}

namespace {

CudaAttentionKernel attention_from_env(CudaAttentionKernel fallback) {
  const char* env = std::getenv("KILN_CUDA_ATTENTION");
  if (!env || !*env) return fallback;
  const std::string v = env;
  if (v == "auto") return CudaAttentionKernel::auto_;
  if (v == "simt") return CudaAttentionKernel::simt;
  if (v == "mma") return CudaAttentionKernel::mma;
  fail_input("KILN_CUDA_ATTENTION", "unknown attention kernel", "auto, simt or mma", v);
}

}  // namespace

CudaBackend::CudaBackend(const CudaBackendOptions& options)
    : options_(options), device_(options.device) {
  std::string why;
  if (!cuda_available(&why)) fail_runtime("cuda backend", why);
  attention_ = attention_from_env(options.attention);
  KILN_CUDA(cudaSetDevice(device_), "cuda backend");
  cudaDeviceProp prop{};
  KILN_CUDA(cudaGetDeviceProperties(&prop, device_), "cuda backend");
  device_name_ = prop.name;
  sm_count_ = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
  max_smem_optin_ = int(prop.sharedMemPerBlockOptin);
  cc_major_ = prop.major;
  cc_minor_ = prop.minor;
  if (cc_major_ < kMinComputeMajor)
    fail_runtime("cuda backend",
                 "device " + device_name_ + " is older than compute capability 8.0");
  cudaStream_t stream = nullptr;
  KILN_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cuda backend");
  stream_ = stream;
  gemm_.reset(create_cuda_gemm_cache(stream_));
  KILN_CUDA(cudaMallocHost(reinterpret_cast<void**>(&step_pinned_), sizeof(OptimizerStep)),
            "cuda backend");
  *step_pinned_ = OptimizerStep{};
  KILN_CUDA(cudaMalloc(reinterpret_cast<void**>(&step_device_), sizeof(OptimizerStep)),
            "cuda backend");
  KILN_CUDA(cudaMemcpy(step_device_, step_pinned_, sizeof(OptimizerStep), cudaMemcpyHostToDevice),
            "cuda backend");
  // Shared-memory limits of the attention kernels are raised once, here, so no op
  // changes a function attribute while a graph is being captured.
  cuda_attention_init(max_smem_optin_);
}

CudaBackend::~CudaBackend() {
  // Nothing here may throw: errors are ignored, the process is tearing the backend down.
  if (capturing_) {
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream_, &graph);
    if (graph) (void)cudaGraphDestroy(graph);
  }
  if (stream_) (void)cudaStreamSynchronize(stream_);
  release_graph();
  for (StagedInput& s : staged_) (void)cudaFreeHost(s.pinned);
  for (DeviceBuffer& b : scratch_) (void)cudaFree(b.ptr);
  for (auto& [key, table] : rope_tables_) {
    (void)cudaFree(table.cos);
    (void)cudaFree(table.sin);
  }
  gemm_.reset();
  (void)cudaFreeHost(step_pinned_);
  (void)cudaFree(step_device_);
  if (stream_) (void)cudaStreamDestroy(stream_);
  (void)cudaGetLastError();
}

std::string CudaBackend::name() const {
  return "cuda " + device_name_ + " (sm_" + std::to_string(cc_major_) + std::to_string(cc_minor_) +
         ", " + std::to_string(sm_count_) + " SMs), " + dtype_name(options_.compute_dtype) +
         " GEMMs";
}

// --- memory ---------------------------------------------------------------------------

void* CudaBackend::alloc(size_t bytes) {
  if (capturing_)
    fail_runtime("cuda alloc",
                 "allocation inside a graph capture; allocate before begin_capture()");
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    fail_runtime("cuda alloc", "out of device memory allocating " + std::to_string(bytes) +
                                   " bytes (" + std::to_string(free_bytes >> 20) + " MiB free of " +
                                   std::to_string(total_bytes >> 20) +
                                   " MiB); try a smaller --batch");
  }
  return p;
}

void CudaBackend::release(void* ptr) {
  if (!ptr) return;
  if (capturing_) fail_runtime("cuda release", "freeing memory inside a graph capture");
  // cudaFree waits for the device, so no enqueued kernel still reads the buffer.
  KILN_CUDA(cudaFree(ptr), "cuda release");
}

void CudaBackend::upload(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  if (capturing_) {
    // Recorded as a copy from a pinned staging slot (see cuda_graph.cpp).
    if (capture_uploads_ >= int(staged_.size())) staged_.push_back({});
    StagedInput& slot = staged_[capture_uploads_++];
    if (slot.bytes < bytes || !slot.pinned) {
      // Pinned allocation is not a stream operation; the capture may continue.
      if (slot.pinned) KILN_CUDA(cudaFreeHost(slot.pinned), "cuda upload (capture)");
      slot.pinned = nullptr;
      KILN_CUDA(cudaMallocHost(&slot.pinned, bytes), "cuda upload (capture)");
    }
    slot.bytes = bytes;
    slot.device = dst;
    std::memcpy(slot.pinned, host_src, bytes);
    KILN_CUDA(cudaMemcpyAsync(dst, slot.pinned, bytes, cudaMemcpyHostToDevice, stream_),
              "cuda upload (capture)");
    return;
  }
  // From pageable memory the runtime stages the bytes before returning, so the
  // caller may reuse host_src at once.
  KILN_CUDA(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_), "cuda upload");
}

void CudaBackend::download(void* host_dst, const void* src, size_t bytes) {
  if (capturing_)
    fail_runtime("cuda download",
                 "a download inside a graph capture cannot return data; read results after "
                 "replay() (see cuda_graph.cpp)");
  if (bytes == 0) return;
  KILN_CUDA(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_),
            "cuda download");
  KILN_CUDA(cudaStreamSynchronize(stream_), "cuda download");
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  KILN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "cuda copy");
}

void CudaBackend::zero(void* dst, size_t bytes) {
  if (bytes == 0) return;
  KILN_CUDA(cudaMemsetAsync(dst, 0, bytes, stream_), "cuda zero");
}

void CudaBackend::synchronize() {
  if (capturing_) fail_runtime("cuda synchronize", "cannot wait for the device inside a capture");
  KILN_CUDA(cudaStreamSynchronize(stream_), "cuda synchronize");
}

// --- scratch and launch helpers ------------------------------------------------------

void* CudaBackend::scratch(ScratchSlot slot, size_t bytes) {
  DeviceBuffer& b = scratch_[slot];
  if (b.bytes >= bytes && b.ptr) return b.ptr;
  if (capturing_)
    fail_runtime("cuda scratch",
                 "a scratch buffer must grow inside a graph capture; run one step of the same "
                 "shapes before begin_capture()");
  KILN_CUDA(cudaStreamSynchronize(stream_), "cuda scratch");  // no kernel still uses the old one
  if (b.ptr) KILN_CUDA(cudaFree(b.ptr), "cuda scratch");
  b.ptr = nullptr;
  b.bytes = 0;
  const size_t rounded = (bytes + 255) / 256 * 256;
  b.ptr = alloc(rounded);
  b.bytes = rounded;
  return b.ptr;
}

unsigned CudaBackend::grid_for(int64_t n, int threads) const {
  const int64_t wanted = (n + threads - 1) / threads;
  const int64_t cap = int64_t(sm_count_) * 32;  // enough blocks to fill every SM; loops stride
  const int64_t blocks = wanted < cap ? wanted : cap;
  return unsigned(blocks < 1 ? 1 : blocks);
}

void CudaBackend::check_launch(const char* op) const {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    fail_runtime(std::string("cuda ") + op, std::string("kernel launch failed: ") +
                                                cudaGetErrorName(status) + " (" +
                                                cudaGetErrorString(status) + ")");
}

// RoPE tables [positions, D/2]: angle(p, i) = p * rope.inv_freq(i, D) in double, stored as
// fp32 cos and sin, the same numbers the CPU backend uses. Grown to a power of two
// (>= 64 positions) so decoding token by token regrows rarely.
const float* CudaBackend::rope_table(int D, const RopeParams& rope, int positions,
                                     const float** sin_table) {
  const auto& s = rope.scaling;
  RopeTable& table = rope_tables_[{D, rope.theta, s.factor, s.low_freq_factor, s.high_freq_factor,
                                   s.original_max_position_embeddings}];
  if (table.positions < positions) {
    if (capturing_)
      fail_runtime("cuda rope",
                   "the RoPE table must grow inside a graph capture; run one step "
                   "of the same shapes before begin_capture()");
    int grown = 64;
    while (grown < positions) grown *= 2;
    const int half = D / 2;
    std::vector<float> cos_host(size_t(grown) * half), sin_host(size_t(grown) * half);
    for (int p = 0; p < grown; ++p)
      for (int i = 0; i < half; ++i) {
        const double angle = double(p) * rope.inv_freq(i, D);
        cos_host[size_t(p) * half + i] = float(std::cos(angle));
        sin_host[size_t(p) * half + i] = float(std::sin(angle));
      }
    KILN_CUDA(cudaStreamSynchronize(stream_), "cuda rope");
    (void)cudaFree(table.cos);
    (void)cudaFree(table.sin);
    table.cos = table.sin = nullptr;
    table.positions = 0;
    const size_t bytes = cos_host.size() * sizeof(float);
    table.cos = static_cast<float*>(alloc(bytes));
    table.sin = static_cast<float*>(alloc(bytes));
    KILN_CUDA(cudaMemcpy(table.cos, cos_host.data(), bytes, cudaMemcpyHostToDevice), "cuda rope");
    KILN_CUDA(cudaMemcpy(table.sin, sin_host.data(), bytes, cudaMemcpyHostToDevice), "cuda rope");
    table.positions = grown;
  }
  *sin_table = table.sin;
  return table.cos;
}

}  // namespace kiln
