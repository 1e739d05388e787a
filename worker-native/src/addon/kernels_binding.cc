// JavaScript bindings of the CPU kernels (kernels/cpu/*.h except attention, which has its own
// binding), for tests and benchmarks. Each kernel runs through RunAsync on a pool thread and works
// in place on the caller's typed arrays, pinned until its Promise settles; the arrays must not be
// touched until then. The fast kernels take Float32Array; each naive reference takes
// Float32Array or Float64Array (all of one type, the first float array's type decides).
// Backward kernels add into their gradient arrays; naive backwards write them.
#include <memory>
#include <string>

#include "addon/kernel_args.h"
#include "addon/registry.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/residual.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace longctx::addon {

void RegisterArena(Napi::Env env, Napi::Object exports);  // arena_binding.cc
void RegisterModel(Napi::Env env, Napi::Object exports);  // model_binding.cc

namespace {

using Pinned = std::shared_ptr<Pins>;

Pinned NewPins() { return std::make_shared<Pins>(); }

void CheckPositive(int value, const char* name) {
  if (value <= 0)
    throw std::invalid_argument(std::string(name) + " must be positive, got " + std::to_string(value));
}

size_t Size(int a, int b) { return static_cast<size_t>(a) * static_cast<size_t>(b); }

// ---- embedding: dims {tokens, channels, vocab} ----
struct EmbeddingDims {
  int tokens, channels, vocab;
};
EmbeddingDims EmbeddingDimsArg(const Napi::CallbackInfo& info) {
  Napi::Object o = ObjectArg(info, 0, "dims");
  return {IntField(info, o, "dims", "tokens"), IntField(info, o, "dims", "channels"),
          IntField(info, o, "dims", "vocab")};
}
template <typename T>
void CheckEmbedding(const EmbeddingDims& d, const ArrayArg<int32_t>& ids, const ArrayArg<T>& table,
                    const ArrayArg<T>& rows) {
  CheckPositive(d.tokens, "dims.tokens"), CheckPositive(d.channels, "dims.channels");
  CheckPositive(d.vocab, "dims.vocab");
  ExpectLength(ids, d.tokens, "tokens");
  ExpectLength(table, Size(d.vocab, d.channels), "vocab·channels");
  ExpectLength(rows, Size(d.tokens, d.channels), "tokens·channels");
  cpu::CheckTokenIds(ids.data, d.tokens, d.vocab, "ids");
}

// embeddingForward(dims, ids, weight, out)
Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = EmbeddingDimsArg(info);
  auto ids = TypedArg<int32_t>(info, 1, "ids", *pins);
  auto weight = TypedArg<float>(info, 2, "weight", *pins), out = TypedArg<float>(info, 3, "out", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckEmbedding(d, ids, weight, out);
    cpu::EmbeddingForward(out.data, ids.data, weight.data, d.tokens, d.channels);
  });
}

// embeddingBackward(dims, ids, dout, dweight): adds.
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = EmbeddingDimsArg(info);
  auto ids = TypedArg<int32_t>(info, 1, "ids", *pins);
  auto dout = TypedArg<float>(info, 2, "dout", *pins), dweight = TypedArg<float>(info, 3, "dweight", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckEmbedding(d, ids, dweight, dout);
    cpu::EmbeddingBackward(dweight.data, dout.data, ids.data, d.tokens, d.channels);
  });
}

template <typename T>
Napi::Value NaiveEmbeddingForwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = EmbeddingDimsArg(info);
  auto ids = TypedArg<int32_t>(info, 1, "ids", *pins);
  auto weight = TypedArg<T>(info, 2, "weight", *pins), out = TypedArg<T>(info, 3, "out", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckEmbedding(d, ids, weight, out);
    cpu::NaiveEmbeddingForward<T>(out.data, ids.data, weight.data, d.tokens, d.channels);
  });
}

template <typename T>
Napi::Value NaiveEmbeddingBackwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = EmbeddingDimsArg(info);
  auto ids = TypedArg<int32_t>(info, 1, "ids", *pins);
  auto dout = TypedArg<T>(info, 2, "dout", *pins), dweight = TypedArg<T>(info, 3, "dweight", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckEmbedding(d, ids, dweight, dout);
    cpu::NaiveEmbeddingBackward<T>(dweight.data, dout.data, ids.data, d.tokens, d.vocab, d.channels);
  });
}

