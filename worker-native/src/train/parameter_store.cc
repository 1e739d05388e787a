#include "train/parameter_store.h"

#include <cstring>
#include <stdexcept>

#include "kernels/cpu/residual.h"

namespace longctx::train {

Offload ParseOffload(const std::string& text, const std::string& field) {
  if (text == "none") return Offload::kNone;
  if (text == "optimizer") return Offload::kOptimizer;
  if (text == "params+optimizer") return Offload::kParamsAndOptimizer;
  throw std::invalid_argument(field + " must be 'none', 'optimizer' or 'params+optimizer', got '" + text +
                              "'");
}

const char* OffloadName(Offload offload) {
  switch (offload) {
    case Offload::kNone:
      return "none";
    case Offload::kOptimizer:
      return "optimizer";
    case Offload::kParamsAndOptimizer:
      return "params+optimizer";
  }
  return "none";
}

ParameterStore::ParameterStore(int64_t count, Offload offload, std::shared_ptr<Arena> device,
                               std::shared_ptr<Arena> host)
    : count_(count),
      on_host_(offload == Offload::kParamsAndOptimizer),
      device_(std::move(device)),
      host_(std::move(host)) {
  const auto& home = on_host_ ? host_ : device_;
  params_ = Tensor::Empty(home, {count_});
  grads_ = Tensor::Zeros(home, {count_});
}

ParameterStore::DeviceWeights ParameterStore::Stage(int64_t begin, int64_t count) const {
  if (begin < 0 || count < 0 || begin + count > count_)
    throw std::out_of_range("ParameterStore::Stage: [" + std::to_string(begin) + ", " +
                            std::to_string(begin + count) + ") is outside the " + std::to_string(count_) +
                            " parameters");
  DeviceWeights w;
  if (!on_host_) {
    w.data_ = params_.data() + begin;
    return w;
  }
  w.staging_ = Tensor::Empty(device_, {count});  // host → device
  std::memcpy(w.staging_.data(), params_.data() + begin, static_cast<size_t>(count) * sizeof(float));
  w.data_ = w.staging_.data();
  return w;
}

void ParameterStore::AddGradients(int64_t begin, const float* device_gradients, int64_t count) {
  if (begin < 0 || count < 0 || begin + count > count_)
    throw std::out_of_range("ParameterStore::AddGradients: [" + std::to_string(begin) + ", " +
                            std::to_string(begin + count) + ") is outside the " + std::to_string(count_) +
                            " parameters");
  if (!on_host_) {
    cpu::AddInPlace(grads_.data() + begin, device_gradients, count);
    return;
  }
  // device → host, then the host adds: the same AddInPlace on the same values as above.
  Tensor copy = Tensor::Empty(host_, {count});
  std::memcpy(copy.data(), device_gradients, static_cast<size_t>(count) * sizeof(float));
  cpu::AddInPlace(grads_.data() + begin, copy.data(), count);
}

}  // namespace longctx::train
