// The Qwen2 model as a JavaScript class (worker-native/model.ts types it):
//   const m = new Qwen2Model(config, budgetBytes, options?);  await m.initParameters(seed);
//   await m.forwardBackward(ids, positions, labels, {gradScale?}) → {loss, lossSum, tokens}
//   await m.loss(ids, positions, labels);  m.getGradients();  m.memory() → {current, peak, budget}
// and the double-precision reference model as a function, for tests. Long operations run through
// RunAsync; while one runs, the model refuses every other call (its buffers are in use).
#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "addon/kernel_args.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/qwen2_model.h"
#include "model/qwen2_reference.h"
#include "tensor/arena.h"

namespace longctx::addon {

Napi::Object ArenaStatsToJs(Napi::Env env, const ArenaStats& s);        // arena_binding.cc
Napi::Error OutOfMemoryToJs(Napi::Env env, const OutOfMemoryError& e);  // arena_binding.cc

using model::Qwen2Config;

// A Hugging Face config.json object (snake_case names). Extra fields are ignored, except that
// hidden_act, when present, must be "silu" (the only activation implemented). `name` prefixes the
// field names in errors ("options.config.hidden_size must be a number").
Qwen2Config Qwen2ConfigFromJs(const Napi::CallbackInfo& info, Napi::Object o, const std::string& name) {
  const char* n = name.c_str();
  Qwen2Config c;
  c.hidden_size = IntField(info, o, n, "hidden_size");
  c.intermediate_size = IntField(info, o, n, "intermediate_size");
  c.num_attention_heads = IntField(info, o, n, "num_attention_heads");
  c.num_key_value_heads = IntField(info, o, n, "num_key_value_heads");
  c.num_hidden_layers = IntField(info, o, n, "num_hidden_layers");
  c.vocab_size = IntField(info, o, n, "vocab_size");
  c.rope_theta = NumberField(info, o, n, "rope_theta");
  c.rms_norm_eps = NumberField(info, o, n, "rms_norm_eps");
  Napi::Value tie = o.Get("tie_word_embeddings");
  if (!tie.IsBoolean()) ThrowTypeError(info, name + ".tie_word_embeddings must be a boolean");
  c.tie_word_embeddings = tie.As<Napi::Boolean>().Value();
  Napi::Value act = o.Get("hidden_act");
  if (!act.IsUndefined() && (!act.IsString() || act.As<Napi::String>().Utf8Value() != "silu"))
    ThrowTypeError(info, name + ".hidden_act must be \"silu\" when given (Qwen2's SwiGLU)");
  CallNative(info.Env(), [&] { c.Validate(); });
  return c;
}

namespace {

Qwen2Config ConfigArg(const Napi::CallbackInfo& info, size_t index) {
  return Qwen2ConfigFromJs(info, ObjectArg(info, index, "config"), "config");
}

Napi::Value StepLossToJs(Napi::Env env, model::StepLoss& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", r.mean());
  out.Set("lossSum", r.loss_sum);
  out.Set("tokens", static_cast<double>(r.tokens));
  return out;
}

// The model's token inputs: ids, positions, labels, all Int32Array of one length.
struct TokenArgs {
  ArrayArg<int32_t> ids, positions, labels;
  int tokens() const { return static_cast<int>(ids.length); }
  void Check() const {
    if (ids.length > 2147483647u) throw std::invalid_argument("ids holds more than 2^31-1 tokens");
    ExpectLength(positions, ids.length, "ids.length");
    ExpectLength(labels, ids.length, "ids.length");
  }
};
TokenArgs TokenArgsAt(const Napi::CallbackInfo& info, size_t index, Pins& pins) {
  return {TypedArg<int32_t>(info, index, "ids", pins), TypedArg<int32_t>(info, index + 1, "positions", pins),
          TypedArg<int32_t>(info, index + 2, "labels", pins)};
}

class Qwen2ModelWrap : public Napi::ObjectWrap<Qwen2ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    using W = Qwen2ModelWrap;
    return DefineClass(
        env, "Qwen2Model",
        {InstanceMethod<&W::InitParameters>("initParameters"),
         InstanceMethod<&W::ForwardBackward>("forwardBackward"), InstanceMethod<&W::Loss>("loss"),
         InstanceMethod<&W::GetParameters>("getParameters"),
         InstanceMethod<&W::SetParameters>("setParameters"), InstanceMethod<&W::GetGradients>("getGradients"),
         InstanceMethod<&W::ZeroGradients>("zeroGradients"),
         InstanceMethod<&W::ParameterViews>("parameterViews"),
         InstanceMethod<&W::NumParameters>("numParameters"), InstanceMethod<&W::Memory>("memory"),
         InstanceMethod<&W::ResetPeak>("resetPeak")});
  }