// ---- RMSNorm: dims {tokens, channels, eps} ----
struct NormDims {
  int tokens, channels;
  double eps;
};
NormDims NormDimsArg(const Napi::CallbackInfo& info) {
  Napi::Object o = ObjectArg(info, 0, "dims");
  return {IntField(info, o, "dims", "tokens"), IntField(info, o, "dims", "channels"),
          NumberField(info, o, "dims", "eps")};
}
void CheckNorm(const NormDims& d) {
  CheckPositive(d.tokens, "dims.tokens"), CheckPositive(d.channels, "dims.channels");
  if (!(d.eps > 0)) throw std::invalid_argument("dims.eps must be positive, got " + std::to_string(d.eps));
}

// rmsnormForward(dims, x, weight, out, rstd)
Napi::Value RmsNormForward(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = NormDimsArg(info);
  auto x = TypedArg<float>(info, 1, "x", *pins), weight = TypedArg<float>(info, 2, "weight", *pins),
       out = TypedArg<float>(info, 3, "out", *pins), rstd = TypedArg<float>(info, 4, "rstd", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckNorm(d);
    ExpectLength(x, Size(d.tokens, d.channels), "tokens·channels");
    ExpectLength(out, Size(d.tokens, d.channels), "tokens·channels");
    ExpectLength(weight, d.channels, "channels"), ExpectLength(rstd, d.tokens, "tokens");
    cpu::RmsNormForward(out.data, rstd.data, x.data, weight.data, d.tokens, d.channels,
                        static_cast<float>(d.eps));
  });
}

// rmsnormBackward(dims, x, weight, rstd, dout, dx, dweight): adds.
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = NormDimsArg(info);
  auto x = TypedArg<float>(info, 1, "x", *pins), weight = TypedArg<float>(info, 2, "weight", *pins),
       rstd = TypedArg<float>(info, 3, "rstd", *pins), dout = TypedArg<float>(info, 4, "dout", *pins),
       dx = TypedArg<float>(info, 5, "dx", *pins), dweight = TypedArg<float>(info, 6, "dweight", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckNorm(d);
    for (const auto* a : {&x, &dout, &dx}) ExpectLength(*a, Size(d.tokens, d.channels), "tokens·channels");
    ExpectLength(weight, d.channels, "channels"), ExpectLength(dweight, d.channels, "channels");
    ExpectLength(rstd, d.tokens, "tokens");
    cpu::RmsNormBackward(dx.data, dweight.data, dout.data, x.data, weight.data, rstd.data, d.tokens,
                         d.channels);
  });
}

template <typename T>
Napi::Value NaiveRmsNormForwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = NormDimsArg(info);
  auto x = TypedArg<T>(info, 1, "x", *pins), weight = TypedArg<T>(info, 2, "weight", *pins),
       out = TypedArg<T>(info, 3, "out", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckNorm(d);
    ExpectLength(x, Size(d.tokens, d.channels), "tokens·channels");
    ExpectLength(out, Size(d.tokens, d.channels), "tokens·channels");
    ExpectLength(weight, d.channels, "channels");
    cpu::NaiveRmsNormForward<T>(out.data, x.data, weight.data, d.tokens, d.channels, d.eps);
  });
}

// naiveRmsnormBackward(dims, x, weight, dout, dx, dweight): writes.
template <typename T>
Napi::Value NaiveRmsNormBackwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = NormDimsArg(info);
  auto x = TypedArg<T>(info, 1, "x", *pins), weight = TypedArg<T>(info, 2, "weight", *pins),
       dout = TypedArg<T>(info, 3, "dout", *pins), dx = TypedArg<T>(info, 4, "dx", *pins),
       dweight = TypedArg<T>(info, 5, "dweight", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckNorm(d);
    for (const auto* a : {&x, &dout, &dx}) ExpectLength(*a, Size(d.tokens, d.channels), "tokens·channels");
    ExpectLength(weight, d.channels, "channels"), ExpectLength(dweight, d.channels, "channels");
    cpu::NaiveRmsNormBackward<T>(dx.data, dweight.data, dout.data, x.data, weight.data, d.tokens, d.channels,
                                 d.eps);
  });
}

