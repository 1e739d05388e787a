// The CUDA kernels one at a time, and probes of the backend's internals, for tests and benchmarks;
// present only in builds with CUDA (LONGCTX_WITH_CUDA): without it RegisterCudaKernels adds nothing
// and buildInfo().cuda is false. The backend's production binding is cuda_binding.cc.
//
// Each kernel binding takes host arrays, uploads them (float32 → bf16 with round-to-nearest-even
// where the kernel stores bf16), runs the kernel on device 0 out of a DeviceArena sized exactly for
// the call, and resolves with the results downloaded as Float32Arrays (bf16 values widen exactly).
// They exist so tests can hold every kernel to its reference and benchmarks can time them; the
// trainer calls the C++ API directly.
//
// Argument types are checked at once (TypeError naming the argument); sizes, array lengths and
// values are checked on the worker thread and reject the Promise with an Error naming the problem,
// as do CUDA errors and the absence of a device.
#ifdef LONGCTX_WITH_CUDA

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "addon/comm_handle.h"
#include "addon/napi_toolkit.h"
#include "addon/testing/testing.h"
#include "kernels/cuda/arena_ledger.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_arena.h"
#include "kernels/cuda/device_collectives.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/host_staging.h"
#include "kernels/cuda/offload.h"
#include "kernels/cuda/optimizer.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"

