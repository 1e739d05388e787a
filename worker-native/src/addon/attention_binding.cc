// JavaScript bindings of the CPU attention kernels (kernels/cpu/attention.h), for tests and
// benchmarks. Every kernel runs through RunAsync on a pool thread and works directly on the
// caller's typed arrays: outputs are written (or, for the flash backward, added) in place, and the
// arrays are pinned by references until the Promise settles. Argument types are checked at once
// (TypeError naming the argument); dimension and length problems reject the Promise with the
// kernel's message.
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "addon/kernel_args.h"
#include "addon/promise_worker.h"
#include "addon/registry.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_rows.h"

namespace longctx::addon {

namespace {

using cpu::AttentionDims;
using cpu::AttentionMask;

// dims: {qLen, kvLen, heads, kvHeads, headDim, scale?}; scale defaults to 1/sqrt(headDim).
AttentionDims DimsArg(const Napi::CallbackInfo& info, size_t index) {
  Napi::Object obj = ObjectArg(info, index, "dims");
  AttentionDims d{};
  d.q_len = IntField(info, obj, "dims", "qLen");
  d.kv_len = IntField(info, obj, "dims", "kvLen");
  d.heads = IntField(info, obj, "dims", "heads");
  d.kv_heads = IntField(info, obj, "dims", "kvHeads");
  d.head_dim = IntField(info, obj, "dims", "headDim");
  Napi::Value scale = obj.Get("scale");
  if (scale.IsUndefined()) {
    d.scale = d.head_dim > 0 ? 1.0f / std::sqrt(static_cast<float>(d.head_dim)) : 1.0f;
  } else if (!scale.IsNumber()) {
    ThrowTypeError(info, "dims.scale must be a number when given");
  } else {
    d.scale = static_cast<float>(scale.As<Napi::Number>().DoubleValue());
  }
  return d;
}

AttentionMask MaskArg(const Napi::CallbackInfo& info, size_t index) {
  std::string mask = StringArg(info, index, "mask");
  if (mask == "causal") return AttentionMask::kCausal;
  if (mask == "none") return AttentionMask::kNone;
  ThrowTypeError(
      info, "argument " + std::to_string(index) + " (mask) must be 'causal' or 'none', got '" + mask + "'");
}

template <typename T>
void CheckQ(const AttentionDims& d, const ArrayArg<T>& t) {
  ExpectLength(t, static_cast<size_t>(d.q_len) * d.heads * d.head_dim, "qLen·heads·headDim");
}
template <typename T>
void CheckKv(const AttentionDims& d, const ArrayArg<T>& t) {
  ExpectLength(t, static_cast<size_t>(d.kv_len) * d.kv_heads * d.head_dim, "kvLen·kvHeads·headDim");
}
template <typename T>
void CheckLse(const AttentionDims& d, const ArrayArg<T>& t) {
  ExpectLength(t, static_cast<size_t>(d.q_len) * d.heads, "qLen·heads");
}

// flashAttentionForward(dims, mask, q, k, v, o, lse): writes o and lse.
Napi::Value FlashForward(const Napi::CallbackInfo& info) {
  auto pins = std::make_shared<Pins>();
  const AttentionDims d = DimsArg(info, 0);
  const AttentionMask mask = MaskArg(info, 1);
  auto q = TypedArg<float>(info, 2, "q", *pins), k = TypedArg<float>(info, 3, "k", *pins),
       v = TypedArg<float>(info, 4, "v", *pins), o = TypedArg<float>(info, 5, "o", *pins),
       lse = TypedArg<float>(info, 6, "lse", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    cpu::CheckAttentionDims(d, mask);
    CheckQ(d, q), CheckKv(d, k), CheckKv(d, v), CheckQ(d, o), CheckLse(d, lse);
    std::vector<float> workspace(cpu::FlashAttentionForwardWorkspace(d));
    cpu::FlashAttentionForward(d, mask, q.data, k.data, v.data, o.data, lse.data, workspace.data());
  });
}

// flashAttentionBackward(dims, mask, q, k, v, o, lse, dout, dq, dk, dv): adds into dq, dk, dv.
Napi::Value FlashBackward(const Napi::CallbackInfo& info) {
  auto pins = std::make_shared<Pins>();
  const AttentionDims d = DimsArg(info, 0);
  const AttentionMask mask = MaskArg(info, 1);
  auto q = TypedArg<float>(info, 2, "q", *pins), k = TypedArg<float>(info, 3, "k", *pins),
       v = TypedArg<float>(info, 4, "v", *pins), o = TypedArg<float>(info, 5, "o", *pins),
       lse = TypedArg<float>(info, 6, "lse", *pins), dout = TypedArg<float>(info, 7, "dout", *pins),
       dq = TypedArg<float>(info, 8, "dq", *pins), dk = TypedArg<float>(info, 9, "dk", *pins),
       dv = TypedArg<float>(info, 10, "dv", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    cpu::CheckAttentionDims(d, mask);
    CheckQ(d, q), CheckKv(d, k), CheckKv(d, v), CheckQ(d, o), CheckLse(d, lse), CheckQ(d, dout);
    CheckQ(d, dq), CheckKv(d, dk), CheckKv(d, dv);
    std::vector<float> workspace(cpu::FlashAttentionBackwardWorkspace(d));
    cpu::FlashAttentionBackward(d, mask, q.data, k.data, v.data, o.data, lse.data, dout.data, dq.data,
                                dk.data, dv.data, workspace.data());
  });
}