// ---- RoPE: dims {tokens, heads, headDim, theta} ----
struct RopeDims {
  int tokens, heads, head_dim;
  double theta;
};
RopeDims RopeDimsArg(const Napi::CallbackInfo& info) {
  Napi::Object o = ObjectArg(info, 0, "dims");
  return {IntField(info, o, "dims", "tokens"), IntField(info, o, "dims", "heads"),
          IntField(info, o, "dims", "headDim"), NumberField(info, o, "dims", "theta")};
}
template <typename T>
void CheckRopeArgs(const RopeDims& d, const ArrayArg<int32_t>& positions, const ArrayArg<T>& x) {
  CheckPositive(d.tokens, "dims.tokens"), CheckPositive(d.heads, "dims.heads");
  ExpectLength(positions, d.tokens, "tokens");
  ExpectLength(x, Size(d.tokens, d.heads) * d.head_dim, "tokens·heads·headDim");
  cpu::CheckRope(positions.data, d.tokens, d.head_dim, d.theta);
}

// ropeTables(dims, positions, cos, sin): cos, sin [tokens, headDim/2].
Napi::Value RopeTables(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = RopeDimsArg(info);
  auto positions = TypedArg<int32_t>(info, 1, "positions", *pins);
  auto cos = TypedArg<float>(info, 2, "cos", *pins), sin = TypedArg<float>(info, 3, "sin", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckPositive(d.tokens, "dims.tokens");
    ExpectLength(positions, d.tokens, "tokens");
    cpu::CheckRope(positions.data, d.tokens, d.head_dim, d.theta);
    ExpectLength(cos, Size(d.tokens, d.head_dim / 2), "tokens·headDim/2");
    ExpectLength(sin, Size(d.tokens, d.head_dim / 2), "tokens·headDim/2");
    cpu::RopeTables(cos.data, sin.data, positions.data, d.tokens, d.head_dim, d.theta);
  });
}

// ropeForward / ropeBackward(dims, positions, x): rotates x in place (backward: by −angle).
template <bool kBackward>
Napi::Value RopeApply(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = RopeDimsArg(info);
  auto positions = TypedArg<int32_t>(info, 1, "positions", *pins);
  auto x = TypedArg<float>(info, 2, "x", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckRopeArgs(d, positions, x);
    std::vector<float> cos(Size(d.tokens, d.head_dim / 2)), sin(cos.size());
    cpu::RopeTables(cos.data(), sin.data(), positions.data, d.tokens, d.head_dim, d.theta);
    if (kBackward) {
      cpu::RopeBackward(x.data, cos.data(), sin.data(), d.tokens, d.heads, d.head_dim);
    } else {
      cpu::RopeForward(x.data, cos.data(), sin.data(), d.tokens, d.heads, d.head_dim);
    }
  });
}

// naiveRope(dims, positions, x, out, inverse)
template <typename T>
Napi::Value NaiveRopeOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = RopeDimsArg(info);
  auto positions = TypedArg<int32_t>(info, 1, "positions", *pins);
  auto x = TypedArg<T>(info, 2, "x", *pins), out = TypedArg<T>(info, 3, "out", *pins);
  if (info.Length() <= 4 || !info[4].IsBoolean())
    ThrowTypeError(info, "argument 4 (inverse) must be a boolean");
  const bool inverse = info[4].As<Napi::Boolean>().Value();
  return RunInPlace(info.Env(), pins, [=] {
    CheckRopeArgs(d, positions, x);
    ExpectLength(out, x.length, "tokens·heads·headDim");
    cpu::NaiveRope<T>(out.data, x.data, positions.data, d.tokens, d.heads, d.head_dim, d.theta, inverse);
  });
}