namespace longctx::addon::testing {

namespace {

namespace cu = longctx::cuda;
using cu::bf16;
using Floats = std::vector<float>;

// ---- Values (on the worker thread: a failure rejects the Promise) ----

int CheckedInt(double value, const std::string& name, int min) {
  if (!std::isfinite(value) || value != std::floor(value) || value < min || value > 2147483647.0)
    throw std::invalid_argument(name + " must be an integer >= " + std::to_string(min) + ", got " +
                                std::to_string(value));
  return static_cast<int>(value);
}

template <typename T>
void CheckLength(const std::vector<T>& array, size_t expected, const std::string& name) {
  if (array.size() != expected)
    throw std::invalid_argument(name + " has " + std::to_string(array.size()) + " elements, expected " +
                                std::to_string(expected));
}

// ---- Results ----

struct Outputs {
  using Arrays = std::vector<std::pair<std::string, Floats>>;
  using Numbers = std::vector<std::pair<std::string, double>>;
  using Strings = std::vector<std::pair<std::string, std::string>>;
  // A constructor, not an aggregate: most calls give no strings.
  Outputs(Arrays a, Numbers n, Strings s = {})
      : arrays(std::move(a)), numbers(std::move(n)), strings(std::move(s)) {}
  Arrays arrays;
  Numbers numbers;
  Strings strings;
};

Napi::Value OutputsToJs(Napi::Env env, Outputs& out) {
  Napi::Object object = Napi::Object::New(env);
  for (auto& [name, values] : out.arrays) {
    Napi::Float32Array array = Napi::Float32Array::New(env, values.size());
    if (!values.empty()) std::memcpy(array.Data(), values.data(), values.size() * sizeof(float));
    object.Set(name, array);
  }
  for (auto& [name, value] : out.numbers) object.Set(name, value);
  for (auto& [name, value] : out.strings) object.Set(name, value);
  return object;
}

Napi::Promise RunOnDevice(Napi::Env env, std::function<Outputs()> work) {
  return RunAsync<Outputs>(
      env, [work = std::move(work)](const ReportProgress&) { return work(); }, OutputsToJs);
}

// ---- One call's device: an arena of exactly the bytes it needs, and a stream ----

class DeviceCall {
 public:
  DeviceCall(const std::string& what, std::initializer_list<size_t> block_bytes) {
    if (cu::DeviceCount() == 0)
      throw std::runtime_error(what + ": no CUDA device is visible to this process (cudaDevices = 0)");
    CUDA_CHECK(cudaSetDevice(0));
    size_t budget = 0;
    for (size_t bytes : block_bytes) budget += bytes == 0 ? 0 : cu::ArenaLedger::RoundUp(bytes);
    arena_ = std::make_unique<cu::DeviceArena>(what + " on device 0", budget);
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~DeviceCall() {
    if (stream_ != nullptr) {
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
  }
  DeviceCall(const DeviceCall&) = delete;
  DeviceCall& operator=(const DeviceCall&) = delete;

  cudaStream_t stream() const { return stream_; }
  cu::DeviceArena& arena() { return *arena_; }

  template <typename T>
  T* Alloc(size_t count) {
    return arena_->Allocate<T>(count);
  }
  template <typename T>
  T* Zeros(size_t count) {
    T* p = Alloc<T>(count);
    if (count > 0) CUDA_CHECK(cudaMemsetAsync(p, 0, count * sizeof(T), stream_));
    return p;
  }
  bf16* UploadBf16(const Floats& host) {
    std::vector<uint16_t>& bits = staging_.emplace_back(host.size());
    for (size_t i = 0; i < host.size(); ++i) bits[i] = cu::FloatToBf16Bits(host[i]);
    bf16* p = Alloc<bf16>(host.size());
    Copy(p, bits.data(), host.size() * sizeof(uint16_t));
    return p;
  }
  float* UploadFloat(const Floats& host) {
    float* p = Alloc<float>(host.size());
    Copy(p, host.data(), host.size() * sizeof(float));
    return p;
  }
  int32_t* UploadInt(const std::vector<int32_t>& host) {
    int32_t* p = Alloc<int32_t>(host.size());
    Copy(p, host.data(), host.size() * sizeof(int32_t));
    return p;
  }
  Floats Download(const float* device, size_t count) {
    Floats host(count);
    if (count > 0)
      CUDA_CHECK(
          cudaMemcpyAsync(host.data(), device, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return host;
  }
  Floats Download(const bf16* device, size_t count) {
    std::vector<uint16_t> bits(count);
    if (count > 0)
      CUDA_CHECK(
          cudaMemcpyAsync(bits.data(), device, count * sizeof(uint16_t), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    Floats host(count);
    for (size_t i = 0; i < count; ++i) host[i] = cu::Bf16BitsToFloat(bits[i]);
    return host;
  }

 private:
  // Uploads are ordered on this call's stream; the host copies they read (staging_) live until the
  // stream has been synchronised.
  void Copy(void* device, const void* host, size_t bytes) {
    if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_));
  }

  std::unique_ptr<cu::DeviceArena> arena_;
  cudaStream_t stream_ = nullptr;
  std::vector<std::vector<uint16_t>> staging_;
};

size_t Bf16Bytes(size_t n) { return n * sizeof(bf16); }
size_t FloatBytes(size_t n) { return n * sizeof(float); }

// ---- Host-only functions (work without a GPU) ----

// cudaRoundToBf16(x) → the bf16 value of each element (round to nearest even), as float32.
Napi::Value RoundToBf16(const Napi::CallbackInfo& info) {
  Napi::Float32Array in = Float32Arg(info, 0, "x");
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), in.ElementLength());
  for (size_t i = 0; i < in.ElementLength(); ++i) out[i] = cu::RoundToBf16(in[i]);
  return out;
}

// cudaArenaReplay(budget, ops) runs alloc/free operations through the device arena's ledger and
// returns its state after each; an allocation that does not fit throws the arena's error.
Napi::Value ArenaReplay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double budget = NumberArg(info, 0, "budget");
  if (!(budget >= 0) || budget != std::floor(budget) || budget > 9007199254740991.0)
    throw Napi::RangeError::New(env, "budget must be a non-negative integer number of bytes");
  if (info.Length() <= 1 || !info[1].IsArray()) ThrowTypeError(env, "argument 1 (ops) must be an array");
  Napi::Array ops = info[1].As<Napi::Array>();
  cu::ArenaLedger ledger("device arena", static_cast<size_t>(budget));
  std::vector<size_t> offsets;  // offset of the block each op index allocated
  Napi::Array states = Napi::Array::New(env, ops.Length());
  for (uint32_t i = 0; i < ops.Length(); ++i) {
    const std::string name = "ops[" + std::to_string(i) + "]";
    Napi::Value op_value = ops.Get(i);
    if (!op_value.IsObject())
      ThrowTypeError(env, name + " must be an object {alloc: bytes} or {free: opIndex}");
    Napi::Object op = op_value.As<Napi::Object>();
    Napi::Object state = Napi::Object::New(env);
    try {
      if (op.Has("alloc")) {
        const double bytes = NumberField(op, name.c_str(), "alloc");
        if (!(bytes >= 1) || bytes != std::floor(bytes))
          throw Napi::RangeError::New(env, name + ".alloc must be a positive integer");
        const size_t offset = ledger.Allocate(static_cast<size_t>(bytes));
        state.Set("offset", static_cast<double>(offset));
        offsets.push_back(offset);
      } else {
        const double index = NumberField(op, name.c_str(), "free");
        if (!(index >= 0) || index != std::floor(index) || index >= i ||
            offsets[static_cast<size_t>(index)] == SIZE_MAX)
          throw Napi::RangeError::New(env, name + ".free must name an earlier alloc op that was not freed");
        ledger.Free(offsets[static_cast<size_t>(index)]);
        offsets[static_cast<size_t>(index)] = SIZE_MAX;
      }
    } catch (const cu::DeviceOutOfMemoryError& e) {
      Napi::Error error = Napi::Error::New(env, e.what());
      error.Set("requested", static_cast<double>(e.requested));
      error.Set("inUse", static_cast<double>(e.in_use));
      error.Set("budget", static_cast<double>(e.budget));
      error.Set("op", static_cast<double>(i));
      throw error;
    }
    if (!op.Has("alloc")) offsets.push_back(SIZE_MAX);  // keep offsets indexed by op
    const cu::DeviceArenaStats stats = ledger.stats();
    state.Set("current", static_cast<double>(stats.current));
    state.Set("peak", static_cast<double>(stats.peak));
    state.Set("liveBlocks", static_cast<double>(stats.live_blocks));
    state.Set("largestFree", static_cast<double>(ledger.largest_free()));
    states.Set(i, state);
  }
  return states;
}

// ---- Kernels ----

// cudaRmsNormForward(x, weight, tokens, channels, eps) → {out, rstd}
Napi::Value RmsNormForward(const Napi::CallbackInfo& info) {
  Floats x = CopyArg<float>(info, 0, "x"), weight = CopyArg<float>(info, 1, "weight");
  const double tokens_in = NumberArg(info, 2, "tokens"), channels_in = NumberArg(info, 3, "channels");
  const double eps = NumberArg(info, 4, "eps");
  return RunOnDevice(info.Env(), [=] {
    const int tokens = CheckedInt(tokens_in, "tokens", 1), channels = CheckedInt(channels_in, "channels", 1);
    if (!(eps >= 0) || !std::isfinite(eps)) throw std::invalid_argument("eps must be a finite number >= 0");
    const size_t n = static_cast<size_t>(tokens) * channels;
    CheckLength(x, n, "x");
    CheckLength(weight, channels, "weight");
    DeviceCall d("cudaRmsNormForward", {Bf16Bytes(n), Bf16Bytes(channels), Bf16Bytes(n), FloatBytes(tokens)});
    bf16* dx = d.UploadBf16(x);
    bf16* dw = d.UploadBf16(weight);
    bf16* out = d.Alloc<bf16>(n);
    float* rstd = d.Alloc<float>(tokens);
    cu::RmsNormForward(out, rstd, dx, dw, tokens, channels, static_cast<float>(eps), d.stream());
    return Outputs{{{"out", d.Download(out, n)}, {"rstd", d.Download(rstd, tokens)}}, {}};
  });
}

// cudaRmsNormBackward(dout, x, weight, rstd, tokens, channels) → {dx, dweight}
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  Floats dout = CopyArg<float>(info, 0, "dout"), x = CopyArg<float>(info, 1, "x"),
         weight = CopyArg<float>(info, 2, "weight"), rstd = CopyArg<float>(info, 3, "rstd");
  const double tokens_in = NumberArg(info, 4, "tokens"), channels_in = NumberArg(info, 5, "channels");
  return RunOnDevice(info.Env(), [=] {
    const int tokens = CheckedInt(tokens_in, "tokens", 1), channels = CheckedInt(channels_in, "channels", 1);
    const size_t n = static_cast<size_t>(tokens) * channels;
    CheckLength(dout, n, "dout");
    CheckLength(x, n, "x");
    CheckLength(weight, channels, "weight");
    CheckLength(rstd, tokens, "rstd");
    const size_t workspace = cu::RmsNormBackwardWorkspaceBytes(tokens, channels);
    DeviceCall d("cudaRmsNormBackward", {Bf16Bytes(n), Bf16Bytes(n), Bf16Bytes(channels), FloatBytes(tokens),
                                         Bf16Bytes(n), FloatBytes(channels), workspace});
    bf16* ddout = d.UploadBf16(dout);
    bf16* dx_in = d.UploadBf16(x);
    bf16* dw = d.UploadBf16(weight);
    float* drstd = d.UploadFloat(rstd);
    bf16* dx = d.Zeros<bf16>(n);
    float* dweight = d.Zeros<float>(channels);
    float* scratch = static_cast<float*>(d.arena().Allocate(workspace));
    cu::RmsNormBackward(dx, dweight, ddout, dx_in, dw, drstd, tokens, channels, scratch, d.stream());
    return Outputs{{{"dx", d.Download(dx, n)}, {"dweight", d.Download(dweight, channels)}}, {}};
  });
}

void CheckRope(const std::vector<int32_t>& positions, int head_dim, double theta) {
  if (head_dim % 2 != 0) throw std::invalid_argument("headDim must be even, got " + std::to_string(head_dim));
  if (!(theta > 0) || !std::isfinite(theta))
    throw std::invalid_argument("theta must be a positive finite number, got " + std::to_string(theta));
  for (size_t t = 0; t < positions.size(); ++t)
    if (positions[t] < 0)
      throw std::invalid_argument("positions[" + std::to_string(t) + "] = " + std::to_string(positions[t]) +
                                  " is negative");
}

// cudaRopeTables(positions, headDim, theta) → {cos, sin}, each [tokens, headDim/2]
Napi::Value RopeTables(const Napi::CallbackInfo& info) {
  std::vector<int32_t> positions = CopyArg<int32_t>(info, 0, "positions");
  const double head_dim_in = NumberArg(info, 1, "headDim"), theta = NumberArg(info, 2, "theta");
  return RunOnDevice(info.Env(), [=] {
    const int head_dim = CheckedInt(head_dim_in, "headDim", 2);
    CheckRope(positions, head_dim, theta);
    const int tokens = static_cast<int>(positions.size());
    const size_t cells = static_cast<size_t>(tokens) * (head_dim / 2);
    DeviceCall d("cudaRopeTables",
                 {positions.size() * sizeof(int32_t), FloatBytes(cells), FloatBytes(cells)});
    int32_t* dpos = d.UploadInt(positions);
    float* cos = d.Alloc<float>(cells);
    float* sin = d.Alloc<float>(cells);
    cu::RopeTables(cos, sin, dpos, tokens, head_dim, theta, d.stream());
    return Outputs{{{"cos", d.Download(cos, cells)}, {"sin", d.Download(sin, cells)}}, {}};
  });
}

// cudaRope(x, positions, heads, headDim, theta, inverse) → {out}: x [tokens, heads, headDim]
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Floats x = CopyArg<float>(info, 0, "x");
  std::vector<int32_t> positions = CopyArg<int32_t>(info, 1, "positions");
  const double heads_in = NumberArg(info, 2, "heads"), head_dim_in = NumberArg(info, 3, "headDim");
  const double theta = NumberArg(info, 4, "theta");
  const bool inverse = BoolArg(info, 5, "inverse");
  return RunOnDevice(info.Env(), [=] {
    const int heads = CheckedInt(heads_in, "heads", 1), head_dim = CheckedInt(head_dim_in, "headDim", 2);
    CheckRope(positions, head_dim, theta);
    const int tokens = static_cast<int>(positions.size());
    const size_t n = static_cast<size_t>(tokens) * heads * head_dim;
    const size_t cells = static_cast<size_t>(tokens) * (head_dim / 2);
    CheckLength(x, n, "x");
    DeviceCall d("cudaRope",
                 {Bf16Bytes(n), positions.size() * sizeof(int32_t), FloatBytes(cells), FloatBytes(cells)});
    bf16* dx = d.UploadBf16(x);
    int32_t* dpos = d.UploadInt(positions);
    float* cos = d.Alloc<float>(cells);
    float* sin = d.Alloc<float>(cells);
    cu::RopeTables(cos, sin, dpos, tokens, head_dim, theta, d.stream());
    if (inverse)
      cu::RopeBackward(dx, cos, sin, tokens, heads, head_dim, d.stream());
    else
      cu::RopeForward(dx, cos, sin, tokens, heads, head_dim, d.stream());
    return Outputs{{{"out", d.Download(dx, n)}}, {}};
  });
}

// cudaSwiGluForward(gate, up) → {act}
Napi::Value SwiGluForward(const Napi::CallbackInfo& info) {
  Floats gate = CopyArg<float>(info, 0, "gate"), up = CopyArg<float>(info, 1, "up");
  return RunOnDevice(info.Env(), [=] {
    const size_t n = gate.size();
    CheckLength(up, n, "up");
    DeviceCall d("cudaSwiGluForward", {Bf16Bytes(n), Bf16Bytes(n), Bf16Bytes(n)});
    bf16* dg = d.UploadBf16(gate);
    bf16* du = d.UploadBf16(up);
    bf16* act = d.Alloc<bf16>(n);
    cu::SwiGluForward(act, dg, du, static_cast<int64_t>(n), d.stream());
    return Outputs{{{"act", d.Download(act, n)}}, {}};
  });
}

// cudaSwiGluBackward(dact, gate, up) → {dgate, dup}
Napi::Value SwiGluBackward(const Napi::CallbackInfo& info) {
  Floats dact = CopyArg<float>(info, 0, "dact"), gate = CopyArg<float>(info, 1, "gate"),
         up = CopyArg<float>(info, 2, "up");
  return RunOnDevice(info.Env(), [=] {
    const size_t n = dact.size();
    CheckLength(gate, n, "gate");
    CheckLength(up, n, "up");
    DeviceCall d("cudaSwiGluBackward",
                 {Bf16Bytes(n), Bf16Bytes(n), Bf16Bytes(n), Bf16Bytes(n), Bf16Bytes(n)});
    bf16* dd = d.UploadBf16(dact);
    bf16* dg_in = d.UploadBf16(gate);
    bf16* du_in = d.UploadBf16(up);
    bf16* dgate = d.Zeros<bf16>(n);
    bf16* dup = d.Zeros<bf16>(n);
    cu::SwiGluBackward(dgate, dup, dd, dg_in, du_in, static_cast<int64_t>(n), d.stream());
    return Outputs{{{"dgate", d.Download(dgate, n)}, {"dup", d.Download(dup, n)}}, {}};
  });
}

// cudaResidualForward(a, b) → {out}
Napi::Value ResidualForward(const Napi::CallbackInfo& info) {
  Floats a = CopyArg<float>(info, 0, "a"), b = CopyArg<float>(info, 1, "b");
  return RunOnDevice(info.Env(), [=] {
    const size_t n = a.size();
    CheckLength(b, n, "b");
    DeviceCall d("cudaResidualForward", {Bf16Bytes(n), Bf16Bytes(n), Bf16Bytes(n)});
    bf16* da = d.UploadBf16(a);
    bf16* db = d.UploadBf16(b);
    bf16* out = d.Alloc<bf16>(n);
    cu::ResidualForward(out, da, db, static_cast<int64_t>(n), d.stream());
    return Outputs{{{"out", d.Download(out, n)}}, {}};
  });
}

// The timing bindings' inputs: uniform in [-1, 1) from a fixed xorshift stream, the same every run.
class BenchInputs {
 public:
  Floats Next(size_t n) {
    Floats values(n);
    for (float& v : values) {
      state_ ^= state_ << 13;
      state_ ^= state_ >> 7;
      state_ ^= state_ << 17;
      v = static_cast<float>(static_cast<double>(state_ >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    return values;
  }

 private:
  uint64_t state_ = 0x9e3779b97f4a7c15ull;
};

cu::GemmBackend GemmBackendNamed(const std::string& name) {
  if (name == "auto") return cu::GemmBackend::kAuto;
  if (name == "tiled") return cu::GemmBackend::kTiled;
  if (name == "cublasLt") return cu::GemmBackend::kCublasLt;
  throw std::invalid_argument("options.backend must be 'auto', 'tiled' or 'cublasLt', got '" + name + "'");
}

// cudaGemm({transA, transB, m, n, k, alpha?, beta?, out?: 'float32'|'bf16', backend?}, a, b, c?)
// → {c}: c = alpha·op(a)·op(b) + beta·c, row-major, as gemm.h.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Object opts = ObjectArg(info, 0, "options");
  const bool trans_a = BoolField(opts, "options", "transA", false);
  const bool trans_b = BoolField(opts, "options", "transB", false);
  const double m_in = NumberField(opts, "options", "m"), n_in = NumberField(opts, "options", "n"),
               k_in = NumberField(opts, "options", "k");
  const double alpha = NumberField(opts, "options", "alpha", 1.0);
  const double beta = NumberField(opts, "options", "beta", 0.0);
  const std::string out_type = StringField(opts, "options", "out", "float32");
  const std::string backend_name = StringField(opts, "options", "backend", "auto");
  Floats a = CopyArg<float>(info, 1, "a"), b = CopyArg<float>(info, 2, "b");
  const bool has_c = info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull();
  Floats c = has_c ? CopyArg<float>(info, 3, "c") : Floats();
  return RunOnDevice(info.Env(), [=] {
    const int m = CheckedInt(m_in, "options.m", 0), n = CheckedInt(n_in, "options.n", 0),
              k = CheckedInt(k_in, "options.k", 0);
    if (out_type != "float32" && out_type != "bf16")
      throw std::invalid_argument("options.out must be 'float32' or 'bf16', got '" + out_type + "'");
    const cu::GemmBackend backend = GemmBackendNamed(backend_name);
    const size_t mk = static_cast<size_t>(m) * k, kn = static_cast<size_t>(k) * n,
                 mn = static_cast<size_t>(m) * n;
    CheckLength(a, mk, "a");
    CheckLength(b, kn, "b");
    if (beta != 0.0 && !has_c) throw std::invalid_argument("c is required when options.beta is not 0");
    if (has_c) CheckLength(c, mn, "c");
    const bool bf16_out = out_type == "bf16";
    DeviceCall d("cudaGemm", {Bf16Bytes(mk), Bf16Bytes(kn), bf16_out ? Bf16Bytes(mn) : FloatBytes(mn)});
    bf16* da = d.UploadBf16(a);
    bf16* db = d.UploadBf16(b);
    const int lda = trans_a ? m : k, ldb = trans_b ? k : n;
    Floats result;
    if (bf16_out) {
      bf16* dc = has_c ? d.UploadBf16(c) : d.Zeros<bf16>(mn);
      cu::Gemm(trans_a, trans_b, m, n, k, static_cast<float>(alpha), da, lda < 1 ? 1 : lda, db,
               ldb < 1 ? 1 : ldb, static_cast<float>(beta), dc, n < 1 ? 1 : n, d.stream(), backend);
      result = d.Download(dc, mn);
    } else {
      float* dc = has_c ? d.UploadFloat(c) : d.Zeros<float>(mn);
      cu::Gemm(trans_a, trans_b, m, n, k, static_cast<float>(alpha), da, lda < 1 ? 1 : lda, db,
               ldb < 1 ? 1 : ldb, static_cast<float>(beta), dc, n < 1 ? 1 : n, d.stream(), backend);
      result = d.Download(dc, mn);
    }
    return Outputs{{{"c", std::move(result)}}, {}};
  });
}

// cudaCrossEntropy(hidden, weight, labels, {tokens, channels, vocab, chunkTokens}, gradScale, backward)
// → {lossSum, count, dhidden?, dweight?}
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Floats hidden = CopyArg<float>(info, 0, "hidden"), weight = CopyArg<float>(info, 1, "weight");
  std::vector<int32_t> labels = CopyArg<int32_t>(info, 2, "labels");
  Napi::Object dims = ObjectArg(info, 3, "dims");
  const double tokens_in = NumberField(dims, "dims", "tokens"),
               channels_in = NumberField(dims, "dims", "channels"),
               vocab_in = NumberField(dims, "dims", "vocab"),
               chunk_in = NumberField(dims, "dims", "chunkTokens");
  const double grad_scale = NumberArg(info, 4, "gradScale");
  const bool backward = BoolArg(info, 5, "backward");
  return RunOnDevice(info.Env(), [=] {
    const int tokens = CheckedInt(tokens_in, "dims.tokens", 1),
              channels = CheckedInt(channels_in, "dims.channels", 1),
              vocab = CheckedInt(vocab_in, "dims.vocab", 1),
              chunk = CheckedInt(chunk_in, "dims.chunkTokens", 1);
    if (!std::isfinite(grad_scale)) throw std::invalid_argument("gradScale must be finite");
    const size_t tc = static_cast<size_t>(tokens) * channels, vc = static_cast<size_t>(vocab) * channels;
    CheckLength(hidden, tc, "hidden");
    CheckLength(weight, vc, "weight");
    CheckLength(labels, tokens, "labels");
    for (int t = 0; t < tokens; ++t)
      if (labels[t] != cu::kIgnoreIndex && (labels[t] < 0 || labels[t] >= vocab))
        throw std::invalid_argument("labels[" + std::to_string(t) + "] = " + std::to_string(labels[t]) +
                                    " is outside the vocabulary [0, " + std::to_string(vocab) +
                                    ") and is not the ignore index -100");
    const size_t workspace = cu::ChunkedCrossEntropyWorkspaceBytes(tokens, vocab, chunk);
    DeviceCall d("cudaCrossEntropy",
                 {Bf16Bytes(tc), Bf16Bytes(vc), labels.size() * sizeof(int32_t), workspace,
                  backward ? Bf16Bytes(tc) : 0, backward ? FloatBytes(vc) : 0});
    bf16* dh = d.UploadBf16(hidden);
    bf16* dw = d.UploadBf16(weight);
    int32_t* dl = d.UploadInt(labels);
    void* scratch = d.arena().Allocate(workspace);
    bf16* dhidden = backward ? d.Zeros<bf16>(tc) : nullptr;
    float* dweight = backward ? d.Zeros<float>(vc) : nullptr;
    const cu::CrossEntropyResult r =
        cu::ChunkedCrossEntropy(dh, dw, dl, tokens, channels, vocab, chunk, static_cast<float>(grad_scale),
                                dhidden, dweight, scratch, d.stream());
    Outputs out{{}, {{"lossSum", r.loss_sum}, {"count", static_cast<double>(r.count)}}};
    if (backward) {
      out.arrays.emplace_back("dhidden", d.Download(dhidden, tc));
      out.arrays.emplace_back("dweight", d.Download(dweight, vc));
    }
    return out;
  });
}

// cudaAdamW({lr, beta1, beta2, eps, weightDecay}, step, params, grads, m, v) → {params, m, v, paramsBf16}
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Napi::Object h = ObjectArg(info, 0, "hyper");
  cu::AdamWHyper hyper;
  hyper.lr = static_cast<float>(NumberField(h, "hyper", "lr", hyper.lr));
  hyper.beta1 = static_cast<float>(NumberField(h, "hyper", "beta1", hyper.beta1));
  hyper.beta2 = static_cast<float>(NumberField(h, "hyper", "beta2", hyper.beta2));
  hyper.eps = static_cast<float>(NumberField(h, "hyper", "eps", hyper.eps));
  hyper.weight_decay = static_cast<float>(NumberField(h, "hyper", "weightDecay", hyper.weight_decay));
  const double step_in = NumberArg(info, 1, "step");
  Floats params = CopyArg<float>(info, 2, "params"), grads = CopyArg<float>(info, 3, "grads"),
         m = CopyArg<float>(info, 4, "m"), v = CopyArg<float>(info, 5, "v");
  return RunOnDevice(info.Env(), [=] {
    const int step = CheckedInt(step_in, "step", 1);
    cu::CheckAdamW(hyper, step);
    const size_t n = params.size();
    CheckLength(grads, n, "grads");
    CheckLength(m, n, "m");
    CheckLength(v, n, "v");
    DeviceCall d("cudaAdamW", {FloatBytes(n), FloatBytes(n), FloatBytes(n), FloatBytes(n), Bf16Bytes(n)});
    float* dp = d.UploadFloat(params);
    float* dg = d.UploadFloat(grads);
    float* dm = d.UploadFloat(m);
    float* dv = d.UploadFloat(v);
    bf16* copy = d.Alloc<bf16>(n);
    cu::AdamWUpdate(hyper, step, dp, dg, dm, dv, static_cast<int64_t>(n), copy, d.stream());
    return Outputs{{{"params", d.Download(dp, n)},
                    {"m", d.Download(dm, n)},
                    {"v", d.Download(dv, n)},
                    {"paramsBf16", d.Download(copy, n)}},
                   {}};
  });
}

// cudaSumOfSquares(x) → {sum}
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  Floats x = CopyArg<float>(info, 0, "x");
  return RunOnDevice(info.Env(), [=] {
    DeviceCall d("cudaSumOfSquares",
                 {FloatBytes(x.size()), cu::SumOfSquaresWorkspaceBytes(), sizeof(double)});
    float* dx = d.UploadFloat(x);
    double* scratch = static_cast<double*>(d.arena().Allocate(cu::SumOfSquaresWorkspaceBytes()));
    double* result = d.Alloc<double>(1);
    cu::SumOfSquares(dx, static_cast<int64_t>(x.size()), result, false, scratch, d.stream());
    double sum = 0;
    CUDA_CHECK(cudaMemcpyAsync(&sum, result, sizeof(double), cudaMemcpyDeviceToHost, d.stream()));
    CUDA_CHECK(cudaStreamSynchronize(d.stream()));
    return Outputs{{}, {{"sum", sum}}};
  });
}

