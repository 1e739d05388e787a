// The emulated CPU device: the float32 kernels, a copy is a memcpy, "device" and "host" are two
// system-memory Arenas with their own budgets (parameter_store.h says why that is honest).
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/residual.h"
#include "model/cpu_model_kernels.h"
#include "train/backend.h"

namespace longctx::train {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const std::string& device_label, size_t device_budget_bytes, size_t host_budget_bytes)
      : Backend(DType::kF32),
        device_(std::make_shared<Arena>(device_label, device_budget_bytes)),
        host_(std::make_shared<Arena>("host", host_budget_bytes)) {}

  std::string name() const override { return "cpu"; }
  const std::shared_ptr<Arena>& device() const override { return device_; }
  const std::shared_ptr<Arena>& host() const override { return host_; }
  std::unique_ptr<model::ModelKernels> MakeKernels(model::SequenceAttention& attention,
                                                   comm::Communicator*) override {
    return std::make_unique<model::CpuModelKernels>(device_, attention);
  }
  void Copy(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void ToCompute(void* dst, const float* src, int64_t n, bool on_host) override {
    if (dst != src) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
  void AddInPlace(float* acc, const float* x, int64_t n) override { cpu::AddInPlace(acc, x, n); }
  double SumOfSquares(const float* x, int64_t n) override { return cpu::SumOfSquares(x, n); }
  void ScaleInPlace(float* x, int64_t n, float s) override { cpu::ScaleInPlace(x, n, s); }
  void AdamW(const AdamWStep& h, float* params, const float* grads, float* m, float* v, int64_t n) override {
    cpu::AdamWUpdate({h.lr, h.beta1, h.beta2, h.eps, h.weight_decay}, h.step, params, grads, m, v, n);
  }
  void Fill(float* x, int64_t n, float value) override {
    for (int64_t i = 0; i < n; ++i) x[i] = value;
  }
  void AllReduceSum(comm::Communicator& comm, float* data, size_t count) override {
    comm.AllReduceSum(data, count);
  }

 private:
  std::shared_ptr<Arena> device_;
  std::shared_ptr<Arena> host_;
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(const std::string& device_label, size_t device_budget_bytes,
                                        size_t host_budget_bytes) {
  return std::make_unique<CpuBackend>(device_label, device_budget_bytes, host_budget_bytes);
}

#ifndef LONGCTX_WITH_CUDA
std::unique_ptr<Backend> MakeCudaBackend(int index, const std::string&, size_t, size_t, const std::string&) {
  throw std::runtime_error(
      "device cuda:" + std::to_string(index) +
      ": this addon was built without CUDA (rebuild with nvcc on PATH, LONGCTX_CUDA=on)");
}
#endif

}  // namespace longctx::train