// ---- linear: dims {tokens, inFeatures, outFeatures} ----
struct LinearDims {
  int tokens, in, out;
};
LinearDims LinearDimsArg(const Napi::CallbackInfo& info) {
  Napi::Object o = ObjectArg(info, 0, "dims");
  return {IntField(info, o, "dims", "tokens"), IntField(info, o, "dims", "inFeatures"),
          IntField(info, o, "dims", "outFeatures")};
}
template <typename T>
void CheckLinear(const LinearDims& d, const ArrayArg<T>& x, const ArrayArg<T>& w, const ArrayArg<T>& b,
                 const ArrayArg<T>& y) {
  CheckPositive(d.tokens, "dims.tokens"), CheckPositive(d.in, "dims.inFeatures");
  CheckPositive(d.out, "dims.outFeatures");
  ExpectLength(x, Size(d.tokens, d.in), "tokens·inFeatures");
  ExpectLength(w, Size(d.out, d.in), "outFeatures·inFeatures");
  ExpectLength(b, d.out, "outFeatures");
  ExpectLength(y, Size(d.tokens, d.out), "tokens·outFeatures");
}

// linearForward(dims, x, weight, bias | null, out)
template <typename T, bool kNaive>
Napi::Value LinearForwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = LinearDimsArg(info);
  auto x = TypedArg<T>(info, 1, "x", *pins), w = TypedArg<T>(info, 2, "weight", *pins),
       b = OptionalTypedArg<T>(info, 3, "bias", *pins), y = TypedArg<T>(info, 4, "out", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckLinear(d, x, w, b, y);
    if constexpr (kNaive) {
      cpu::NaiveLinearForward<T>(y.data, x.data, w.data, b.data, d.tokens, d.in, d.out);
    } else {
      cpu::LinearForward(y.data, x.data, w.data, b.data, d.tokens, d.in, d.out);
    }
  });
}

// linearBackward(dims, x, weight, dout, dx | null, dweight | null, dbias | null): adds.
// naiveLinearBackward(dims, x, weight, dout, dx, dweight, dbias | null): writes.
template <typename T, bool kNaive>
Napi::Value LinearBackwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = LinearDimsArg(info);
  auto x = TypedArg<T>(info, 1, "x", *pins), w = TypedArg<T>(info, 2, "weight", *pins),
       dy = TypedArg<T>(info, 3, "dout", *pins);
  auto dx = kNaive ? TypedArg<T>(info, 4, "dx", *pins) : OptionalTypedArg<T>(info, 4, "dx", *pins);
  auto dw = kNaive ? TypedArg<T>(info, 5, "dweight", *pins) : OptionalTypedArg<T>(info, 5, "dweight", *pins);
  auto db = OptionalTypedArg<T>(info, 6, "dbias", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckLinear(d, x, w, db, dy);
    ExpectLength(dx, x.length, "tokens·inFeatures"), ExpectLength(dw, w.length, "outFeatures·inFeatures");
    if constexpr (kNaive) {
      cpu::NaiveLinearBackward<T>(dx.data, dw.data, db.data, dy.data, x.data, w.data, d.tokens, d.in, d.out);
    } else {
      cpu::LinearBackward(dx.data, dw.data, db.data, dy.data, x.data, w.data, d.tokens, d.in, d.out);
    }
  });
}

// ---- SwiGLU, elementwise ----
template <typename T>
void SameLength(std::initializer_list<const ArrayArg<T>*> arrays) {
  const size_t n = (*arrays.begin())->length;
  for (const auto* a : arrays) ExpectLength(*a, n, "the length of the first array");
}

// swigluForward(gate, up, act)
template <typename T, bool kNaive>
Napi::Value SwiGluForwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto gate = TypedArg<T>(info, 0, "gate", *pins), up = TypedArg<T>(info, 1, "up", *pins),
       act = TypedArg<T>(info, 2, "act", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    SameLength<T>({&gate, &up, &act});
    const auto n = static_cast<int64_t>(gate.length);
    if constexpr (kNaive) {
      cpu::NaiveSwiGluForward<T>(act.data, gate.data, up.data, n);
    } else {
      cpu::SwiGluForward(act.data, gate.data, up.data, n);
    }
  });
}