struct AttentionArgs {
  double q_len, kv_len, heads, kv_heads, head_dim, scale;
  bool has_scale;
  std::string mask;
};

AttentionArgs ReadAttention(const Napi::CallbackInfo& info) {
  Napi::Object dims = ObjectArg(info, 0, "dims");
  AttentionArgs a;
  a.q_len = NumberField(dims, "dims", "qLen");
  a.kv_len = NumberField(dims, "dims", "kvLen");
  a.heads = NumberField(dims, "dims", "heads");
  a.kv_heads = NumberField(dims, "dims", "kvHeads");
  a.head_dim = NumberField(dims, "dims", "headDim");
  a.has_scale = !dims.Get("scale").IsUndefined();
  a.scale = a.has_scale ? NumberField(dims, "dims", "scale") : 0.0;
  a.mask = StringArg(info, 1, "mask");
  return a;
}

std::pair<cu::AttentionDims, cu::AttentionMask> ResolveAttention(const AttentionArgs& a) {
  cu::AttentionDims d;
  d.q_len = CheckedInt(a.q_len, "dims.qLen", 1);
  d.kv_len = CheckedInt(a.kv_len, "dims.kvLen", 1);
  d.heads = CheckedInt(a.heads, "dims.heads", 1);
  d.kv_heads = CheckedInt(a.kv_heads, "dims.kvHeads", 1);
  d.head_dim = CheckedInt(a.head_dim, "dims.headDim", 1);
  d.scale = static_cast<float>(a.has_scale ? a.scale : 1.0 / std::sqrt(static_cast<double>(d.head_dim)));
  if (a.mask != "none" && a.mask != "causal")
    throw std::invalid_argument("mask must be 'none' or 'causal', got '" + a.mask + "'");
  const cu::AttentionMask mask = a.mask == "causal" ? cu::AttentionMask::kCausal : cu::AttentionMask::kNone;
  cu::CheckAttentionDims(d, mask);
  return {d, mask};
}