  // new Qwen2Model(config, budgetBytes, {device?, ceChunkTokens?, initializerRange?})
  explicit Qwen2ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Qwen2ModelWrap>(info) {
    const Qwen2Config config = ConfigArg(info, 0);
    const size_t budget = ByteCount(info, 1, "budgetBytes");
    model::ModelOptions options;
    std::string device = "device cpu:0";
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      Napi::Object o = ObjectArg(info, 2, "options");
      options.ce_chunk_tokens = IntField(info, o, "options", "ceChunkTokens", options.ce_chunk_tokens);
      options.initializer_range =
          NumberField(info, o, "options", "initializerRange", options.initializer_range);
      Napi::Value d = o.Get("device");
      if (!d.IsUndefined()) {
        if (!d.IsString()) ThrowTypeError(info, "options.device must be a string");
        device = "device " + d.As<Napi::String>().Utf8Value();
      }
    }
    try {
      model_ = std::make_unique<model::Qwen2Model>(config, std::make_shared<Arena>(device, budget), options);
    } catch (const OutOfMemoryError& e) {
      throw OutOfMemoryToJs(info.Env(), e);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

 private:
  // Marks the model busy for one async operation; the mark goes when the worker is destroyed
  // (on the main thread, after the Promise settles).
  struct Busy {
    explicit Busy(std::atomic<bool>& flag) : flag(flag) {}
    ~Busy() { flag = false; }
    std::atomic<bool>& flag;
  };

  std::shared_ptr<Pins> Begin(const Napi::CallbackInfo& info, const char* what) {
    CheckIdle(info, what);
    auto pins = std::make_shared<Pins>();
    pins->Add(info.This().As<Napi::Object>());  // the model outlives the work
    return pins;
  }
  void CheckIdle(const Napi::CallbackInfo& info, const char* what) const {
    if (busy_) {
      throw Napi::Error::New(info.Env(), std::string("Qwen2Model.") + what +
                                             ": the model is busy with another operation; await it first");
    }
  }
  template <typename Result>
  Napi::Promise Run(Napi::Env env, std::shared_ptr<Pins> pins, std::function<Result()> work,
                    std::function<Napi::Value(Napi::Env, Result&)> to_js) {
    busy_ = true;
    auto busy = std::make_shared<Busy>(busy_);
    return RunWithResult<Result>(
        env, std::move(pins), std::move(work),
        [busy, to_js = std::move(to_js)](Napi::Env e, Result& r) { return to_js(e, r); });
  }

  // initParameters(seed): Hugging Face's init from a seed (a non-negative integer up to 2^53).
  Napi::Value InitParameters(const Napi::CallbackInfo& info) {
    auto pins = Begin(info, "initParameters");
    const double seed = NumberArg(info, 0, "seed");
    if (!(seed >= 0) || seed != std::trunc(seed) || seed > 9007199254740992.0)
      ThrowTypeError(info, "argument 0 (seed) must be a non-negative integer");
    model::Qwen2Model* m = model_.get();
    struct Done {};
    return Run<Done>(
        info.Env(), pins,
        [m, seed] {
          m->InitParameters(static_cast<uint64_t>(seed));
          return Done{};
        },
        [](Napi::Env env, Done&) -> Napi::Value { return env.Undefined(); });
  }

  // forwardBackward(ids, positions, labels, {gradScale?}) → Promise<{loss, lossSum, tokens}>
  Napi::Value ForwardBackward(const Napi::CallbackInfo& info) {
    auto pins = Begin(info, "forwardBackward");
    const TokenArgs t = TokenArgsAt(info, 0, *pins);
    std::optional<double> grad_scale;
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      Napi::Object o = ObjectArg(info, 3, "options");
      if (!o.Get("gradScale").IsUndefined()) grad_scale = NumberField(info, o, "options", "gradScale");
    }
    model::Qwen2Model* m = model_.get();
    return Run<model::StepLoss>(
        info.Env(), pins,
        [m, t, grad_scale] {
          t.Check();
          return m->ForwardBackward(t.ids.data, t.positions.data, t.labels.data, t.tokens(), grad_scale);
        },
        StepLossToJs);
  }

  // loss(ids, positions, labels) → Promise<{loss, lossSum, tokens}>: forward only.
  Napi::Value Loss(const Napi::CallbackInfo& info) {
    auto pins = Begin(info, "loss");
    const TokenArgs t = TokenArgsAt(info, 0, *pins);
    model::Qwen2Model* m = model_.get();
    return Run<model::StepLoss>(
        info.Env(), pins,
        [m, t] {
          t.Check();
          return m->Forward(t.ids.data, t.positions.data, t.labels.data, t.tokens());
        },
        StepLossToJs);
  }

