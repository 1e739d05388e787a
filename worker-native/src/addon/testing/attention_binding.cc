// The CPU attention kernels (kernels/cpu/attention.h) for tests and benchmarks, as kernel table
// rows (kernel_table.h): each works directly on the caller's typed arrays, written (or, for
// the flash backward, added into) in place and pinned until the Promise settles. Argument types
// are checked at once (TypeError naming the argument); dimension and length problems reject the
// Promise with the kernel's message. The row kernels are probes of the ISA paths, synchronous.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "addon/kernel_table.h"
#include "addon/testing/testing.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_rows.h"

namespace longctx::addon::testing {

namespace {

using cpu::AttentionDims;
using cpu::AttentionMask;

constexpr double kDefaultScale = std::numeric_limits<double>::quiet_NaN();

// dims: {qLen, kvLen, heads, kvHeads, headDim, scale?}; scale defaults to 1/sqrt(headDim).
ArgSpec AttentionDimsArg() {
  return Dims("dims", {Int("qLen"), Int("kvLen"), Int("heads"), Int("kvHeads"), Int("headDim"),
                       Number("scale", kDefaultScale)});
}
ArgSpec MaskArg() { return Choice("mask", {"causal", "none"}); }

constexpr const char* kQ = "qLen·heads·headDim";
constexpr const char* kKv = "kvLen·kvHeads·headDim";
constexpr const char* kLse = "qLen·heads";

AttentionDims DimsOf(const KernelCall& c) {
  AttentionDims d{};
  d.q_len = c.Int("qLen"), d.kv_len = c.Int("kvLen"), d.heads = c.Int("heads");
  d.kv_heads = c.Int("kvHeads"), d.head_dim = c.Int("headDim");
  d.scale = c.Has("scale") ? static_cast<float>(c.Number("scale"))
                           : (d.head_dim > 0 ? 1.0f / std::sqrt(static_cast<float>(d.head_dim)) : 1.0f);
  return d;
}
AttentionMask MaskOf(const KernelCall& c) {
  return c.Choice("mask") == "causal" ? AttentionMask::kCausal : AttentionMask::kNone;
}
void CheckDims(const KernelCall& c) { cpu::CheckAttentionDims(DimsOf(c), MaskOf(c)); }

KernelResult Done() { return {}; }

const std::vector<KernelBinding>& AttentionTable() {
  static const std::vector<KernelBinding> table = {
      // flashAttentionForward(dims, mask, q, k, v, o, lse): writes o and lse.
      {"flashAttentionForward",
       {AttentionDimsArg(), MaskArg(), F32("q", kQ), F32("k", kKv), F32("v", kKv), F32("o", kQ),
        F32("lse", kLse)},
       [](const KernelCall& c) {
         const AttentionDims d = DimsOf(c);
         std::vector<float> workspace(cpu::FlashAttentionForwardWorkspace(d));
         cpu::FlashAttentionForward(d, MaskOf(c), c.F32("q"), c.F32("k"), c.F32("v"), c.F32("o"),
                                    c.F32("lse"), workspace.data());
         return Done();
       },
       CheckDims},
      // flashAttentionBackward(dims, mask, q, k, v, o, lse, dout, dq, dk, dv): adds into dq, dk, dv.
      {"flashAttentionBackward",
       {AttentionDimsArg(), MaskArg(), F32("q", kQ), F32("k", kKv), F32("v", kKv), F32("o", kQ),
        F32("lse", kLse), F32("dout", kQ), F32("dq", kQ), F32("dk", kKv), F32("dv", kKv)},
       [](const KernelCall& c) {
         const AttentionDims d = DimsOf(c);
         std::vector<float> workspace(cpu::FlashAttentionBackwardWorkspace(d));
         cpu::FlashAttentionBackward(d, MaskOf(c), c.F32("q"), c.F32("k"), c.F32("v"), c.F32("o"),
                                     c.F32("lse"), c.F32("dout"), c.F32("dq"), c.F32("dk"), c.F32("dv"),
                                     workspace.data());
         return Done();
       },
       CheckDims},
      // naiveAttentionForward / Backward: Float32Array or Float64Array; q's type picks the precision.
      {"naiveAttentionForward",
       {AttentionDimsArg(), MaskArg(), Real("q", kQ), Real("k", kKv), Real("v", kKv), Real("o", kQ),
        Real("lse", kLse)},
       ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveAttentionForward<T>(DimsOf(c), MaskOf(c), c.Data<T>("q"), c.Data<T>("k"), c.Data<T>("v"),
                                       c.Data<T>("o"), c.Data<T>("lse"));
         return Done();
       }),
       CheckDims},
      {"naiveAttentionBackward",
       {AttentionDimsArg(), MaskArg(), Real("q", kQ), Real("k", kKv), Real("v", kKv), Real("dout", kQ),
        Real("dq", kQ), Real("dk", kKv), Real("dv", kKv)},
       ByPrecision([](auto t, const KernelCall& c) {
         using T = decltype(t);
         cpu::NaiveAttentionBackward<T>(DimsOf(c), MaskOf(c), c.Data<T>("q"), c.Data<T>("k"), c.Data<T>("v"),
                                        c.Data<T>("dout"), c.Data<T>("dq"), c.Data<T>("dk"), c.Data<T>("dv"));
         return Done();
       }),
       CheckDims},
      // mergeAttentionPartial(rows, headDim, oAcc, lseAcc, oPart, lsePart): merges into oAcc, lseAcc.
      {"mergeAttentionPartial",
       {Scalar("rows"), Scalar("headDim"), F32("oAcc", "rows·headDim"), F32("lseAcc", "rows"),
        F32("oPart", "rows·headDim"), F32("lsePart", "rows")},
       [](const KernelCall& c) {
         cpu::MergeAttentionPartial(c.Int("rows"), c.Int("headDim"), c.F32("oAcc"), c.F32("lseAcc"),
                                    c.F32("oPart"), c.F32("lsePart"));
         return Done();
       },
       [](const KernelCall& c) {
         const double rows = c.Number("rows"), dim = c.Number("headDim");
         if (!(rows >= 0) || !(dim > 0) || rows != std::trunc(rows) || dim != std::trunc(dim) ||
             rows > 2147483647.0 || dim > 2147483647.0)
           throw std::invalid_argument(
               "rows must be a non-negative integer and headDim a positive integer, got rows=" +
               std::to_string(rows) + " headDim=" + std::to_string(dim));
       }},
  };
  return table;
}

