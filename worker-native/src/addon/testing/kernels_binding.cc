// The CPU kernels (kernels/cpu/*.h except attention) for tests and benchmarks, one table row each
// (kernel_table.h). Each kernel works in place on the caller's typed arrays, pinned until
// its Promise settles; the arrays must not be touched until then. The fast kernels take
// Float32Array; each naive reference takes Float32Array or Float64Array (all of one type, the first
// float array's type decides). Backward kernels add into their gradient arrays; naive backwards
// write them.
#include <cmath>
#include <string>
#include <vector>

#include "addon/kernel_table.h"
#include "addon/testing/testing.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/residual.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace longctx::addon::testing {

namespace {

// ---- the dims objects ----
ArgSpec EmbeddingDims() {
  return Dims("dims", {Positive("tokens"), Positive("channels"), Positive("vocab")});
}
ArgSpec NormDims() { return Dims("dims", {Positive("tokens"), Positive("channels"), PositiveNumber("eps")}); }
ArgSpec RopeDims(bool positive_heads) {
  return Dims("dims", {Positive("tokens"), positive_heads ? Positive("heads") : Int("heads"), Int("headDim"),
                       Number("theta")});
}
ArgSpec LinearDims() {
  return Dims("dims", {Positive("tokens"), Positive("inFeatures"), Positive("outFeatures")});
}
ArgSpec MlpDims() {
  return Dims("dims", {Positive("tokens"), Positive("channels"), Positive("intermediate")});
}
ArgSpec CrossEntropyDims(bool chunked) {
  return Dims("dims", {Positive("tokens"), Positive("channels"), Positive("vocab"),
                       chunked ? Positive("chunkTokens", 0) : Int("chunkTokens", 0)});
}
ArgSpec AdamWHyper() {
  const cpu::AdamWHyper d;
  return Dims("hyper", {Number("lr"), Number("beta1", d.beta1), Number("beta2", d.beta2),
                        Number("eps", d.eps), Number("weightDecay", d.weight_decay)});
}

// A fast kernel's arrays are Float32Array, a naive reference's either precision.
ArgSpec Arr(bool naive, const char* name, const char* length) {
  return naive ? Real(name, length) : F32(name, length);
}

// embeddingForward's; the backward's arrays are (ids, dout, dweight).
std::vector<ArgSpec> EmbeddingArgs(bool naive) {
  return {EmbeddingDims(), I32("ids", "tokens"), Arr(naive, "weight", "vocab·channels"),
          Arr(naive, "out", "tokens·channels")};
}

// Elementwise kernels: every array as long as the first.
std::vector<ArgSpec> Same(bool naive, std::initializer_list<const char*> names) {
  std::vector<ArgSpec> out;
  for (const char* name : names) out.push_back(Arr(naive, name, kSameLength));
  return out;
}

std::vector<ArgSpec> MlpForwardArgs(bool naive) {
  return {MlpDims(),
          Arr(naive, "x", "tokens·channels"),
          Arr(naive, "wGate", "intermediate·channels"),
          Arr(naive, "wUp", "intermediate·channels"),
          Arr(naive, "wDown", "channels·intermediate"),
          Arr(naive, "out", "tokens·channels")};
}

std::vector<ArgSpec> MlpBackwardArgs(bool naive) {
  return {MlpDims(),
          Arr(naive, "x", "tokens·channels"),
          Arr(naive, "wGate", "intermediate·channels"),
          Arr(naive, "wUp", "intermediate·channels"),
          Arr(naive, "wDown", "channels·intermediate"),
          Arr(naive, "dout", "tokens·channels"),
          Arr(naive, "dx", "tokens·channels"),
          Arr(naive, "dwGate", "intermediate·channels"),
          Arr(naive, "dwUp", "intermediate·channels"),
          Arr(naive, "dwDown", "channels·intermediate")};
}

std::vector<ArgSpec> CrossEntropyArgs(bool naive) {
  return {CrossEntropyDims(!naive),
          Arr(naive, "hidden", "tokens·channels"),
          Arr(naive, "weight", "vocab·channels"),
          I32("labels", "tokens"),
          Scalar("gradScale"),
          Optional(Arr(naive, "dhidden", "tokens·channels")),
          Optional(Arr(naive, "dweight", "vocab·channels"))};
}

std::vector<ArgSpec> AdamWArgs(bool naive) {
  std::vector<ArgSpec> out = {AdamWHyper(), Scalar("step")};
  for (const char* name : {"params", "grads", "m", "v"}) out.push_back(Arr(naive, name, kSameLength));
  return out;
}

cpu::AdamWHyper HyperOf(const KernelCall& c) {
  cpu::AdamWHyper h;
  h.lr = c.Number("lr"), h.beta1 = c.Number("beta1"), h.beta2 = c.Number("beta2");
  h.eps = c.Number("eps"), h.weight_decay = c.Number("weightDecay");
  return h;
}

int64_t StepOf(const KernelCall& c) {
  const double step = c.Number("step");
  if (step != std::trunc(step))
    throw std::invalid_argument("step must be an integer, got " + std::to_string(step));
  return static_cast<int64_t>(step);
}

KernelResult Done() { return {}; }

KernelResult CrossEntropyToJs(const cpu::CrossEntropyResult& r) {
  return KernelResult::Object({{"lossSum", r.loss_sum},
                               {"count", static_cast<double>(r.count)},
                               {"argmaxCorrect", static_cast<double>(r.argmax_correct)}});
}

int64_t Count(const KernelCall& c, const char* array) { return static_cast<int64_t>(c.Length(array)); }

std::vector<ArgSpec> LinearForwardArgs(bool naive) {
  return {LinearDims(), Arr(naive, "x", "tokens·inFeatures"), Arr(naive, "weight", "outFeatures·inFeatures"),
          Optional(Arr(naive, "bias", "outFeatures")), Arr(naive, "out", "tokens·outFeatures")};
}

// The fast backward's gradients are each optional; the naive one needs dx and dweight.
std::vector<ArgSpec> LinearBackwardArgs(bool naive) {
  auto grad = [naive](const char* name, const char* length) {
    return naive ? Arr(naive, name, length) : Optional(Arr(naive, name, length));
  };
  return {LinearDims(),
          Arr(naive, "x", "tokens·inFeatures"),
          Arr(naive, "weight", "outFeatures·inFeatures"),
          Arr(naive, "dout", "tokens·outFeatures"),
          grad("dx", "tokens·inFeatures"),
          grad("dweight", "outFeatures·inFeatures"),
          Optional(Arr(naive, "dbias", "outFeatures"))};
}

KernelResult RopeApply(const KernelCall& c, bool backward) {
  const int tokens = c.Int("tokens"), heads = c.Int("heads"), head_dim = c.Int("headDim");
  cpu::CheckRope(c.I32("positions"), tokens, head_dim, c.Number("theta"));
  std::vector<float> cos(static_cast<size_t>(tokens) * (head_dim / 2)), sin(cos.size());
  cpu::RopeTables(cos.data(), sin.data(), c.I32("positions"), tokens, head_dim, c.Number("theta"));
  if (backward) {
    cpu::RopeBackward(c.F32("x"), cos.data(), sin.data(), tokens, heads, head_dim);
  } else {
    cpu::RopeForward(c.F32("x"), cos.data(), sin.data(), tokens, heads, head_dim);
  }
  return Done();
}

KernelResult MlpForward(const KernelCall& c) {
  const int tokens = c.Int("tokens"), channels = c.Int("channels"), intermediate = c.Int("intermediate");
  const size_t n = static_cast<size_t>(tokens) * intermediate;
  std::vector<float> saved(3 * n);
  cpu::SwiGluMlpForward(c.F32("out"), saved.data(), saved.data() + n, saved.data() + 2 * n, c.F32("x"),
                        {c.F32("wGate"), c.F32("wUp"), c.F32("wDown")}, tokens, channels, intermediate);
  return Done();
}

// Runs the forward for its saved activations, then adds the gradients.
KernelResult MlpBackward(const KernelCall& c) {
  const int tokens = c.Int("tokens"), channels = c.Int("channels"), intermediate = c.Int("intermediate");
  const size_t n = static_cast<size_t>(tokens) * intermediate;
  const cpu::MlpWeights w{c.F32("wGate"), c.F32("wUp"), c.F32("wDown")};
  std::vector<float> saved(3 * n), out(static_cast<size_t>(tokens) * channels);
  std::vector<float> scratch(cpu::SwiGluMlpBackwardScratch(tokens, intermediate));
  cpu::SwiGluMlpForward(out.data(), saved.data(), saved.data() + n, saved.data() + 2 * n, c.F32("x"), w,
                        tokens, channels, intermediate);
  cpu::SwiGluMlpBackward(c.F32("dx"), {c.F32("dwGate"), c.F32("dwUp"), c.F32("dwDown")}, c.F32("dout"),
                         c.F32("x"), saved.data(), saved.data() + n, saved.data() + 2 * n, w, tokens,
                         channels, intermediate, scratch.data());
  return Done();
}

// A ByPrecision body reads its arrays as c.Data<T>, with T = decltype(t): float or double.
const std::vector<KernelBinding>& KernelTable() {
  static const std::vector<KernelBinding> table = {
      // embeddingForward(dims, ids, weight, out)
      {"embeddingForward", EmbeddingArgs(false),
       [](const KernelCall& c) {
         cpu::CheckTokenIds(c.I32("ids"), c.Int("tokens"), c.Int("vocab"), "ids");
         cpu::EmbeddingForward(c.F32("out"), c.I32("ids"), c.F32("weight"), c.Int("tokens"), c.Int("channels"));
         return Done();
       }},
      // embeddingBackward(dims, ids, dout, dweight): adds.
      {"embeddingBackward",
       {EmbeddingDims(), I32("ids", "tokens"), F32("dout", "tokens·channels"), F32("dweight", "vocab·channels")},
       [](const KernelCall& c) {
         cpu::CheckTokenIds(c.I32("ids"), c.Int("tokens"), c.Int("vocab"), "ids");
         cpu::EmbeddingBackward(c.F32("dweight"), c.F32("dout"), c.I32("ids"), c.Int("tokens"),
                                c.Int("channels"));
         return Done();
       }},
      {"naiveEmbeddingForward", EmbeddingArgs(true), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::CheckTokenIds(c.I32("ids"), c.Int("tokens"), c.Int("vocab"), "ids");
         cpu::NaiveEmbeddingForward<T>(c.Data<T>("out"), c.I32("ids"), c.Data<T>("weight"),
                                       c.Int("tokens"), c.Int("channels"));
         return Done();
       })},
      {"naiveEmbeddingBackward",
       {EmbeddingDims(), I32("ids", "tokens"), Real("dout", "tokens·channels"), Real("dweight", "vocab·channels")},
       ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::CheckTokenIds(c.I32("ids"), c.Int("tokens"), c.Int("vocab"), "ids");
         cpu::NaiveEmbeddingBackward<T>(c.Data<T>("dweight"), c.Data<T>("dout"), c.I32("ids"),
                                        c.Int("tokens"), c.Int("vocab"), c.Int("channels"));
         return Done();
       })},

      // rmsnormForward(dims, x, weight, out, rstd)
      {"rmsnormForward",
       {NormDims(), F32("x", "tokens·channels"), F32("weight", "channels"), F32("out", "tokens·channels"),
        F32("rstd", "tokens")},
       [](const KernelCall& c) {
         cpu::RmsNormForward(c.F32("out"), c.F32("rstd"), c.F32("x"), c.F32("weight"), c.Int("tokens"),
                             c.Int("channels"), static_cast<float>(c.Number("eps")));
         return Done();
       }},
      // rmsnormBackward(dims, x, weight, rstd, dout, dx, dweight): adds.
      {"rmsnormBackward",
       {NormDims(), F32("x", "tokens·channels"), F32("weight", "channels"), F32("rstd", "tokens"),
        F32("dout", "tokens·channels"), F32("dx", "tokens·channels"), F32("dweight", "channels")},
       [](const KernelCall& c) {
         cpu::RmsNormBackward(c.F32("dx"), c.F32("dweight"), c.F32("dout"), c.F32("x"), c.F32("weight"),
                              c.F32("rstd"), c.Int("tokens"), c.Int("channels"));
         return Done();
       }},
      {"naiveRmsnormForward",
       {NormDims(), Real("x", "tokens·channels"), Real("weight", "channels"), Real("out", "tokens·channels")},
       ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveRmsNormForward<T>(c.Data<T>("out"), c.Data<T>("x"), c.Data<T>("weight"),
                                     c.Int("tokens"), c.Int("channels"), c.Number("eps"));
         return Done();
       })},
      // naiveRmsnormBackward(dims, x, weight, dout, dx, dweight): writes.
      {"naiveRmsnormBackward",
       {NormDims(), Real("x", "tokens·channels"), Real("weight", "channels"), Real("dout", "tokens·channels"),
        Real("dx", "tokens·channels"), Real("dweight", "channels")},
       ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveRmsNormBackward<T>(c.Data<T>("dx"), c.Data<T>("dweight"), c.Data<T>("dout"),
                                      c.Data<T>("x"), c.Data<T>("weight"), c.Int("tokens"),
                                      c.Int("channels"), c.Number("eps"));
         return Done();
       })},

      // ropeTables(dims, positions, cos, sin): cos, sin [tokens, headDim/2].
      {"ropeTables",
       {RopeDims(false), I32("positions", "tokens"), F32("cos", "tokens·headDim/2"),
        F32("sin", "tokens·headDim/2")},
       [](const KernelCall& c) {
         cpu::CheckRope(c.I32("positions"), c.Int("tokens"), c.Int("headDim"), c.Number("theta"));
         cpu::RopeTables(c.F32("cos"), c.F32("sin"), c.I32("positions"), c.Int("tokens"), c.Int("headDim"),
                         c.Number("theta"));
         return Done();
       }},
      // ropeForward / ropeBackward(dims, positions, x): rotates x in place (backward: by −angle).
      {"ropeForward", {RopeDims(true), I32("positions", "tokens"), F32("x", "tokens·heads·headDim")},
       [](const KernelCall& c) { return RopeApply(c, false); }},
      {"ropeBackward", {RopeDims(true), I32("positions", "tokens"), F32("x", "tokens·heads·headDim")},
       [](const KernelCall& c) { return RopeApply(c, true); }},
      // naiveRope(dims, positions, x, out, inverse)
      {"naiveRope",
       {RopeDims(true), I32("positions", "tokens"), Real("x", "tokens·heads·headDim"),
        Real("out", "tokens·heads·headDim"), Flag("inverse")},
       ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::CheckRope(c.I32("positions"), c.Int("tokens"), c.Int("headDim"), c.Number("theta"));
         cpu::NaiveRope<T>(c.Data<T>("out"), c.Data<T>("x"), c.I32("positions"), c.Int("tokens"),
                           c.Int("heads"), c.Int("headDim"), c.Number("theta"), c.Bool("inverse"));
         return Done();
       })},

      // linearForward(dims, x, weight, bias | null, out)
      {"linearForward", LinearForwardArgs(false),
       [](const KernelCall& c) {
         cpu::LinearForward(c.F32("out"), c.F32("x"), c.F32("weight"), c.F32("bias"), c.Int("tokens"),
                            c.Int("inFeatures"), c.Int("outFeatures"));
         return Done();
       }},
      // linearBackward(dims, x, weight, dout, dx | null, dweight | null, dbias | null): adds.
      {"linearBackward", LinearBackwardArgs(false),
       [](const KernelCall& c) {
         cpu::LinearBackward(c.F32("dx"), c.F32("dweight"), c.F32("dbias"), c.F32("dout"), c.F32("x"),
                             c.F32("weight"), c.Int("tokens"), c.Int("inFeatures"), c.Int("outFeatures"));
         return Done();
       }},
      {"naiveLinearForward", LinearForwardArgs(true), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveLinearForward<T>(c.Data<T>("out"), c.Data<T>("x"), c.Data<T>("weight"),
                                    c.Data<T>("bias"), c.Int("tokens"), c.Int("inFeatures"),
                                    c.Int("outFeatures"));
         return Done();
       })},
      // naiveLinearBackward(dims, x, weight, dout, dx, dweight, dbias | null): writes.
      {"naiveLinearBackward", LinearBackwardArgs(true), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveLinearBackward<T>(c.Data<T>("dx"), c.Data<T>("dweight"), c.Data<T>("dbias"),
                                     c.Data<T>("dout"), c.Data<T>("x"), c.Data<T>("weight"),
                                     c.Int("tokens"), c.Int("inFeatures"), c.Int("outFeatures"));
         return Done();
       })},

      // swigluForward(gate, up, act)
      {"swigluForward", Same(false, {"gate", "up", "act"}),
       [](const KernelCall& c) {
         cpu::SwiGluForward(c.F32("act"), c.F32("gate"), c.F32("up"), Count(c, "gate"));
         return Done();
       }},
      // swigluBackward(gate, up, dact, dgate, dup): adds.
      {"swigluBackward", Same(false, {"gate", "up", "dact", "dgate", "dup"}),
       [](const KernelCall& c) {
         cpu::SwiGluBackward(c.F32("dgate"), c.F32("dup"), c.F32("dact"), c.F32("gate"), c.F32("up"),
                             Count(c, "gate"));
         return Done();
       }},
      {"naiveSwigluForward", Same(true, {"gate", "up", "act"}), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveSwiGluForward<T>(c.Data<T>("act"), c.Data<T>("gate"), c.Data<T>("up"),
                                    Count(c, "gate"));
         return Done();
       })},
      // naiveSwigluBackward(gate, up, dact, dgate, dup): writes.
      {"naiveSwigluBackward", Same(true, {"gate", "up", "dact", "dgate", "dup"}),
       ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveSwiGluBackward<T>(c.Data<T>("dgate"), c.Data<T>("dup"), c.Data<T>("dact"),
                                     c.Data<T>("gate"), c.Data<T>("up"), Count(c, "gate"));
         return Done();
       })},

      // mlpForward(dims, x, wGate, wUp, wDown, out)
      {"mlpForward", MlpForwardArgs(false), MlpForward},
      // mlpBackward(dims, x, wGate, wUp, wDown, dout, dx, dwGate, dwUp, dwDown): runs the forward for
      // its saved activations, then adds the gradients.
      {"mlpBackward", MlpBackwardArgs(false), MlpBackward},
      {"naiveMlpForward", MlpForwardArgs(true), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveSwiGluMlpForward<T>(c.Data<T>("out"), c.Data<T>("x"), c.Data<T>("wGate"),
                                       c.Data<T>("wUp"), c.Data<T>("wDown"), c.Int("tokens"),
                                       c.Int("channels"), c.Int("intermediate"));
         return Done();
       })},
      // naiveMlpBackward(...): writes the gradients.
      {"naiveMlpBackward", MlpBackwardArgs(true), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveSwiGluMlpBackward<T>(c.Data<T>("dx"), c.Data<T>("dwGate"), c.Data<T>("dwUp"),
                                        c.Data<T>("dwDown"), c.Data<T>("dout"), c.Data<T>("x"),
                                        c.Data<T>("wGate"), c.Data<T>("wUp"), c.Data<T>("wDown"),
                                        c.Int("tokens"), c.Int("channels"), c.Int("intermediate"));
         return Done();
       })},

      // residualForward(a, b, out)
      {"residualForward", Same(false, {"a", "b", "out"}),
       [](const KernelCall& c) {
         cpu::ResidualForward(c.F32("out"), c.F32("a"), c.F32("b"), Count(c, "a"));
         return Done();
       }},
      {"naiveResidualForward", Same(true, {"a", "b", "out"}), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveResidualForward<T>(c.Data<T>("out"), c.Data<T>("a"), c.Data<T>("b"), Count(c, "a"));
         return Done();
       })},
      // addInPlace(acc, x): acc += x (the residual backward).
      {"addInPlace", Same(false, {"acc", "x"}),
       [](const KernelCall& c) {
         cpu::AddInPlace(c.F32("acc"), c.F32("x"), Count(c, "acc"));
         return Done();
       }},

      // crossEntropy(dims, hidden, weight, labels, gradScale, dhidden | null, dweight | null)
      //   → Promise<{lossSum, count}>; chunked; adds the gradients.
      {"crossEntropy", CrossEntropyArgs(false),
       [](const KernelCall& c) {
         const int tokens = c.Int("tokens"), channels = c.Int("channels"), vocab = c.Int("vocab");
         const int chunk = c.Int("chunkTokens");
         cpu::CheckLabels(c.I32("labels"), tokens, vocab);
         std::vector<float> workspace(cpu::ChunkedCrossEntropyWorkspace(chunk, vocab));
         return CrossEntropyToJs(cpu::ChunkedCrossEntropy(
             c.F32("hidden"), c.F32("weight"), c.I32("labels"), tokens, channels, vocab, chunk,
             static_cast<float>(c.Number("gradScale")), c.F32("dhidden"), c.F32("dweight"), workspace.data()));
       }},
      // naiveCrossEntropy(...same) materialises the logits and writes the gradients.
      {"naiveCrossEntropy", CrossEntropyArgs(true), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::CheckLabels(c.I32("labels"), c.Int("tokens"), c.Int("vocab"));
         return CrossEntropyToJs(cpu::NaiveCrossEntropy<T>(
             c.Data<T>("hidden"), c.Data<T>("weight"), c.I32("labels"), c.Int("tokens"), c.Int("channels"),
             c.Int("vocab"), c.Number("gradScale"), c.Data<T>("dhidden"), c.Data<T>("dweight")));
       })},

      // adamwUpdate(hyper, step, params, grads, m, v): updates params, m, v in place.
      {"adamwUpdate", AdamWArgs(false),
       [](const KernelCall& c) {
         cpu::AdamWUpdate(HyperOf(c), StepOf(c), c.F32("params"), c.F32("grads"), c.F32("m"), c.F32("v"),
                          Count(c, "params"));
         return Done();
       }},
      {"naiveAdamwUpdate", AdamWArgs(true), ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveAdamWUpdate<T>(HyperOf(c), StepOf(c), c.Data<T>("params"), c.Data<T>("grads"),
                                  c.Data<T>("m"), c.Data<T>("v"), Count(c, "params"));
         return Done();
       })},
      // sumOfSquares(x) → Promise<number>, accumulated in double.
      {"sumOfSquares", {F32("x", "")},
       [](const KernelCall& c) { return KernelResult::Of(cpu::SumOfSquares(c.F32("x"), Count(c, "x"))); }},
      // scaleInPlace(x, s)
      {"scaleInPlace", {F32("x", ""), Scalar("s")},
       [](const KernelCall& c) {
         cpu::ScaleInPlace(c.F32("x"), Count(c, "x"), static_cast<float>(c.Number("s")));
         return Done();
       }},
  };
  return table;
}

// clipCoefficient(totalNorm, maxNorm) → number (synchronous: two numbers in, one out).
Napi::Value ClipCoefficient(const Napi::CallbackInfo& info) {
  const double norm = NumberArg(info, 0, "totalNorm"), max_norm = NumberArg(info, 1, "maxNorm");
  return Napi::Number::New(info.Env(), cpu::ClipCoefficient(norm, max_norm));
}

}  // namespace

void RegisterKernels(Napi::Env env, Napi::Object exports) {
  RegisterKernelTable(env, exports, KernelTable());
  exports.Set("clipCoefficient", Napi::Function::New(env, ClipCoefficient, "clipCoefficient"));
}

}  // namespace longctx::addon::testing