// flashAttentionWorkspace(dims) → {forward, backward} in floats (synchronous: no kernel runs).
Napi::Value FlashWorkspace(const Napi::CallbackInfo& info) {
  const AttentionDims d = DimsArg(info, 0);
  Napi::Object out = Napi::Object::New(info.Env());
  try {
    out.Set("forward", static_cast<double>(cpu::FlashAttentionForwardWorkspace(d)));
    out.Set("backward", static_cast<double>(cpu::FlashAttentionBackwardWorkspace(d)));
  } catch (const std::invalid_argument& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return out;
}

// mergeAttentionPartial(rows, headDim, oAcc, lseAcc, oPart, lsePart): merges into oAcc, lseAcc.
Napi::Value MergePartial(const Napi::CallbackInfo& info) {
  auto pins = std::make_shared<Pins>();
  const double rows_arg = NumberArg(info, 0, "rows"), dim_arg = NumberArg(info, 1, "headDim");
  auto o_acc = TypedArg<float>(info, 2, "oAcc", *pins), lse_acc = TypedArg<float>(info, 3, "lseAcc", *pins),
       o_part = TypedArg<float>(info, 4, "oPart", *pins),
       lse_part = TypedArg<float>(info, 5, "lsePart", *pins);
  const int rows = static_cast<int>(rows_arg), dim = static_cast<int>(dim_arg);
  return RunInPlace(info.Env(), pins, [=] {
    if (rows < 0 || dim <= 0 || rows != rows_arg || dim != dim_arg) {
      throw std::invalid_argument(
          "rows must be a non-negative integer and headDim a positive integer, got rows=" +
          std::to_string(rows_arg) + " headDim=" + std::to_string(dim_arg));
    }
    const size_t values = static_cast<size_t>(rows) * dim;
    ExpectLength(o_acc, values, "rows·headDim");
    ExpectLength(o_part, values, "rows·headDim");
    ExpectLength(lse_acc, rows, "rows");
    ExpectLength(lse_part, rows, "rows");
    cpu::MergeAttentionPartial(rows, dim, o_acc.data, lse_acc.data, o_part.data, lse_part.data);
  });
}

template <typename T>
Napi::Value NaiveForwardOf(const Napi::CallbackInfo& info) {
  auto pins = std::make_shared<Pins>();
  const AttentionDims d = DimsArg(info, 0);
  const AttentionMask mask = MaskArg(info, 1);
  auto q = TypedArg<T>(info, 2, "q", *pins), k = TypedArg<T>(info, 3, "k", *pins),
       v = TypedArg<T>(info, 4, "v", *pins), o = TypedArg<T>(info, 5, "o", *pins),
       lse = TypedArg<T>(info, 6, "lse", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    cpu::CheckAttentionDims(d, mask);
    CheckQ(d, q), CheckKv(d, k), CheckKv(d, v), CheckQ(d, o), CheckLse(d, lse);
    cpu::NaiveAttentionForward<T>(d, mask, q.data, k.data, v.data, o.data, lse.data);
  });
}

template <typename T>
Napi::Value NaiveBackwardOf(const Napi::CallbackInfo& info) {
  auto pins = std::make_shared<Pins>();
  const AttentionDims d = DimsArg(info, 0);
  const AttentionMask mask = MaskArg(info, 1);
  auto q = TypedArg<T>(info, 2, "q", *pins), k = TypedArg<T>(info, 3, "k", *pins),
       v = TypedArg<T>(info, 4, "v", *pins), dout = TypedArg<T>(info, 5, "dout", *pins),
       dq = TypedArg<T>(info, 6, "dq", *pins), dk = TypedArg<T>(info, 7, "dk", *pins),
       dv = TypedArg<T>(info, 8, "dv", *pins);
  return RunInPlace(info.Env(), pins, [=] {
    cpu::CheckAttentionDims(d, mask);
    CheckQ(d, q), CheckKv(d, k), CheckKv(d, v), CheckQ(d, dout), CheckQ(d, dq), CheckKv(d, dk),
        CheckKv(d, dv);
    cpu::NaiveAttentionBackward<T>(d, mask, q.data, k.data, v.data, dout.data, dq.data, dk.data, dv.data);
  });
}

// The naive kernels take Float32Array or Float64Array; q's type picks the precision.

Napi::Value NaiveForward(const Napi::CallbackInfo& info) {
  return IsFloat64Arg(info, 2) ? NaiveForwardOf<double>(info) : NaiveForwardOf<float>(info);
}

Napi::Value NaiveBackward(const Napi::CallbackInfo& info) {
  return IsFloat64Arg(info, 2) ? NaiveBackwardOf<double>(info) : NaiveBackwardOf<float>(info);
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
  ThrowTypeError(info, "argument " + std::to_string(index) +
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
  exports.Set("flashAttentionForward", Napi::Function::New(env, FlashForward, "flashAttentionForward"));
  exports.Set("flashAttentionBackward", Napi::Function::New(env, FlashBackward, "flashAttentionBackward"));
  exports.Set("flashAttentionWorkspace", Napi::Function::New(env, FlashWorkspace, "flashAttentionWorkspace"));
  exports.Set("mergeAttentionPartial", Napi::Function::New(env, MergePartial, "mergeAttentionPartial"));
  exports.Set("naiveAttentionForward", Napi::Function::New(env, NaiveForward, "naiveAttentionForward"));
  exports.Set("naiveAttentionBackward", Napi::Function::New(env, NaiveBackward, "naiveAttentionBackward"));
  exports.Set("attentionRowIsas", Napi::Function::New(env, RowIsas, "attentionRowIsas"));
  exports.Set("attentionRowExpShiftSum", Napi::Function::New(env, RowExpShiftSum, "attentionRowExpShiftSum"));
  exports.Set("attentionRowMax", Napi::Function::New(env, RowMax, "attentionRowMax"));
}

}  // namespace longctx::addon