// flashAttentionWorkspace(dims) → {forward, backward} in floats (synchronous: no kernel runs).
Napi::Value FlashWorkspace(const Napi::CallbackInfo& info) {
  const KernelCall c(info, {AttentionDimsArg()});
  const AttentionDims d = DimsOf(c);
  Napi::Object out = Napi::Object::New(info.Env());
  CallNative(info.Env(), [&] {
    out.Set("forward", static_cast<double>(cpu::FlashAttentionForwardWorkspace(d)));
    out.Set("backward", static_cast<double>(cpu::FlashAttentionBackwardWorkspace(d)));
  });
  return out;
}

// The row kernels, synchronously (they take microseconds), so tests can hold the AVX2 and
// AVX-512 paths to the scalar reference. isa is one of attentionRowIsas().
const char* IsaName(cpu::rows::Isa isa) {
  switch (isa) {
    case cpu::rows::Isa::kAvx512:
      return "avx512";
    case cpu::rows::Isa::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

cpu::rows::Isa IsaArg(const Napi::CallbackInfo& info, size_t index) {
  const std::string name = StringArg(info, index, "isa");
  const cpu::rows::Isa best = cpu::rows::BestIsa();
  for (auto isa : {cpu::rows::Isa::kScalar, cpu::rows::Isa::kAvx2, cpu::rows::Isa::kAvx512}) {
    if (name != IsaName(isa)) continue;
    if (static_cast<int>(isa) > static_cast<int>(best)) {
      throw Napi::Error::New(info.Env(), "isa '" + name + "' is not available on this CPU or build (best: " +
                                             IsaName(best) + ")");
    }
    return isa;
  }
  ThrowTypeError(info.Env(), "argument " + std::to_string(index) +
                                 " (isa) must be 'scalar', 'avx2' or 'avx512', got '" + name + "'");
}

// attentionRowIsas() → the instruction sets the row kernels can use here, narrowest first.
Napi::Value RowIsas(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  for (int i = 0; i <= static_cast<int>(cpu::rows::BestIsa()); ++i) {
    out.Set(i, IsaName(static_cast<cpu::rows::Isa>(i)));
  }
  return out;
}

// attentionRowExpShiftSum(isa, x, shift) → Σ exp(x - shift), replacing x by the exponentials.
Napi::Value RowExpShiftSum(const Napi::CallbackInfo& info) {
  const cpu::rows::Isa isa = IsaArg(info, 0);
  Pins pins;
  auto x = TypedArg<float>(info, 1, "x", pins);
  const float shift = static_cast<float>(NumberArg(info, 2, "shift"));
  return Napi::Number::New(info.Env(),
                           cpu::rows::ExpShiftSum(x.data, static_cast<int>(x.length), shift, isa));
}

// attentionRowMax(isa, x) → max of x (-inf when empty).
Napi::Value RowMax(const Napi::CallbackInfo& info) {
  const cpu::rows::Isa isa = IsaArg(info, 0);
  Pins pins;
  auto x = TypedArg<float>(info, 1, "x", pins);
  return Napi::Number::New(info.Env(), cpu::rows::Max(x.data, static_cast<int>(x.length), isa));
}

}  // namespace

void RegisterAttention(Napi::Env env, Napi::Object exports) {
  RegisterKernelTable(env, exports, AttentionTable());
  exports.Set("flashAttentionWorkspace", Napi::Function::New(env, FlashWorkspace, "flashAttentionWorkspace"));
  exports.Set("attentionRowIsas", Napi::Function::New(env, RowIsas, "attentionRowIsas"));
  exports.Set("attentionRowExpShiftSum", Napi::Function::New(env, RowExpShiftSum, "attentionRowExpShiftSum"));
  exports.Set("attentionRowMax", Napi::Function::New(env, RowMax, "attentionRowMax"));
}

}  // namespace longctx::addon::testing
