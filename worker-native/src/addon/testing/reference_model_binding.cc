// referenceQwen2ForwardBackward(config, params, ids, positions, labels, gradScale, grads | null,
//   roundBf16?) → Promise<{lossSum, count}>: the naive reference model (model/qwen2_reference.h) in
//   the precision of params (Float32Array or Float64Array); writes grads when given. Tests hold the
//   Qwen2 model and the trainer to it. roundBf16: every stage's result rounded to bf16 (the naive
//   bf16 implementation of the bf16 rule).
#include <memory>

#include "addon/napi_toolkit.h"
#include "addon/registry.h"
#include "addon/testing/testing.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/qwen2_reference.h"

namespace longctx::addon::testing {

namespace {

template <typename T>
Napi::Value ReferenceOf(const Napi::CallbackInfo& info) {
  auto pins = std::make_shared<Pins>();
  const model::Qwen2Config config = Qwen2ConfigFromJs(info, ObjectArg(info, 0, "config"), "config");
  auto params = TypedArg<T>(info, 1, "params", *pins);
  auto ids = TypedArg<int32_t>(info, 2, "ids", *pins),
       positions = TypedArg<int32_t>(info, 3, "positions", *pins),
       labels = TypedArg<int32_t>(info, 4, "labels", *pins);
  const double grad_scale = NumberArg(info, 5, "gradScale");
  auto grads = OptionalTypedArg<T>(info, 6, "grads", *pins);
  bool round_bf16 = false;
  if (info.Length() > 7 && !info[7].IsUndefined()) {
    if (!info[7].IsBoolean()) throw Napi::TypeError::New(info.Env(), "roundBf16 must be a boolean");
    round_bf16 = info[7].As<Napi::Boolean>().Value();
  }
  return RunWithResult<cpu::CrossEntropyResult>(
      info.Env(), pins,
      [=] {
        if (ids.length > 2147483647u) throw std::invalid_argument("ids holds more than 2^31-1 tokens");
        ExpectLength(positions, ids.length, "ids.length");
        ExpectLength(labels, ids.length, "ids.length");
        const auto count = static_cast<size_t>(model::Qwen2Layout(config).NumParameters());
        ExpectLength(params, count, "the number of parameters");
        ExpectLength(grads, count, "the number of parameters");
        return model::ReferenceQwen2ForwardBackward<T>(config, params.data, ids.data, positions.data,
                                                       labels.data, static_cast<int>(ids.length), grad_scale,
                                                       grads.data, round_bf16);
      },
      [](Napi::Env env, cpu::CrossEntropyResult& r) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("lossSum", r.loss_sum);
        out.Set("count", static_cast<double>(r.count));
        return out;
      });
}

Napi::Value Reference(const Napi::CallbackInfo& info) {
  return IsFloat64Arg(info, 1) ? ReferenceOf<double>(info) : ReferenceOf<float>(info);
}

}  // namespace

void RegisterReferenceModel(Napi::Env env, Napi::Object exports) {
  exports.Set("referenceQwen2ForwardBackward",
              Napi::Function::New(env, Reference, "referenceQwen2ForwardBackward"));
}

}  // namespace longctx::addon::testing
