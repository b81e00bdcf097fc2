// dtable[tokens[i], :] (+=) dout[i, :], deterministic and without atomics.
//
// Repeated tokens make this a scatter-add with collisions. Atomics would make the
// sum order (and so the rounding) depend on scheduling; instead the token ids are
// sorted once with their positions (CUB's radix sort is stable), so each distinct
// token becomes one run of positions in increasing order. One block owns one run:
// its threads own the columns and add the run's dout rows in position order,
//   dtable[t, c] = ((dtable[t, c] + dout[i1, c]) + dout[i2, c]) + ...   (i1 < i2 < ...)
// which is exactly the CPU backend's order, so the two backends agree bit for bit.
// Negative ids (a bug upstream; the loaders validate ids) are skipped.
#include <cub/device/device_radix_sort.cuh>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_common.cuh"
#include "backend/cuda/embedding_kernels.cuh"
#include "core/error.h"

namespace kiln {
namespace {

using namespace kiln::cuda;
using namespace kiln::embedding_kernels;

size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

}  // namespace

void CudaBackend::embedding_backward(float* dtable, const int32_t* tokens, const float* dout,
                                     int64_t N, int C) {
  if (N <= 0) return;
  if (C <= 0) fail_input("embedding_backward", "C must be positive", "> 0", std::to_string(C));
  if (N > int64_t(INT32_MAX))
    fail_input("embedding_backward", "too many tokens for one call", "< 2^31", std::to_string(N));
  const int n = int(N);
  // Scratch: sorted ids [N], positions in [N], positions out [N], then CUB's temp.
  size_t temp_bytes = 0;
  KILN_CUDA(
      cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, tokens, static_cast<int32_t*>(nullptr),
                                      static_cast<const int32_t*>(nullptr),
                                      static_cast<int32_t*>(nullptr), n, 0, 32, stream_),
      "embedding_backward (sort size)");
  const size_t ids_bytes = round_up(size_t(N) * sizeof(int32_t), 256);
  char* base = static_cast<char*>(scratch(kScratchEmbedSort, 3 * ids_bytes + temp_bytes));
  int32_t* sorted = reinterpret_cast<int32_t*>(base);
  int32_t* positions = reinterpret_cast<int32_t*>(base + ids_bytes);
  int32_t* order = reinterpret_cast<int32_t*>(base + 2 * ids_bytes);
  void* temp = base + 3 * ids_bytes;

  iota_kernel<<<grid_for(N, 256), 256, 0, stream_>>>(positions, N);
  check_launch("embedding_backward");
  KILN_CUDA(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, tokens, sorted, positions, order, n,
                                            0, 32, stream_),
            "embedding_backward (sort)");
  const int threads = C >= 256 ? 256 : (C + 31) / 32 * 32;
  embedding_backward_runs_kernel<<<grid_for(N, 1), threads, 0, stream_>>>(dtable, sorted, order,
                                                                          dout, N, C);
  check_launch("embedding_backward");
}

}  // namespace kiln