// swigluBackward(gate, up, dact, dgate, dup): the fast kernel adds, the naive one writes.
template <typename T, bool kNaive>
Napi::Value SwiGluBackwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto gate = TypedArg<T>(info, 0, "gate", *pins), up = TypedArg<T>(info, 1, "up", *pins),
       dact = TypedArg<T>(info, 2, "dact", *pins), dgate = TypedArg<T>(info, 3, "dgate", *pins),
       dup = TypedArg<T>(info, 4, "dup", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    SameLength<T>({&gate, &up, &dact, &dgate, &dup});
    const auto n = static_cast<int64_t>(gate.length);
    if constexpr (kNaive) {
      cpu::NaiveSwiGluBackward<T>(dgate.data, dup.data, dact.data, gate.data, up.data, n);
    } else {
      cpu::SwiGluBackward(dgate.data, dup.data, dact.data, gate.data, up.data, n);
    }
  });
}

// ---- SwiGLU MLP: dims {tokens, channels, intermediate} ----
struct MlpDims {
  int tokens, channels, intermediate;
};
MlpDims MlpDimsArg(const Napi::CallbackInfo& info) {
  Napi::Object o = ObjectArg(info, 0, "dims");
  return {IntField(info, o, "dims", "tokens"), IntField(info, o, "dims", "channels"),
          IntField(info, o, "dims", "intermediate")};
}
template <typename T>
void CheckMlp(const MlpDims& d, const ArrayArg<T>& x, const ArrayArg<T>& wg, const ArrayArg<T>& wu,
              const ArrayArg<T>& wd, const ArrayArg<T>& y) {
  CheckPositive(d.tokens, "dims.tokens"), CheckPositive(d.channels, "dims.channels");
  CheckPositive(d.intermediate, "dims.intermediate");
  ExpectLength(x, Size(d.tokens, d.channels), "tokens·channels");
  ExpectLength(y, Size(d.tokens, d.channels), "tokens·channels");
  ExpectLength(wg, Size(d.intermediate, d.channels), "intermediate·channels");
  ExpectLength(wu, Size(d.intermediate, d.channels), "intermediate·channels");
  ExpectLength(wd, Size(d.channels, d.intermediate), "channels·intermediate");
}

// mlpForward(dims, x, wGate, wUp, wDown, out)
template <typename T, bool kNaive>
Napi::Value MlpForwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = MlpDimsArg(info);
  auto x = TypedArg<T>(info, 1, "x", *pins), wg = TypedArg<T>(info, 2, "wGate", *pins),
       wu = TypedArg<T>(info, 3, "wUp", *pins), wd = TypedArg<T>(info, 4, "wDown", *pins),
       y = TypedArg<T>(info, 5, "out", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckMlp(d, x, wg, wu, wd, y);
    if constexpr (kNaive) {
      cpu::NaiveSwiGluMlpForward<T>(y.data, x.data, wg.data, wu.data, wd.data, d.tokens, d.channels,
                                    d.intermediate);
    } else {
      std::vector<float> saved(3 * Size(d.tokens, d.intermediate));
      const size_t n = Size(d.tokens, d.intermediate);
      cpu::SwiGluMlpForward(y.data, saved.data(), saved.data() + n, saved.data() + 2 * n, x.data,
                            {wg.data, wu.data, wd.data}, d.tokens, d.channels, d.intermediate);
    }
  });
}

