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

ParameterStore::ParameterStore(int64_t count, Offload offload, Backend& backend)
    : count_(count),
      on_host_(offload == Offload::kParamsAndOptimizer),
      masters_on_host_(on_host_),
      backend_(backend) {
  const auto& home = on_host_ ? backend_.host() : backend_.device();
  params_ = Tensor::Empty(home, {count_});
  if (backend_.compute_type() != DType::kF32)
    compute_ = Tensor::Empty(home, {count_}, backend_.compute_type());
  grads_ = Tensor::Zeros(home, {count_});
}

void ParameterStore::RefreshCompute() {
  if (!compute_.empty()) backend_.ToCompute(compute_.raw(), params_.data(), count_, on_host_);
}

ParameterStore::DeviceWeights ParameterStore::Stage(int64_t begin, int64_t count) const {
  if (begin < 0 || count < 0 || begin + count > count_)
    throw std::out_of_range("ParameterStore::Stage: [" + std::to_string(begin) + ", " +
                            std::to_string(begin + count) + ") is outside the " + std::to_string(count_) +
                            " parameters");
  const DType type = backend_.compute_type();
  const Tensor& weights = compute_.empty() ? params_ : compute_;
  const void* source =
      static_cast<const char*>(weights.raw()) + static_cast<size_t>(begin) * ElementBytes(type);
  DeviceWeights w;
  if (!on_host_) {
    w.data_ = source;
    return w;
  }
  if (prefetched_.begin >= 0) {
    backend_.WaitCopies();
    if (prefetched_.begin == begin && prefetched_.count == count) {
      w.staging_ = std::move(prefetched_.staging);
      w.data_ = w.staging_.raw();
      prefetched_ = Prefetched{};
      return w;
    }
    prefetched_ = Prefetched{};  // not what this pass asks for after all
  }
  w.staging_ = Tensor::Empty(backend_.device(), {count}, type);  // host → device
  backend_.Copy(w.staging_.raw(), source, static_cast<size_t>(count) * ElementBytes(type));
  w.data_ = w.staging_.raw();
  return w;
}

void ParameterStore::Prefetch(int64_t begin, int64_t count) {
  if (!on_host_ || !backend_.overlaps_copies()) return;
  if (begin < 0 || count < 0 || begin + count > count_)
    throw std::out_of_range("ParameterStore::Prefetch: [" + std::to_string(begin) + ", " +
                            std::to_string(begin + count) + ") is outside the " + std::to_string(count_) +
                            " parameters");
  if (prefetched_.begin >= 0) {  // an earlier one nobody took: let its copy finish before its memory goes
    backend_.WaitCopies();
    prefetched_ = Prefetched{};
  }
  const DType type = backend_.compute_type();
  const Tensor& weights = compute_.empty() ? params_ : compute_;
  prefetched_.staging = Tensor::Empty(backend_.device(), {count}, type);
  backend_.CopyAsync(
      prefetched_.staging.raw(),
      static_cast<const char*>(weights.raw()) + static_cast<size_t>(begin) * ElementBytes(type),
      static_cast<size_t>(count) * ElementBytes(type));
  prefetched_.begin = begin;
  prefetched_.count = count;
}

void ParameterStore::AddGradients(int64_t begin, const float* device_gradients, int64_t count) {
  if (begin < 0 || count < 0 || begin + count > count_)
    throw std::out_of_range("ParameterStore::AddGradients: [" + std::to_string(begin) + ", " +
                            std::to_string(begin + count) + ") is outside the " + std::to_string(count_) +
                            " parameters");
  if (!on_host_) {
    backend_.AddInPlace(grads_.data() + begin, device_gradients, count);
    return;
  }
  // device → host, then the host adds: the same AddInPlace on the same values as above.
  Tensor copy = Tensor::Empty(backend_.host(), {count});
  backend_.Copy(copy.data(), device_gradients, static_cast<size_t>(count) * sizeof(float));
  cpu::AddInPlace(grads_.data() + begin, copy.data(), count);
}

}  // namespace longctx::train
