// ringAttention(communicator | null, options, tokens, q, k, v, dout) → Promise<{o, lse, dq, dk, dv,
// stats}>: one forward and backward of ring attention over this rank's tokens, so tests and the
// benchmark can check the ring against attention over the whole sequence.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "addon/comm_handle.h"
#include "addon/napi_toolkit.h"
#include "addon/testing/testing.h"
#include "ring/ring_attention.h"

namespace longctx::addon::testing {

namespace {

struct RingResult {
  std::vector<float> o, lse, dq, dk, dv;
  ring::RingStats forward, backward;
  size_t peak_bytes;
};

Napi::Float32Array ToArray(Napi::Env env, const std::vector<float>& v) {
  return ToFloat32Array(env, v.data(), v.size());
}

Napi::Object StatsObject(Napi::Env env, const ring::RingStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("computeSeconds", s.compute_seconds);
  out.Set("computeCpuSeconds", s.compute_cpu_seconds);
  out.Set("waitSeconds", s.wait_seconds);
  out.Set("bytesSent", static_cast<double>(s.bytes_sent));
  out.Set("bytesReceived", static_cast<double>(s.bytes_received));
  out.Set("bytesReceivedReady", static_cast<double>(s.bytes_received_ready));
  return out;
}

Napi::Value RingAttentionJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<comm::Communicator> comm;
  if (!info[0].IsNull() && !info[0].IsUndefined()) comm = CommunicatorFromJs(info[0]);
  Napi::Object options = ObjectArg(info, 1, "options");
  model::AttentionShape shape{};
  shape.tokens = static_cast<int>(NumberArg(info, 2, "tokens"));
  shape.heads = IntField(options, "options", "heads");
  shape.kv_heads = IntField(options, "options", "kvHeads");
  shape.head_dim = IntField(options, "options", "headDim");
  shape.scale = static_cast<float>(
      NumberField(options, "options", "scale", 1.0 / std::sqrt(static_cast<double>(shape.head_dim))));
  const std::string sharding_name = StringField(options, "options", "sharding", "zigzag");
  if (sharding_name != "zigzag" && sharding_name != "contiguous") {
    throw Napi::TypeError::New(
        env, "options.sharding must be 'zigzag' or 'contiguous', got '" + sharding_name + "'");
  }
  const ring::Sharding sharding =
      sharding_name == "zigzag" ? ring::Sharding::kZigzag : ring::Sharding::kContiguous;
  const double budget = NumberField(options, "options", "budgetBytes", 16.0 * (1ull << 30));
  // Copies: the arrays may be reused by JavaScript while the native work runs.
  auto copy = [&](size_t index, const char* name, size_t expected) {
    Napi::Float32Array a = Float32Arg(info, index, name);
    if (a.ElementLength() != expected) {
      throw Napi::RangeError::New(env, std::string(name) + " has " + std::to_string(a.ElementLength()) +
                                           " values, expected " + std::to_string(expected));
    }
    return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
  };
  if (shape.tokens <= 0 || shape.heads <= 0 || shape.kv_heads <= 0 || shape.head_dim <= 0) {
    throw Napi::RangeError::New(env, "tokens, heads, kvHeads and headDim must be positive");
  }
  const size_t q_size = static_cast<size_t>(shape.tokens) * shape.heads * shape.head_dim;
  const size_t kv_size = static_cast<size_t>(shape.tokens) * shape.kv_heads * shape.head_dim;
  auto q = copy(3, "q", q_size), k = copy(4, "k", kv_size), v = copy(5, "v", kv_size),
       dout = copy(6, "dout", q_size);

  return RunAsync<RingResult>(
      env,
      [=](const ReportProgress&) {
        auto arena = std::make_shared<Arena>("ring test device", static_cast<size_t>(budget));
        ring::RingAttention attention(comm.get(), arena, sharding);
        RingResult r;
        r.o.assign(q_size, 0.0f);
        r.lse.assign(static_cast<size_t>(shape.tokens) * shape.heads, 0.0f);
        attention.Forward(shape, q.data(), k.data(), v.data(), r.o.data(), r.lse.data());
        r.forward = attention.stats();
        attention.ResetStats();
        r.dq.assign(q_size, 0.0f);
        r.dk.assign(kv_size, 0.0f);
        r.dv.assign(kv_size, 0.0f);
        attention.Backward(shape, q.data(), k.data(), v.data(), r.o.data(), r.lse.data(), dout.data(),
                           r.dq.data(), r.dk.data(), r.dv.data());
        r.backward = attention.stats();
        r.peak_bytes = arena->peak();
        return r;
      },
      [](Napi::Env env, RingResult& r) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("o", ToArray(env, r.o));
        out.Set("lse", ToArray(env, r.lse));
        out.Set("dq", ToArray(env, r.dq));
        out.Set("dk", ToArray(env, r.dk));
        out.Set("dv", ToArray(env, r.dv));
        out.Set("forward", StatsObject(env, r.forward));
        out.Set("backward", StatsObject(env, r.backward));
        out.Set("peakBytes", static_cast<double>(r.peak_bytes));
        return out;
      });
}

}  // namespace

void RegisterRing(Napi::Env env, Napi::Object exports) {
  exports.Set("ringAttention", Napi::Function::New(env, RingAttentionJs, "ringAttention"));
}

}  // namespace longctx::addon::testing