// mlpBackward(dims, x, wGate, wUp, wDown, dout, dx, dwGate, dwUp, dwDown): the fast kernel runs
// the forward for its saved activations, then adds the gradients; the naive one writes them.
template <typename T, bool kNaive>
Napi::Value MlpBackwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = MlpDimsArg(info);
  auto x = TypedArg<T>(info, 1, "x", *pins), wg = TypedArg<T>(info, 2, "wGate", *pins),
       wu = TypedArg<T>(info, 3, "wUp", *pins), wd = TypedArg<T>(info, 4, "wDown", *pins),
       dy = TypedArg<T>(info, 5, "dout", *pins), dx = TypedArg<T>(info, 6, "dx", *pins),
       dwg = TypedArg<T>(info, 7, "dwGate", *pins), dwu = TypedArg<T>(info, 8, "dwUp", *pins),
       dwd = TypedArg<T>(info, 9, "dwDown", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    CheckMlp(d, x, wg, wu, wd, dy);
    CheckMlp(d, dx, dwg, dwu, dwd, dy);
    if constexpr (kNaive) {
      cpu::NaiveSwiGluMlpBackward<T>(dx.data, dwg.data, dwu.data, dwd.data, dy.data, x.data, wg.data, wu.data,
                                     wd.data, d.tokens, d.channels, d.intermediate);
    } else {
      const size_t n = Size(d.tokens, d.intermediate);
      std::vector<float> saved(3 * n), out(Size(d.tokens, d.channels));
      std::vector<float> scratch(cpu::SwiGluMlpBackwardScratch(d.tokens, d.intermediate));
      cpu::SwiGluMlpForward(out.data(), saved.data(), saved.data() + n, saved.data() + 2 * n, x.data,
                            {wg.data, wu.data, wd.data}, d.tokens, d.channels, d.intermediate);
      cpu::SwiGluMlpBackward(dx.data, {dwg.data, dwu.data, dwd.data}, dy.data, x.data, saved.data(),
                             saved.data() + n, saved.data() + 2 * n, {wg.data, wu.data, wd.data}, d.tokens,
                             d.channels, d.intermediate, scratch.data());
    }
  });
}

// ---- residual ----
// residualForward(a, b, out)
template <typename T, bool kNaive>
Napi::Value ResidualForwardOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto a = TypedArg<T>(info, 0, "a", *pins), b = TypedArg<T>(info, 1, "b", *pins),
       out = TypedArg<T>(info, 2, "out", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    SameLength<T>({&a, &b, &out});
    if constexpr (kNaive) {
      cpu::NaiveResidualForward<T>(out.data, a.data, b.data, static_cast<int64_t>(a.length));
    } else {
      cpu::ResidualForward(out.data, a.data, b.data, static_cast<int64_t>(a.length));
    }
  });
}

// addInPlace(acc, x): acc += x (the residual backward).
Napi::Value AddInPlace(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto acc = TypedArg<float>(info, 0, "acc", *pins), x = TypedArg<float>(info, 1, "x", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    SameLength<float>({&acc, &x});
    cpu::AddInPlace(acc.data, x.data, static_cast<int64_t>(acc.length));
  });
}

// ---- cross-entropy: dims {tokens, channels, vocab, chunkTokens?} ----
struct CrossEntropyDims {
  int tokens, channels, vocab, chunk_tokens;
};
CrossEntropyDims CrossEntropyDimsArg(const Napi::CallbackInfo& info) {
  Napi::Object o = ObjectArg(info, 0, "dims");
  return {IntField(info, o, "dims", "tokens"), IntField(info, o, "dims", "channels"),
          IntField(info, o, "dims", "vocab"), IntField(info, o, "dims", "chunkTokens", 0)};
}

Napi::Value CrossEntropyResultToJs(Napi::Env env, cpu::CrossEntropyResult& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("lossSum", r.loss_sum);
  out.Set("count", static_cast<double>(r.count));
  out.Set("argmaxCorrect", static_cast<double>(r.argmax_correct));
  return out;
}