// cudaFlashAttentionForward(dims, mask, q, k, v) → {o, lse}
Napi::Value FlashForward(const Napi::CallbackInfo& info) {
  const AttentionArgs args = ReadAttention(info);
  Floats q = CopyArg<float>(info, 2, "q"), k = CopyArg<float>(info, 3, "k"), v = CopyArg<float>(info, 4, "v");
  return RunOnDevice(info.Env(), [=] {
    const auto [d, mask] = ResolveAttention(args);
    const size_t q_size = static_cast<size_t>(d.q_len) * d.heads * d.head_dim;
    const size_t kv_size = static_cast<size_t>(d.kv_len) * d.kv_heads * d.head_dim;
    const size_t rows = static_cast<size_t>(d.q_len) * d.heads;
    CheckLength(q, q_size, "q");
    CheckLength(k, kv_size, "k");
    CheckLength(v, kv_size, "v");
    DeviceCall dev("cudaFlashAttentionForward", {Bf16Bytes(q_size), Bf16Bytes(kv_size), Bf16Bytes(kv_size),
                                                 Bf16Bytes(q_size), FloatBytes(rows)});
    bf16* dq = dev.UploadBf16(q);
    bf16* dk = dev.UploadBf16(k);
    bf16* dv = dev.UploadBf16(v);
    bf16* o = dev.Alloc<bf16>(q_size);
    float* lse = dev.Alloc<float>(rows);
    cu::FlashAttentionForward(d, mask, dq, dk, dv, o, lse, dev.stream());
    return Outputs{{{"o", dev.Download(o, q_size)}, {"lse", dev.Download(lse, rows)}}, {}};
  });
}

