// CUDA graph capture and replay of a whole training step.
//
// Why: a Stories110M step is ~700 kernel launches; replaying them as one graph
// removes the per-launch host cost and the gaps between kernels. "Compile once,
// weights are inputs": the graph holds device pointers only, so it stays valid for
// every step as long as the buffers it was recorded with stay allocated.
//
// How a step must be written to be captured (the trainer's job):
//  1. Run one step of the same shapes WITHOUT capture first. Every grow-only buffer
//     (GEMM plans, classifier logits chunk, norm partials, sort scratch, RoPE table)
//     takes its size there; growing one inside a capture is refused with a message.
//  2. begin_capture(); issue the step exactly as usual (zero grads, forward,
//     backward, global_norm, adamw per segment); end_capture(). Nothing has run yet.
//  3. Host inputs: every upload() inside the capture becomes a staged input slot, in
//     call order (ModelStep uploads tokens then targets: slots 0 and 1). The graph
//     copies the slot's pinned host buffer to the recorded device pointer. Before
//     each replay, refresh each slot with set_staged_input(slot, host, bytes) (same
//     byte count as recorded). Host-side work a step does before its uploads
//     (ModelStep's token validation, compact-vocabulary target remapping) is NOT in
//     the graph: the trainer must do it itself per step and stage the result.
//  4. No download() inside a capture (it would have to return data that does not
//     exist yet). Losses and the grad norm stay in device memory; read them after
//     replay() -- one step late, so the GPU never idles waiting for the host. So the
//     model step needs a variant that leaves the mean loss on the device (a reduction
//     kernel over the per-row losses) instead of downloading them.
//  5. AdamW's learning rate and step count change every step but are kernel
//     arguments of the recorded launches: inside a capture, adamw() records kernels
//     that read (lr, step) from device memory, refreshed by the graph's first node
//     from a pinned struct. Call set_optimizer_step(lr, step) before each replay. All
//     adamw calls of one capture must share lr and step (AdamW::step does).
//  6. Every other argument (shapes, pointers, dloss = 1/valid targets!) is frozen at
//     capture time. A step whose number of valid targets changes (ignored targets,
//     compact vocabulary) must keep the mean's divisor on the device too, or be
//     recaptured; with no ignored targets dloss = 1/(B*T) is constant.
//  7. replay() launches asynchronously; set_staged_input / set_optimizer_step first
//     wait for the previous replay (one stream synchronisation per step), so the
//     host never overwrites pinned inputs a running graph still reads.
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstring>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace kiln {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void CudaBackend::begin_capture() {
  if (capturing_) fail_runtime("cuda graph", "begin_capture() while a capture is already open");
  KILN_CUDA(cudaStreamSynchronize(stream_), "cuda graph");
  capture_started_ = now_seconds();
  capture_uploads_ = 0;
  capture_used_adamw_ = false;
  // Relaxed: pinned staging buffers may be allocated while the capture is open.
  KILN_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed), "cuda graph");
  capturing_ = true;
  // The graph's first node: AdamW's per-step values, from the pinned struct.
  KILN_CUDA(cudaMemcpyAsync(step_device_, step_pinned_, sizeof(OptimizerStep),
                            cudaMemcpyHostToDevice, stream_),
            "cuda graph");
}

void CudaBackend::end_capture() {
  if (!capturing_) fail_runtime("cuda graph", "end_capture() without begin_capture()");
  cudaGraph_t graph = nullptr;
  const cudaError_t status = cudaStreamEndCapture(stream_, &graph);
  capturing_ = false;
  if (status != cudaSuccess) {
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    cuda_check(status, "cuda graph", "cudaStreamEndCapture (an op inside the capture failed?)");
  }
  release_graph();
  graph_ = graph;
  cudaGraphExec_t exec = nullptr;
  KILN_CUDA(cudaGraphInstantiate(&exec, graph, 0), "cuda graph");
  graph_exec_ = exec;
  // Slots beyond this capture's uploads belonged to an earlier capture.
  for (size_t i = size_t(capture_uploads_); i < staged_.size(); ++i)
    (void)cudaFreeHost(staged_[i].pinned);
  staged_.resize(size_t(capture_uploads_));
  capture_seconds_ = now_seconds() - capture_started_;
}

void CudaBackend::replay() {
  if (capturing_) fail_runtime("cuda graph", "replay() while a capture is open");
  if (!graph_exec_) fail_runtime("cuda graph", "replay() before a graph was captured");
  KILN_CUDA(cudaGraphLaunch(graph_exec_, stream_), "cuda graph replay");
}

size_t CudaBackend::staged_input_bytes(int slot) const {
  if (slot < 0 || slot >= int(staged_.size()))
    fail_input("cuda graph", "no such staged input slot", "< " + std::to_string(staged_.size()),
               std::to_string(slot));
  return staged_[size_t(slot)].bytes;
}

void CudaBackend::set_staged_input(int slot, const void* host_src, size_t bytes) {
  if (bytes != staged_input_bytes(slot))
    fail_input("cuda graph", "staged input " + std::to_string(slot) + " has a recorded size",
               std::to_string(staged_[size_t(slot)].bytes) + " bytes", std::to_string(bytes));
  wait_for_replay();
  std::memcpy(staged_[size_t(slot)].pinned, host_src, bytes);
}

void CudaBackend::set_optimizer_step(float lr, int64_t step) {
  if (step < 1)
    fail_input("cuda graph", "optimizer step must be 1-based", ">= 1", std::to_string(step));
  wait_for_replay();
  step_pinned_->lr = lr;
  step_pinned_->step = step;
}

void CudaBackend::wait_for_replay() {
  if (capturing_) return;  // host values written during capture are read at the first replay
  KILN_CUDA(cudaStreamSynchronize(stream_), "cuda graph");
}

void CudaBackend::release_graph() {
  if (graph_exec_) (void)cudaGraphExecDestroy(graph_exec_);
  if (graph_) (void)cudaGraphDestroy(graph_);
  graph_exec_ = nullptr;
  graph_ = nullptr;
}

}  // namespace kiln