// crossEntropy(dims, hidden, weight, labels, gradScale, dhidden | null, dweight | null)
//   → Promise<{lossSum, count}>; chunked; adds the gradients.
// naiveCrossEntropy(...same) materialises the logits and writes the gradients.
template <typename T, bool kNaive>
Napi::Value CrossEntropyOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto d = CrossEntropyDimsArg(info);
  auto hidden = TypedArg<T>(info, 1, "hidden", *pins), weight = TypedArg<T>(info, 2, "weight", *pins);
  auto labels = TypedArg<int32_t>(info, 3, "labels", *pins);
  const double grad_scale = NumberArg(info, 4, "gradScale");
  auto dhidden = OptionalTypedArg<T>(info, 5, "dhidden", *pins),
       dweight = OptionalTypedArg<T>(info, 6, "dweight", *pins);
  return RunWithResult<cpu::CrossEntropyResult>(
      info.Env(), pins,
      [=] {
        CheckPositive(d.tokens, "dims.tokens"), CheckPositive(d.channels, "dims.channels");
        CheckPositive(d.vocab, "dims.vocab");
        ExpectLength(hidden, Size(d.tokens, d.channels), "tokens·channels");
        ExpectLength(dhidden, Size(d.tokens, d.channels), "tokens·channels");
        ExpectLength(weight, Size(d.vocab, d.channels), "vocab·channels");
        ExpectLength(dweight, Size(d.vocab, d.channels), "vocab·channels");
        ExpectLength(labels, d.tokens, "tokens");
        cpu::CheckLabels(labels.data, d.tokens, d.vocab);
        if constexpr (kNaive) {
          return cpu::NaiveCrossEntropy<T>(hidden.data, weight.data, labels.data, d.tokens, d.channels,
                                           d.vocab, grad_scale, dhidden.data, dweight.data);
        } else {
          CheckPositive(d.chunk_tokens, "dims.chunkTokens");
          std::vector<float> workspace(cpu::ChunkedCrossEntropyWorkspace(d.chunk_tokens, d.vocab));
          return cpu::ChunkedCrossEntropy(hidden.data, weight.data, labels.data, d.tokens, d.channels,
                                          d.vocab, d.chunk_tokens, static_cast<float>(grad_scale),
                                          dhidden.data, dweight.data, workspace.data());
        }
      },
      CrossEntropyResultToJs);
}

// ---- AdamW: hyper {lr, beta1?, beta2?, eps?, weightDecay?} ----
cpu::AdamWHyper AdamWHyperArg(const Napi::CallbackInfo& info) {
  Napi::Object o = ObjectArg(info, 0, "hyper");
  cpu::AdamWHyper h;
  h.lr = NumberField(info, o, "hyper", "lr");
  h.beta1 = NumberField(info, o, "hyper", "beta1", h.beta1);
  h.beta2 = NumberField(info, o, "hyper", "beta2", h.beta2);
  h.eps = NumberField(info, o, "hyper", "eps", h.eps);
  h.weight_decay = NumberField(info, o, "hyper", "weightDecay", h.weight_decay);
  return h;
}

// adamwUpdate(hyper, step, params, grads, m, v): updates params, m, v in place.
template <typename T, bool kNaive>
Napi::Value AdamWOf(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  const cpu::AdamWHyper h = AdamWHyperArg(info);
  const double step = NumberArg(info, 1, "step");
  auto p = TypedArg<T>(info, 2, "params", *pins), g = TypedArg<T>(info, 3, "grads", *pins),
       m = TypedArg<T>(info, 4, "m", *pins), v = TypedArg<T>(info, 5, "v", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    if (step != std::trunc(step))
      throw std::invalid_argument("step must be an integer, got " + std::to_string(step));
    SameLength<T>({&p, &g, &m, &v});
    const auto n = static_cast<int64_t>(p.length);
    if constexpr (kNaive) {
      cpu::NaiveAdamWUpdate<T>(h, static_cast<int64_t>(step), p.data, g.data, m.data, v.data, n);
    } else {
      cpu::AdamWUpdate(h, static_cast<int64_t>(step), p.data, g.data, m.data, v.data, n);
    }
  });
}

// sumOfSquares(x) → Promise<number>, accumulated in double.
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto x = TypedArg<float>(info, 0, "x", *pins);
  return RunWithResult<double>(
      info.Env(), pins, [=] { return cpu::SumOfSquares(x.data, static_cast<int64_t>(x.length)); },
      [](Napi::Env env, double& s) -> Napi::Value { return Napi::Number::New(env, s); });
}

// clipCoefficient(totalNorm, maxNorm) → number (synchronous: two numbers in, one out).
Napi::Value ClipCoefficient(const Napi::CallbackInfo& info) {
  const double norm = NumberArg(info, 0, "totalNorm"), max_norm = NumberArg(info, 1, "maxNorm");
  return Napi::Number::New(info.Env(), cpu::ClipCoefficient(norm, max_norm));
}

