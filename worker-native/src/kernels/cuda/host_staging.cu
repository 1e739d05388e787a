#include <cuda_runtime.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/host_staging.h"

namespace longctx::cuda {

void SelfCollectives::SendRecv(const void* send, size_t send_bytes, int to, void* recv, size_t recv_bytes,
                               int from, uint32_t tag) {
  if (to != 0 || from != 0)
    throw std::invalid_argument("SelfCollectives: the only rank is 0, got to=" + std::to_string(to) +
                                " from=" + std::to_string(from));
  if (send_bytes != recv_bytes)
    throw std::invalid_argument("SelfCollectives: sending " + std::to_string(send_bytes) +
                                " bytes to itself but receiving " + std::to_string(recv_bytes));
  std::memmove(recv, send, send_bytes);
}

void HostStaging::Reserve(PinnedBuffer& buffer, size_t bytes) {
  if (buffer.bytes() < bytes) buffer = PinnedBuffer(bytes);
}

void HostStaging::AllReduceSum(float* device_data, size_t count) {
  const size_t bytes = count * sizeof(float);
  if (bytes == 0) return;
  Reserve(send_, bytes);
  float* host = static_cast<float*>(send_.data());
  CUDA_CHECK(cudaMemcpyAsync(host, device_data, bytes, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  comm_.AllReduceSum(host, count);
  CUDA_CHECK(cudaMemcpyAsync(device_data, host, bytes, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // the pinned buffer is reused by the next call
}

void HostStaging::SendRecv(const void* device_send, size_t send_bytes, int to, void* device_recv,
                           size_t recv_bytes, int from, uint32_t tag) {
  Reserve(send_, send_bytes);
  Reserve(recv_, recv_bytes);
  if (send_bytes > 0)
    CUDA_CHECK(cudaMemcpyAsync(send_.data(), device_send, send_bytes, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  comm_.SendRecv(send_.data(), send_bytes, to, recv_.data(), recv_bytes, from, tag);
  if (recv_bytes > 0)
    CUDA_CHECK(cudaMemcpyAsync(device_recv, recv_.data(), recv_bytes, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace longctx::cuda