  Napi::Value CopyOut(const Napi::CallbackInfo& info, const float* src, const char* what) {
    CheckIdle(info, what);
    const size_t n = static_cast<size_t>(model_->num_parameters());
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), n);
    std::memcpy(out.Data(), src, n * sizeof(float));
    return out;
  }

  // getParameters() → Float32Array copy of the flat parameter buffer (layout: parameterViews()).
  Napi::Value GetParameters(const Napi::CallbackInfo& info) {
    return CopyOut(info, model_->params(), "getParameters");
  }
  // getGradients() → Float32Array copy of the flat gradient buffer.
  Napi::Value GetGradients(const Napi::CallbackInfo& info) {
    return CopyOut(info, model_->grads(), "getGradients");
  }

  // setParameters(flat: Float32Array) copies every parameter in.
  Napi::Value SetParameters(const Napi::CallbackInfo& info) {
    CheckIdle(info, "setParameters");
    Napi::Float32Array flat = Float32Arg(info, 0, "params");
    const size_t n = static_cast<size_t>(model_->num_parameters());
    if (flat.ElementLength() != n)
      throw Napi::Error::New(info.Env(), "params has " + std::to_string(flat.ElementLength()) +
                                             " elements, the model has " + std::to_string(n) + " parameters");
    std::memcpy(model_->params(), flat.Data(), n * sizeof(float));
    return info.Env().Undefined();
  }

  Napi::Value ZeroGradients(const Napi::CallbackInfo& info) {
    CheckIdle(info, "zeroGradients");
    model_->ZeroGradients();
    return info.Env().Undefined();
  }

  // parameterViews() → [{name, shape, offset, numel, weightDecay}] in Hugging Face order.
  Napi::Value ParameterViews(const Napi::CallbackInfo& info) {
    const auto& views = model_->layout().views();
    Napi::Array out = Napi::Array::New(info.Env(), views.size());
    for (size_t i = 0; i < views.size(); ++i) {
      const model::ParamView& v = views[i];
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("name", v.name);
      Napi::Array shape = Napi::Array::New(info.Env(), v.shape.size());
      for (size_t d = 0; d < v.shape.size(); ++d) shape.Set(d, static_cast<double>(v.shape[d]));
      o.Set("shape", shape);
      o.Set("offset", static_cast<double>(v.offset));
      o.Set("numel", static_cast<double>(v.numel));
      o.Set("weightDecay", v.weight_decay);
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value NumParameters(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model_->num_parameters()));
  }

  // memory() → {current, peak, budget, liveBlocks} of the model's device arena, in bytes.
  Napi::Value Memory(const Napi::CallbackInfo& info) {
    CheckIdle(info, "memory");
    return ArenaStatsToJs(info.Env(), model_->arena().stats());
  }

  Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
    CheckIdle(info, "resetPeak");
    model_->arena().ResetPeak();
    return info.Env().Undefined();
  }

  std::unique_ptr<model::Qwen2Model> model_;
  std::atomic<bool> busy_{false};
};

// referenceQwen2ForwardBackward(config, params, ids, positions, labels, gradScale, grads | null,
//   roundBf16?) → Promise<{lossSum, count}>: the naive reference model in the precision of params
//   (Float32Array or Float64Array); writes grads when given. roundBf16: every stage's result rounded
//   to bf16 (the naive bf16 implementation of the bf16 rule).
template <typename T>
Napi::Value ReferenceOf(const Napi::CallbackInfo& info) {
  auto pins = std::make_shared<Pins>();
  const Qwen2Config config = ConfigArg(info, 0);
  auto params = TypedArg<T>(info, 1, "params", *pins);
  const TokenArgs t = TokenArgsAt(info, 2, *pins);
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
        t.Check();
        const model::Qwen2Layout layout(config);
        ExpectLength(params, static_cast<size_t>(layout.NumParameters()), "the number of parameters");
        ExpectLength(grads, static_cast<size_t>(layout.NumParameters()), "the number of parameters");
        return model::ReferenceQwen2ForwardBackward<T>(config, params.data, t.ids.data, t.positions.data,
                                                       t.labels.data, t.tokens(), grad_scale, grads.data,
                                                       round_bf16);
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

void RegisterModel(Napi::Env env, Napi::Object exports) {
  exports.Set("Qwen2Model", Qwen2ModelWrap::Define(env));
  exports.Set("referenceQwen2ForwardBackward",
              Napi::Function::New(env, Reference, "referenceQwen2ForwardBackward"));
}

}  // namespace longctx::addon