// scaleInPlace(x, s)
Napi::Value ScaleInPlace(const Napi::CallbackInfo& info) {
  auto pins = NewPins();
  auto x = TypedArg<float>(info, 0, "x", *pins);
  const auto s = static_cast<float>(NumberArg(info, 1, "s"));
  return RunInPlace(info.Env(), pins, [=] { cpu::ScaleInPlace(x.data, static_cast<int64_t>(x.length), s); });
}

// A naive reference for either precision: the argument at `probe` picks it.
template <Napi::Value (*F32)(const Napi::CallbackInfo&), Napi::Value (*F64)(const Napi::CallbackInfo&),
          size_t kProbe>
Napi::Value ByPrecision(const Napi::CallbackInfo& info) {
  return IsFloat64Arg(info, kProbe) ? F64(info) : F32(info);
}

}  // namespace

void RegisterKernels(Napi::Env env, Napi::Object exports) {
  auto set = [&](const char* name, Napi::Function::Callback fn) {
    exports.Set(name, Napi::Function::New(env, fn, name));
  };
  set("embeddingForward", EmbeddingForward);
  set("embeddingBackward", EmbeddingBackward);
  set("naiveEmbeddingForward",
      ByPrecision<NaiveEmbeddingForwardOf<float>, NaiveEmbeddingForwardOf<double>, 2>);
  set("naiveEmbeddingBackward",
      ByPrecision<NaiveEmbeddingBackwardOf<float>, NaiveEmbeddingBackwardOf<double>, 2>);
  set("rmsnormForward", RmsNormForward);
  set("rmsnormBackward", RmsNormBackward);
  set("naiveRmsnormForward", ByPrecision<NaiveRmsNormForwardOf<float>, NaiveRmsNormForwardOf<double>, 1>);
  set("naiveRmsnormBackward", ByPrecision<NaiveRmsNormBackwardOf<float>, NaiveRmsNormBackwardOf<double>, 1>);
  set("ropeTables", RopeTables);
  set("ropeForward", RopeApply<false>);
  set("ropeBackward", RopeApply<true>);
  set("naiveRope", ByPrecision<NaiveRopeOf<float>, NaiveRopeOf<double>, 2>);
  set("linearForward", LinearForwardOf<float, false>);
  set("linearBackward", LinearBackwardOf<float, false>);
  set("naiveLinearForward", ByPrecision<LinearForwardOf<float, true>, LinearForwardOf<double, true>, 1>);
  set("naiveLinearBackward", ByPrecision<LinearBackwardOf<float, true>, LinearBackwardOf<double, true>, 1>);
  set("swigluForward", SwiGluForwardOf<float, false>);
  set("swigluBackward", SwiGluBackwardOf<float, false>);
  set("naiveSwigluForward", ByPrecision<SwiGluForwardOf<float, true>, SwiGluForwardOf<double, true>, 0>);
  set("naiveSwigluBackward", ByPrecision<SwiGluBackwardOf<float, true>, SwiGluBackwardOf<double, true>, 0>);
  set("mlpForward", MlpForwardOf<float, false>);
  set("mlpBackward", MlpBackwardOf<float, false>);
  set("naiveMlpForward", ByPrecision<MlpForwardOf<float, true>, MlpForwardOf<double, true>, 1>);
  set("naiveMlpBackward", ByPrecision<MlpBackwardOf<float, true>, MlpBackwardOf<double, true>, 1>);
  set("residualForward", ResidualForwardOf<float, false>);
  set("naiveResidualForward",
      ByPrecision<ResidualForwardOf<float, true>, ResidualForwardOf<double, true>, 0>);
  set("addInPlace", AddInPlace);
  set("crossEntropy", CrossEntropyOf<float, false>);
  set("naiveCrossEntropy", ByPrecision<CrossEntropyOf<float, true>, CrossEntropyOf<double, true>, 1>);
  set("adamwUpdate", AdamWOf<float, false>);
  set("naiveAdamwUpdate", ByPrecision<AdamWOf<float, true>, AdamWOf<double, true>, 2>);
  set("sumOfSquares", SumOfSquares);
  set("clipCoefficient", ClipCoefficient);
  set("scaleInPlace", ScaleInPlace);
  RegisterArena(env, exports);
  RegisterModel(env, exports);
}

}  // namespace longctx::addon