// cudaFlashAttentionBackward(dims, mask, q, k, v, o, lse, dout, accumulate?) → {dq, dk, dv}: the
// kernel adds into its gradients; they start at zero, or at accumulate.{dq, dk, dv} when given (as
// ring attention accumulates the partial gradients of several steps).
Napi::Value FlashBackward(const Napi::CallbackInfo& info) {
  const AttentionArgs args = ReadAttention(info);
  Floats q = CopyArg<float>(info, 2, "q"), k = CopyArg<float>(info, 3, "k"), v = CopyArg<float>(info, 4, "v"),
         o = CopyArg<float>(info, 5, "o"), lse = CopyArg<float>(info, 6, "lse"),
         dout = CopyArg<float>(info, 7, "dout");
  const bool accumulate = info.Length() > 8 && !info[8].IsUndefined();
  Floats init_dq, init_dk, init_dv;
  if (accumulate) {
    Napi::Object init = ObjectArg(info, 8, "accumulate");
    for (auto [name, target] :
         {std::pair<const char*, Floats*>{"dq", &init_dq}, {"dk", &init_dk}, {"dv", &init_dv}}) {
      Napi::Value value = init.Get(name);
      if (!IsTypedArrayOf(value, napi_float32_array))
        ThrowTypeError(info.Env(), std::string("accumulate.") + name + " must be a Float32Array");
      Napi::Float32Array array = value.As<Napi::Float32Array>();
      target->assign(array.Data(), array.Data() + array.ElementLength());
    }
  }
  return RunOnDevice(info.Env(), [=] {
    const auto [d, mask] = ResolveAttention(args);
    const size_t q_size = static_cast<size_t>(d.q_len) * d.heads * d.head_dim;
    const size_t kv_size = static_cast<size_t>(d.kv_len) * d.kv_heads * d.head_dim;
    const size_t rows = static_cast<size_t>(d.q_len) * d.heads;
    CheckLength(q, q_size, "q");
    CheckLength(k, kv_size, "k");
    CheckLength(v, kv_size, "v");
    CheckLength(o, q_size, "o");
    CheckLength(lse, rows, "lse");
    CheckLength(dout, q_size, "dout");
    if (accumulate) {
      CheckLength(init_dq, q_size, "accumulate.dq");
      CheckLength(init_dk, kv_size, "accumulate.dk");
      CheckLength(init_dv, kv_size, "accumulate.dv");
    }
    const size_t workspace = cu::FlashAttentionBackwardWorkspaceBytes(d);
    DeviceCall dev(
        "cudaFlashAttentionBackward",
        {Bf16Bytes(q_size), Bf16Bytes(kv_size), Bf16Bytes(kv_size), Bf16Bytes(q_size), FloatBytes(rows),
         Bf16Bytes(q_size), FloatBytes(q_size), FloatBytes(kv_size), FloatBytes(kv_size), workspace});
    bf16* dq_in = dev.UploadBf16(q);
    bf16* dk_in = dev.UploadBf16(k);
    bf16* dv_in = dev.UploadBf16(v);
    bf16* o_in = dev.UploadBf16(o);
    float* lse_in = dev.UploadFloat(lse);
    bf16* dout_in = dev.UploadBf16(dout);
    float* dq = accumulate ? dev.UploadFloat(init_dq) : dev.Zeros<float>(q_size);
    float* dk = accumulate ? dev.UploadFloat(init_dk) : dev.Zeros<float>(kv_size);
    float* dv = accumulate ? dev.UploadFloat(init_dv) : dev.Zeros<float>(kv_size);
    void* scratch = dev.arena().Allocate(workspace);
    cu::FlashAttentionBackward(d, mask, dq_in, dk_in, dv_in, o_in, lse_in, dout_in, dq, dk, dv, scratch,
                               dev.stream());
    return Outputs{{{"dq", dev.Download(dq, q_size)},
                    {"dk", dev.Download(dk, kv_size)},
                    {"dv", dev.Download(dv, kv_size)}},
                   {}};
  });
}

