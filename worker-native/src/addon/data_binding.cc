// The training data reader and the zigzag map, for JavaScript (typed in data/token-file.ts).
//
// Reads are synchronous: a shard is a copy out of a memory map (2·S/(2N) tokens), far cheaper
// than a round trip through the libuv pool.
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>

#include "addon/napi_toolkit.h"
#include "addon/registry.h"
#include "data/token_file.h"
#include "ring/zigzag.h"

namespace longctx::addon {

namespace {

// Runs `body`, turning C++ exceptions into JavaScript ones: bad arguments (std::invalid_argument,
// std::out_of_range) become RangeErrors, everything else an Error, each with the native message.
template <typename Body>
Napi::Value Guarded(Napi::Env env, Body body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const std::out_of_range& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<int32_t>& values) {
  return addon::ToInt32Array(env, values.data(), values.size());
}

Napi::Object ShardToJs(Napi::Env env, const ring::ZigzagShard& shard) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", shard.rank);
  Napi::Array chunks = Napi::Array::New(env, 2);
  Napi::Array starts = Napi::Array::New(env, 2);
  for (uint32_t c = 0; c < 2; ++c) {
    chunks.Set(c, shard.chunks[c]);
    starts.Set(c, static_cast<double>(shard.starts[c]));
  }
  out.Set("chunks", chunks);
  out.Set("starts", starts);
  out.Set("chunkTokens", static_cast<double>(shard.chunk_tokens));
  return out;
}

// zigzagPlan(seqLen, worldSize) → [{rank, chunks, starts, chunkTokens}, ...]
Napi::Value ZigzagPlanJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t seq_len = IntegerArg(info, 0, "seqLen", 0);
  int64_t world = IntegerArg(info, 1, "worldSize", 0);
  return Guarded(env, [&]() -> Napi::Value {
    if (world > 1 << 20) throw std::invalid_argument("world size " + std::to_string(world) + " is too large");
    auto plan = ring::ZigzagPlan(seq_len, static_cast<int>(world));
    Napi::Array out = Napi::Array::New(env, plan.size());
    for (uint32_t r = 0; r < plan.size(); ++r) out.Set(r, ShardToJs(env, plan[r]));
    return out;
  });
}

// openTokenFile(tokenPath, expectedTokens, vocabSize) → {path, tokens, vocabSize, sequences(seqLen),
// readShard(sequence, seqLen, rank, world), tokenAt(index), close()}. The methods share ownership
// of the mapping; it is unmapped by close() or when the object is garbage-collected.
Napi::Value OpenTokenFileJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "tokenPath");
  int64_t expected_tokens = IntegerArg(info, 1, "expectedTokens", 0);
  int64_t vocab_size = IntegerArg(info, 2, "vocabSize", 1);
  if (vocab_size > (int64_t{1} << 31)) {
    throw Napi::RangeError::New(
        env, "argument 2 (vocabSize) must fit int32 token ids, got " + std::to_string(vocab_size));
  }
  return Guarded(env, [&]() -> Napi::Value {
    auto file = std::make_shared<data::TokenFile>(path, static_cast<uint64_t>(expected_tokens),
                                                  static_cast<uint32_t>(vocab_size));
    Napi::Object out = Napi::Object::New(env);
    out.Set("path", path);
    out.Set("tokens", static_cast<double>(file->tokens()));
    out.Set("vocabSize", static_cast<double>(file->vocab_size()));

    out.Set("sequences", Napi::Function::New(
                             env,
                             [file](const Napi::CallbackInfo& info) -> Napi::Value {
                               int64_t seq_len = IntegerArg(info, 0, "seqLen", 1);
                               return Napi::Number::New(info.Env(),
                                                        static_cast<double>(file->Sequences(seq_len)));
                             },
                             "sequences"));

    out.Set("readShard", Napi::Function::New(
                             env,
                             [file](const Napi::CallbackInfo& info) -> Napi::Value {
                               Napi::Env env = info.Env();
                               int64_t sequence = IntegerArg(info, 0, "sequence", 0);
                               int64_t seq_len = IntegerArg(info, 1, "seqLen", 1);
                               int64_t rank = IntegerArg(info, 2, "rank", 0);
                               int64_t world = IntegerArg(info, 3, "worldSize", 1);
                               return Guarded(env, [&]() -> Napi::Value {
                                 if (world > 1 << 20 || rank > 1 << 20) {
                                   throw std::invalid_argument("rank " + std::to_string(rank) + " of " +
                                                               std::to_string(world) + " is out of range");
                                 }
                                 data::TokenShard shard =
                                     file->ReadShard(static_cast<uint64_t>(sequence), seq_len,
                                                     static_cast<int>(rank), static_cast<int>(world));
                                 Napi::Object result = Napi::Object::New(env);
                                 result.Set("inputIds", ToInt32Array(env, shard.input_ids));
                                 result.Set("labels", ToInt32Array(env, shard.labels));
                                 result.Set("positions", ToInt32Array(env, shard.positions));
                                 result.Set("epoch", static_cast<double>(shard.epoch));
                                 result.Set("sequence", static_cast<double>(shard.sequence));
                                 return result;
                               });
                             },
                             "readShard"));

    out.Set("tokenAt", Napi::Function::New(
                           env,
                           [file](const Napi::CallbackInfo& info) -> Napi::Value {
                             int64_t index = IntegerArg(info, 0, "index", 0);
                             return Guarded(info.Env(), [&]() -> Napi::Value {
                               return Napi::Number::New(info.Env(), file->At(static_cast<uint64_t>(index)));
                             });
                           },
                           "tokenAt"));

    out.Set("close", Napi::Function::New(
                         env,
                         [file](const Napi::CallbackInfo& info) -> Napi::Value {
                           file->Close();
                           return info.Env().Undefined();
                         },
                         "close"));
    return out;
  });
}

}  // namespace

void RegisterData(Napi::Env env, Napi::Object exports) {
  exports.Set("openTokenFile", Napi::Function::New(env, OpenTokenFileJs, "openTokenFile"));
  exports.Set("zigzagPlan", Napi::Function::New(env, ZigzagPlanJs, "zigzagPlan"));
}

}  // namespace longctx::addon