// cudaTimeAttention(dims, mask, iterations) → {forwardMs, forwardBackwardMs}: mean device time of
// one forward, and of one forward plus backward, on random bf16 inputs, timed with CUDA events
// after a warm-up (no host transfers inside the timed region). For benchmarks.
Napi::Value TimeAttention(const Napi::CallbackInfo& info) {
  const AttentionArgs args = ReadAttention(info);
  const double iterations_in = NumberArg(info, 2, "iterations");
  return RunOnDevice(info.Env(), [=] {
    const auto [d, mask] = ResolveAttention(args);
    const int iterations = CheckedInt(iterations_in, "iterations", 1);
    const size_t q_size = static_cast<size_t>(d.q_len) * d.heads * d.head_dim;
    const size_t kv_size = static_cast<size_t>(d.kv_len) * d.kv_heads * d.head_dim;
    const size_t rows = static_cast<size_t>(d.q_len) * d.heads;
    const size_t workspace = cu::FlashAttentionBackwardWorkspaceBytes(d);
    DeviceCall dev(
        "cudaTimeAttention",
        {Bf16Bytes(q_size), Bf16Bytes(kv_size), Bf16Bytes(kv_size), Bf16Bytes(q_size), FloatBytes(rows),
         Bf16Bytes(q_size), FloatBytes(q_size), FloatBytes(kv_size), FloatBytes(kv_size), workspace});
    BenchInputs inputs;
    auto fill = [&inputs](size_t n) { return inputs.Next(n); };
    bf16* q = dev.UploadBf16(fill(q_size));
    bf16* k = dev.UploadBf16(fill(kv_size));
    bf16* v = dev.UploadBf16(fill(kv_size));
    bf16* o = dev.Alloc<bf16>(q_size);
    float* lse = dev.Alloc<float>(rows);
    bf16* dout = dev.UploadBf16(fill(q_size));
    float* dq = dev.Zeros<float>(q_size);
    float* dk = dev.Zeros<float>(kv_size);
    float* dv = dev.Zeros<float>(kv_size);
    void* scratch = dev.arena().Allocate(workspace);
    cudaStream_t s = dev.stream();
    auto forward = [&] { cu::FlashAttentionForward(d, mask, q, k, v, o, lse, s); };
    auto backward = [&] {
      cu::FlashAttentionBackward(d, mask, q, k, v, o, lse, dout, dq, dk, dv, scratch, s);
    };
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    auto time = [&](const std::function<void()>& step) {
      step();  // warm-up
      CUDA_CHECK(cudaEventRecord(start, s));
      for (int i = 0; i < iterations; ++i) step();
      CUDA_CHECK(cudaEventRecord(stop, s));
      CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      return static_cast<double>(ms) / iterations;
    };
    double forward_ms = 0, forward_backward_ms = 0;
    try {
      forward_ms = time(forward);
      forward_backward_ms = time([&] {
        forward();
        backward();
      });
    } catch (...) {
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
      throw;
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return Outputs{{}, {{"forwardMs", forward_ms}, {"forwardBackwardMs", forward_backward_ms}}};
  });
}

// cudaTimeGemm({transA, transB, m, n, k, out?, backend?}, iterations) → {ms}: mean device time of
// one GEMM (beta = 0) on device-resident random bf16 operands, timed with CUDA events after a
// warm-up. For benchmarks.
Napi::Value TimeGemm(const Napi::CallbackInfo& info) {
  Napi::Object opts = ObjectArg(info, 0, "options");
  const bool trans_a = BoolField(opts, "options", "transA", false);
  const bool trans_b = BoolField(opts, "options", "transB", false);
  const double m_in = NumberField(opts, "options", "m"), n_in = NumberField(opts, "options", "n"),
               k_in = NumberField(opts, "options", "k");
  const std::string out_type = StringField(opts, "options", "out", "bf16");
  const std::string backend_name = StringField(opts, "options", "backend", "auto");
  const double iterations_in = NumberArg(info, 1, "iterations");
  return RunOnDevice(info.Env(), [=] {
    const int m = CheckedInt(m_in, "options.m", 1), n = CheckedInt(n_in, "options.n", 1),
              k = CheckedInt(k_in, "options.k", 1);
    const int iterations = CheckedInt(iterations_in, "iterations", 1);
    if (out_type != "float32" && out_type != "bf16")
      throw std::invalid_argument("options.out must be 'float32' or 'bf16', got '" + out_type + "'");
    const cu::GemmBackend backend = GemmBackendNamed(backend_name);
    const size_t mk = static_cast<size_t>(m) * k, kn = static_cast<size_t>(k) * n,
                 mn = static_cast<size_t>(m) * n;
    const bool bf16_out = out_type == "bf16";
    DeviceCall d("cudaTimeGemm", {Bf16Bytes(mk), Bf16Bytes(kn), bf16_out ? Bf16Bytes(mn) : FloatBytes(mn)});
    // Random operands (constant ones would draw less power and flatter the rate).
    BenchInputs inputs;
    auto fill = [&inputs](size_t count) { return inputs.Next(count); };
    bf16* da = d.UploadBf16(fill(mk));
    bf16* db = d.UploadBf16(fill(kn));
    void* dc = bf16_out ? static_cast<void*>(d.Alloc<bf16>(mn)) : static_cast<void*>(d.Alloc<float>(mn));
    const int lda = trans_a ? m : k, ldb = trans_b ? k : n;
    auto gemm = [&] {
      if (bf16_out)
        cu::Gemm(trans_a, trans_b, m, n, k, 1.0f, da, lda, db, ldb, 0.0f, static_cast<bf16*>(dc), n,
                 d.stream(), backend);
      else
        cu::Gemm(trans_a, trans_b, m, n, k, 1.0f, da, lda, db, ldb, 0.0f, static_cast<float*>(dc), n,
                 d.stream(), backend);
    };
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    float ms = 0;
    try {
      gemm();  // warm-up (and cuBLASLt's heuristic)
      CUDA_CHECK(cudaEventRecord(start, d.stream()));
      for (int i = 0; i < iterations; ++i) gemm();
      CUDA_CHECK(cudaEventRecord(stop, d.stream()));
      CUDA_CHECK(cudaEventSynchronize(stop));
      CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    } catch (...) {
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
      throw;
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return Outputs{{}, {{"ms", static_cast<double>(ms) / iterations}}};
  });
}

// cudaPrefetchRoundTrip(layers, layerCount, slots) → {out}: every layer goes host (pinned) → slot
// (copy stream) → output (compute stream, ×2), with at most `slots` layers in flight, as a trainer
// streams offloaded weights; out is the concatenation of 2·layer.
Napi::Value PrefetchRoundTrip(const Napi::CallbackInfo& info) {
  Floats layers = CopyArg<float>(info, 0, "layers");
  const double count_in = NumberArg(info, 1, "layerCount"), slots_in = NumberArg(info, 2, "slots");
  return RunOnDevice(info.Env(), [=] {
    const int count = CheckedInt(count_in, "layerCount", 1), slots = CheckedInt(slots_in, "slots", 1);
    if (layers.size() % count != 0)
      throw std::invalid_argument("layers has " + std::to_string(layers.size()) +
                                  " elements, not a multiple of " + std::to_string(count) + " layers");
    const size_t len = layers.size() / count, bytes = len * sizeof(float);
    DeviceCall d("cudaPrefetchRoundTrip", {FloatBytes(layers.size()), slots * bytes});
    cu::PinnedBuffer host(layers.size() * sizeof(float));
    std::memcpy(host.data(), layers.data(), layers.size() * sizeof(float));
    const float* host_layers = static_cast<const float*>(host.data());
    float* out = d.Alloc<float>(layers.size());
    {
      cu::PrefetchQueue queue(d.arena(), bytes, slots, d.stream());
      int prefetched = 0;
      for (; prefetched < count && prefetched < slots; ++prefetched)
        queue.Prefetch(host_layers + prefetched * len, bytes);
      for (int l = 0; l < count; ++l) {
        const float* w = static_cast<const float*>(queue.Acquire(l));
        CUDA_CHECK(cudaMemcpyAsync(out + l * len, w, bytes, cudaMemcpyDeviceToDevice, d.stream()));
        cu::ScaleInPlace(out + l * len, static_cast<int64_t>(len), 2.0f, d.stream());
        queue.Release(l);
        if (prefetched < count) queue.Prefetch(host_layers + static_cast<size_t>(prefetched++) * len, bytes);
      }
      CUDA_CHECK(cudaStreamSynchronize(d.stream()));
    }
    return Outputs{{{"out", d.Download(out, layers.size())}}, {}};
  });
}

// cudaHostStagingRoundTrip(x) → {allReduced, received}: a world of one rank through HostStaging,
// so the values travel device → pinned host → collective → device.
Napi::Value HostStagingRoundTrip(const Napi::CallbackInfo& info) {
  Floats x = CopyArg<float>(info, 0, "x");
  return RunOnDevice(info.Env(), [=] {
    const size_t n = x.size();
    if (n == 0) throw std::invalid_argument("x must not be empty");
    DeviceCall d("cudaHostStagingRoundTrip", {FloatBytes(n), FloatBytes(n)});
    float* data = d.UploadFloat(x);
    float* received = d.Zeros<float>(n);
    cu::SelfCollectives self;
    cu::HostStaging staging(self, d.stream());
    staging.AllReduceSum(data, n);
    staging.SendRecv(data, FloatBytes(n), 0, received, FloatBytes(n), 0, 7);
    return Outputs{{{"allReduced", d.Download(data, n)}, {"received", d.Download(received, n)}}, {}};
  });
}

// cudaCollectivesRoundTrip(communicator, choice, x) → {allReduced, received, description, note}:
// device collectives ('auto' | 'nccl' | 'staged') over the communicator's ranks, on device 0: x is
// all-reduced in place, then sent to the next rank while the previous rank's is received (a ring
// step; a world of one sends to itself). Every rank of the communicator calls it.
Napi::Value CollectivesRoundTrip(const Napi::CallbackInfo& info) {
  std::shared_ptr<comm::Communicator> comm = CommunicatorFromJs(info[0]);
  const std::string choice_name =
      info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  Floats x = CopyArg<float>(info, 2, "x");
  return RunOnDevice(info.Env(), [=] {
    const cu::CollectivesChoice choice = cu::ParseCollectivesChoice(choice_name);
    const size_t n = x.size();
    if (n == 0) throw std::invalid_argument("x must not be empty");
    DeviceCall d("cudaCollectivesRoundTrip", {FloatBytes(n), FloatBytes(n)});
    float* data = d.UploadFloat(x);
    float* received = d.Zeros<float>(n);
    std::string note;
    std::unique_ptr<cu::DeviceCollectives> collectives =
        cu::MakeDeviceCollectives(*comm, 0, d.stream(), choice, &note);
    const int next = (comm->rank() + 1) % comm->size(),
              prev = (comm->rank() - 1 + comm->size()) % comm->size();
    collectives->AllReduceSum(data, n);
    collectives->StartSendRecv(data, FloatBytes(n), next, received, FloatBytes(n), prev, 7);
    collectives->JoinSendRecv();
    Floats all_reduced = d.Download(data, n), got = d.Download(received, n);
    collectives->ThrowIfFailed();
    const std::string description = collectives->description();
    collectives.reset();
    return Outputs{{{"allReduced", std::move(all_reduced)}, {"received", std::move(got)}},
                   {},
                   {{"description", description}, {"note", note}}};
  });
}

}  // namespace

void RegisterCudaKernels(Napi::Env env, Napi::Object exports) {
  auto add = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, fn, name));
  };
  add("cudaRoundToBf16", RoundToBf16);
  add("cudaArenaReplay", ArenaReplay);
  add("cudaRmsNormForward", RmsNormForward);
  add("cudaRmsNormBackward", RmsNormBackward);
  add("cudaRopeTables", RopeTables);
  add("cudaRope", Rope);
  add("cudaSwiGluForward", SwiGluForward);
  add("cudaSwiGluBackward", SwiGluBackward);
  add("cudaResidualForward", ResidualForward);
  add("cudaGemm", Gemm);
  add("cudaTimeGemm", TimeGemm);
  add("cudaCollectivesRoundTrip", CollectivesRoundTrip);
  add("cudaCrossEntropy", CrossEntropy);
  add("cudaAdamW", AdamW);
  add("cudaSumOfSquares", SumOfSquares);
  add("cudaFlashAttentionForward", FlashForward);
  add("cudaFlashAttentionBackward", FlashBackward);
  add("cudaTimeAttention", TimeAttention);
  add("cudaPrefetchRoundTrip", PrefetchRoundTrip);
  add("cudaHostStagingRoundTrip", HostStagingRoundTrip);
}

}  // namespace longctx::addon::testing

#else  // !LONGCTX_WITH_CUDA

#include "addon/testing/testing.h"

namespace longctx::addon::testing {
void RegisterCudaKernels(Napi::Env env, Napi::Object exports) {}  // no CUDA in this build: no cuda* functions
}  // namespace longctx::addon::testing

#endif  // LONGCTX_WITH_CUDA
