// The trainer as JavaScript sees it (worker-native/trainer.ts types it):
//   const trainer = await createTrainer(communicator | null, options);
//   await trainer.accumulate(ids, positions, labels, accumulationSteps)   × A
//   await trainer.step(lr)
//   await trainer.evaluate(ids, positions, labels, embeddings?)           (loss and argmax hits only)
//   trainer.snapshot(into?) / await trainer.startSnapshot(into?) / trainer.load(state)   (checkpoints)
// Long operations (construction, accumulate, evaluate, reduceGradients, step) run on the libuv pool
// and return Promises; they are collectives when world > 1, so every rank calls them in the same
// order. One operation at a time: a call while another runs is refused with "busy" (a rejected
// Promise, or a thrown Error for the synchronous methods), since the native buffers are in use. The
// one overlap allowed: while startSnapshot() copies the parameters and moments, the operations that
// leave them alone (accumulate, evaluate, reduceGradients, gradients, memory) may run.
// Errors name the argument or field; out-of-memory errors carry the arena's message and
// code 'ERR_LONGCTX_OUT_OF_MEMORY'.
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "addon/comm_handle.h"
#include "addon/napi_toolkit.h"
#include "addon/registry.h"
#include "train/trainer.h"

namespace longctx::addon {

namespace {

using train::Trainer;

// The native trainer behind one JavaScript Trainer object.
struct TrainerHandle {
  std::unique_ptr<Trainer> trainer;
  const char* running = nullptr;  // the operation in flight (main thread only)
  bool copying = false;           // a startSnapshot() copy is in flight (main thread only)
};

// Runs `work` on the pool; `on_done` runs on the main thread when it is over (clears the busy mark).
template <typename Result>
Napi::Promise Queue(Napi::Env env, std::function<Result()> work, ToJs<Result> to_js,
                    std::function<void()> on_done = {}) {
  AsyncOptions options;
  options.on_done = std::move(on_done);
  return RunAsync<Result>(
      env, [work = std::move(work)](const ReportProgress&) { return work(); }, std::move(to_js),
      std::move(options));
}

// What an operation does to the state a startSnapshot() copy reads (parameters, AdamW moments).
enum class Touches { kNothingCopied, kCopiedState };

// Empty when `what` may run now; otherwise why not. Operations that leave the parameters and moments
// alone may run while a startSnapshot() copy is in flight; the others wait for it.
std::string Refusal(const TrainerHandle& h, const char* what, Touches touches = Touches::kCopiedState) {
  if (!h.trainer) return std::string("Trainer.") + what + ": the trainer is closed";
  if (h.running != nullptr)
    return std::string("Trainer.") + what + ": busy — " + h.running +
           "() is still running; await it before calling " + what + "()";
  if (h.copying && touches == Touches::kCopiedState)
    return std::string("Trainer.") + what +
           ": busy — startSnapshot() is still copying; await it before calling " + what + "()";
  return "";
}

void CheckIdle(const Napi::CallbackInfo& info, const TrainerHandle& h, const char* what,
               Touches touches = Touches::kCopiedState) {
  const std::string refusal = Refusal(h, what, touches);
  if (!refusal.empty()) throw Napi::Error::New(info.Env(), refusal);
}

// --- options --------------------------------------------------------------------------------------

// A non-negative integer exactly representable in a double.
double WholeField(const Napi::CallbackInfo& info, Napi::Object o, const char* field) {
  const double x = NumberField(o, "options", field);
  if (!(x >= 0) || x != std::trunc(x) || x > 9007199254740992.0)
    ThrowTypeError(info.Env(), std::string("options.") + field + " must be a non-negative integer, got " +
                                   o.Get(field).ToString().Utf8Value());
  return x;
}

train::TrainerOptions OptionsFromJs(const Napi::CallbackInfo& info, Napi::Object o, int rank) {
  train::TrainerOptions t;
  t.config = Qwen2ConfigFromJs(info, ObjectField(o, "options", "config"), "options.config");
  t.seed = static_cast<uint64_t>(WholeField(info, o, "seed"));
  t.device_budget_bytes = static_cast<size_t>(WholeField(info, o, "deviceBudgetBytes"));
  t.host_budget_bytes = static_cast<size_t>(WholeField(info, o, "hostBudgetBytes"));
  CallNative(info.Env(), [&] {
    t.checkpointing = train::CheckpointPolicy::Parse(StringField(o, "options", "activationCheckpointing"),
                                                     "options.activationCheckpointing");
    t.offload = train::ParseOffload(StringField(o, "options", "offload"), "options.offload");
  });
  Napi::Object opt = ObjectField(o, "options", "optimizer");
  t.optimizer.beta1 = NumberField(opt, "options.optimizer", "beta1");
  t.optimizer.beta2 = NumberField(opt, "options.optimizer", "beta2");
  t.optimizer.eps = NumberField(opt, "options.optimizer", "eps");
  t.optimizer.weight_decay = NumberField(opt, "options.optimizer", "weightDecay");
  t.optimizer.grad_clip = NumberField(opt, "options.optimizer", "gradClip");
  CallNative(info.Env(), [&] {
    try {
      t.optimizer.Validate();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("options.") + e.what());
    }
  });
  t.ce_chunk_tokens = IntField(o, "options", "ceChunkTokens", t.ce_chunk_tokens);
  if (t.ce_chunk_tokens <= 0)
    ThrowTypeError(info.Env(), "options.ceChunkTokens must be a positive integer, got " +
                                   std::to_string(t.ce_chunk_tokens));
  t.initializer_range = NumberField(o, "options", "initializerRange", t.initializer_range);
  if (!(t.initializer_range > 0) || !std::isfinite(t.initializer_range))
    ThrowTypeError(info.Env(), "options.initializerRange must be a positive finite number");
  t.device_label = "device cpu:" + std::to_string(rank);
  if (!o.Get("device").IsUndefined()) {
    // "cuda:<index>" trains on that CUDA device (train/backend.h); anything else names a CPU device.
    const std::string device = StringField(o, "options", "device");
    t.device_label = "device " + device;
    if (device.rfind("cuda:", 0) == 0) {
      const std::string index = device.substr(5);
      if (index.empty() || index.size() > 4 || index.find_first_not_of("0123456789") != std::string::npos)
        ThrowTypeError(info.Env(),
                       "options.device must be 'cuda:<index>' or a CPU device name, got '" + device + "'");
      t.cuda_device = std::stoi(index);
    }
  }
  t.collectives = StringField(o, "options", "collectives", t.collectives);
  if (t.collectives != "auto" && t.collectives != "nccl" && t.collectives != "staged")
    ThrowTypeError(info.Env(),
                   "options.collectives must be 'auto', 'nccl' or 'staged', got '" + t.collectives + "'");
  return t;
}

// --- arguments ------------------------------------------------------------------------------------

struct Tokens {
  std::vector<int32_t> ids, positions, labels;
  int count() const { return static_cast<int>(ids.size()); }
};

// ids, positions, labels at arguments 0..2: copied, so JavaScript may reuse its arrays at once.
Tokens TokensArg(const Napi::CallbackInfo& info) {
  Tokens t{CopyArg<int32_t>(info, 0, "ids"), CopyArg<int32_t>(info, 1, "positions"),
           CopyArg<int32_t>(info, 2, "labels")};
  if (t.ids.size() > 2147483647u) ThrowRangeError(info.Env(), "ids holds more than 2^31-1 tokens");
  for (auto [name, a] : {std::pair{"positions", &t.positions}, std::pair{"labels", &t.labels}}) {
    if (a->size() != t.ids.size())
      ThrowRangeError(info.Env(), std::string(name) + " has " + std::to_string(a->size()) +
                                      " elements, ids has " + std::to_string(t.ids.size()));
  }
  return t;
}

// --- results --------------------------------------------------------------------------------------

Napi::Object MemoryToJs(Napi::Env env, const train::MemoryStats& m) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("deviceCurrent", static_cast<double>(m.device_current));
  out.Set("devicePeak", static_cast<double>(m.device_peak));
  out.Set("deviceBudget", static_cast<double>(m.device_budget));
  out.Set("hostCurrent", static_cast<double>(m.host_current));
  out.Set("hostPeak", static_cast<double>(m.host_peak));
  out.Set("hostBudget", static_cast<double>(m.host_budget));
  return out;
}

Napi::Value MicroStepToJs(Napi::Env env, train::MicroStepStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("lossSum", s.loss_sum);
  out.Set("tokens", static_cast<double>(s.tokens));
  out.Set("globalLossSum", s.global_loss_sum);
  out.Set("globalTokens", static_cast<double>(s.global_tokens));
  out.Set("loss", s.global_tokens > 0 ? s.global_loss_sum / static_cast<double>(s.global_tokens) : 0.0);
  out.Set("computeSeconds", s.compute_seconds);
  out.Set("commWaitSeconds", s.comm_wait_seconds);
  out.Set("bytesSent", static_cast<double>(s.bytes_sent));
  out.Set("memory", MemoryToJs(env, s.memory));
  return out;
}

Napi::Value EvalToJs(Napi::Env env, train::EvalStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("lossSum", s.loss_sum);
  out.Set("tokens", static_cast<double>(s.tokens));
  out.Set("globalLossSum", s.global_loss_sum);
  out.Set("globalTokens", static_cast<double>(s.global_tokens));
  out.Set("loss", s.global_tokens > 0 ? s.global_loss_sum / static_cast<double>(s.global_tokens) : 0.0);
  out.Set("argmaxCorrect", static_cast<double>(s.argmax_correct));
  out.Set("globalArgmaxCorrect", static_cast<double>(s.global_argmax_correct));
  return out;
}

Napi::Value StepToJs(Napi::Env env, train::StepStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("gradNorm", s.grad_norm);
  out.Set("clipCoefficient", s.clip_coefficient);
  out.Set("optimizerSeconds", s.optimizer_seconds);
  out.Set("commWaitSeconds", s.comm_wait_seconds);
  out.Set("adamStep", static_cast<double>(s.adam_step));
  out.Set("memory", MemoryToJs(env, s.memory));
  return out;
}

// --- the Trainer object ---------------------------------------------------------------------------

using Method = std::function<Napi::Value(const Napi::CallbackInfo&, const std::shared_ptr<TrainerHandle>&)>;

// Starts `work` as operation `what`: refused while another runs; busy until the worker is gone.
template <typename Result>
Napi::Value Start(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h, const char* what,
                  std::function<Result(Trainer&)> work, ToJs<Result> to_js,
                  Touches touches = Touches::kCopiedState) {
  const std::string refusal = Refusal(*h, what, touches);
  if (!refusal.empty()) return Rejected(info.Env(), refusal);
  h->running = what;
  Trainer* trainer = h->trainer.get();
  return Queue<Result>(
      info.Env(), [trainer, work = std::move(work)] { return work(*trainer); }, std::move(to_js),
      [h] { h->running = nullptr; });
}

// A positive integer argument.
int CountArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double x = NumberArg(info, index, name);
  if (!(x >= 1) || x != std::trunc(x) || x > 2147483647.0)
    ThrowTypeError(info.Env(), "argument " + std::to_string(index) + " (" + name +
                                   ") must be an integer >= 1, got " + info[index].ToString().Utf8Value());
  return static_cast<int>(x);
}

// accumulate(ids, positions, labels, accumulationSteps) → Promise<MicroStepResult>
Napi::Value Accumulate(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  auto tokens = std::make_shared<Tokens>(TokensArg(info));
  const int accumulation = CountArg(info, 3, "accumulationSteps");
  return Start<train::MicroStepStats>(
      info, h, "accumulate",
      [tokens, accumulation](Trainer& t) {
        return t.Accumulate(tokens->ids.data(), tokens->positions.data(), tokens->labels.data(),
                            tokens->count(), accumulation);
      },
      MicroStepToJs, Touches::kNothingCopied);
}

// Input embeddings for marked spans (argument 3, optional): [{start, rows: Float32Array}], copied
// like the tokens. Their rows and ranges are checked on the work's thread, against the model.
struct Embeddings {
  std::vector<std::vector<float>> rows;
  std::vector<model::EmbeddingSpan> spans;
};

Embeddings EmbeddingsArg(const Napi::CallbackInfo& info, size_t index) {
  Embeddings e;
  if (IsAbsent(info, index)) return e;
  if (!info[index].IsArray())
    ThrowTypeError(info.Env(), ArgName(index, "embeddings") + " must be an array of {start, rows}");
  const auto list = info[index].As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    const std::string name = "embeddings[" + std::to_string(i) + "]";
    if (!list.Get(i).IsObject()) ThrowTypeError(info.Env(), name + " must be an object {start, rows}");
    const auto span = list.Get(i).As<Napi::Object>();
    const int first = static_cast<int>(IntegerField(span, name, "start", 0, 2147483647));
    const Napi::Value rows = span.Get("rows");
    if (!IsTypedArrayOf(rows, napi_float32_array))
      ThrowTypeError(info.Env(), name + ".rows must be a Float32Array");
    const auto values = rows.As<Napi::Float32Array>();
    e.rows.emplace_back(values.Data(), values.Data() + values.ElementLength());
    e.spans.push_back({first, static_cast<int64_t>(values.ElementLength()), nullptr});
  }
  // The vectors are in place now: point the spans at them.
  for (size_t i = 0; i < e.spans.size(); ++i) e.spans[i].values = e.rows[i].data();
  return e;
}

// evaluate(ids, positions, labels, embeddings?) → Promise<EvalResult>
Napi::Value Evaluate(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  auto tokens = std::make_shared<Tokens>(TokensArg(info));
  auto embeddings = std::make_shared<Embeddings>(EmbeddingsArg(info, 3));
  return Start<train::EvalStats>(
      info, h, "evaluate",
      [tokens, embeddings](Trainer& t) {
        return t.Evaluate(tokens->ids.data(), tokens->positions.data(), tokens->labels.data(),
                          tokens->count(), embeddings->spans);
      },
      EvalToJs, Touches::kNothingCopied);
}

// reduceGradients() → Promise<{commWaitSeconds}>
Napi::Value ReduceGradients(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  return Start<double>(
      info, h, "reduceGradients", [](Trainer& t) { return t.ReduceGradients(); },
      [](Napi::Env env, double& waited) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("commWaitSeconds", waited);
        return out;
      },
      Touches::kNothingCopied);
}

// step(lr) → Promise<StepResult>
Napi::Value Step(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  const double lr = NumberArg(info, 0, "lr");
  return Start<train::StepStats>(
      info, h, "step", [lr](Trainer& t) { return t.Step(lr); }, StepToJs);
}

Napi::Value Gradients(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  CheckIdle(info, *h, "gradients", Touches::kNothingCopied);
  const Trainer& t = *h->trainer;
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(t.num_parameters()));
  CallNative(info.Env(), [&] { t.CopyToHost(out.Data(), t.grads(), t.num_parameters()); });
  return out;
}

// What a snapshot copies: the flat parameters and this rank's shard of both AdamW moments.
struct SnapshotPart {
  const char* field;
  const float* data;
  int64_t count;
};

std::vector<SnapshotPart> SnapshotParts(const Trainer& t) {
  return {{"params", t.params(), t.num_parameters()},
          {"expAvg", t.exp_avg(), t.shard().size()},
          {"expAvgSq", t.exp_avg_sq(), t.shard().size()}};
}

// The snapshot object, not yet filled: new arrays, or with `into` (argument 0, an earlier snapshot
// no longer in use) its arrays, checked before anything is written so a bad `into` changes nothing.
// Reusing them saves allocating and first-touching hundreds of megabytes per checkpoint.
Napi::Object SnapshotTarget(const Napi::CallbackInfo& info, const Trainer& t,
                            const std::vector<SnapshotPart>& parts) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  if (info.Length() < 1 || info[0].IsUndefined()) {
    for (const SnapshotPart& p : parts)
      out.Set(p.field, Napi::Float32Array::New(env, static_cast<size_t>(p.count)));
  } else {
    Napi::Object into = ObjectArg(info, 0, "into");
    for (const SnapshotPart& p : parts) {
      Napi::Value v = into.Get(p.field);
      if (!IsTypedArrayOf(v, napi_float32_array))
        ThrowTypeError(info.Env(), std::string("into.") + p.field + " must be a Float32Array");
      const auto length = static_cast<int64_t>(v.As<Napi::Float32Array>().ElementLength());
      if (length != p.count)
        throw Napi::RangeError::New(env, std::string("into.") + p.field + " has " + std::to_string(length) +
                                             " values, the snapshot needs " + std::to_string(p.count));
    }
    for (const SnapshotPart& p : parts) out.Set(p.field, into.Get(p.field));
  }
  out.Set("adamStep", static_cast<double>(t.adam_step()));
  return out;
}

// Where each part goes in `target`'s arrays (valid while the arrays are alive and not detached).
std::vector<float*> SnapshotDestinations(Napi::Object target, const std::vector<SnapshotPart>& parts) {
  std::vector<float*> out;
  for (const SnapshotPart& p : parts) out.push_back(target.Get(p.field).As<Napi::Float32Array>().Data());
  return out;
}

// Through the trainer: on a GPU the parts are device memory.
void CopyParts(const Trainer& t, const std::vector<SnapshotPart>& parts, const std::vector<float*>& to) {
  for (size_t i = 0; i < parts.size(); ++i)
    if (parts[i].count > 0) t.CopyToHost(to[i], parts[i].data, parts[i].count);
}

// snapshot(into?) → {params, expAvg, expAvgSq, adamStep}: copies, for a checkpoint, on this thread.
Napi::Value Snapshot(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  CheckIdle(info, *h, "snapshot");
  const auto parts = SnapshotParts(*h->trainer);
  Napi::Object out = SnapshotTarget(info, *h->trainer, parts);
  CallNative(info.Env(), [&] { CopyParts(*h->trainer, parts, SnapshotDestinations(out, parts)); });
  return out;
}

// startSnapshot(into?) → Promise<{params, expAvg, expAvgSq, adamStep}>: the same copies, made on a
// worker thread so that a training loop need not wait for them. Only step() and load() change what
// is copied, so accumulate(), evaluate() and reduceGradients() may run meanwhile (the next
// micro-batch overlaps the copy); step, load, snapshot, startSnapshot and close are refused as busy
// until the Promise settles. The arrays must not be transferred while the copy runs.
Napi::Value StartSnapshot(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  const std::string refusal = Refusal(*h, "startSnapshot");
  if (!refusal.empty()) return Rejected(info.Env(), refusal);
  const auto parts = SnapshotParts(*h->trainer);
  Napi::Object out = SnapshotTarget(info, *h->trainer, parts);
  const auto to = SnapshotDestinations(out, parts);
  // Keeps the arrays alive until the copy is done; made and released on the main thread.
  auto keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out));
  h->copying = true;
  return Queue<bool>(
      info.Env(),
      [parts, to, trainer = &*h->trainer] {
        CopyParts(*trainer, parts, to);
        return true;
      },
      [keep](Napi::Env, bool&) -> Napi::Value { return keep->Value(); }, [h] { h->copying = false; });
}

// load({params?, expAvg?, expAvgSq?, adamStep?}): everything is checked before anything changes.
Napi::Value Load(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  CheckIdle(info, *h, "load");
  Trainer& t = *h->trainer;
  Napi::Object state = ObjectArg(info, 0, "state");
  auto array = [&](const char* field, int64_t expected, const std::string& what) -> const float* {
    Napi::Value v = state.Get(field);
    if (v.IsUndefined()) return nullptr;
    if (!IsTypedArrayOf(v, napi_float32_array))
      ThrowTypeError(info.Env(), std::string("state.") + field + " must be a Float32Array");
    auto a = v.As<Napi::Float32Array>();
    if (static_cast<int64_t>(a.ElementLength()) != expected)
      throw Napi::RangeError::New(info.Env(), std::string("state.") + field + " has " +
                                                  std::to_string(a.ElementLength()) + " values, " + what);
    return a.Data();
  };
  const train::ShardRange shard = t.shard();
  const std::string shard_text = "this rank's optimizer shard [" + std::to_string(shard.begin) + ", " +
                                 std::to_string(shard.end) + ") has " + std::to_string(shard.size()) +
                                 " (rank " + std::to_string(t.rank()) + " of " + std::to_string(t.world()) +
                                 ")";
  const float* params = array("params", t.num_parameters(),
                              "the model has " + std::to_string(t.num_parameters()) + " parameters");
  const float* exp_avg = array("expAvg", shard.size(), shard_text);
  const float* exp_avg_sq = array("expAvgSq", shard.size(), shard_text);
  std::optional<int64_t> step;
  Napi::Value s = state.Get("adamStep");
  if (!s.IsUndefined()) {
    const double x = s.IsNumber() ? s.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x != std::trunc(x) || x > 9007199254740992.0)
      ThrowTypeError(info.Env(),
                     "state.adamStep must be a non-negative integer, got " + s.ToString().Utf8Value());
    step = static_cast<int64_t>(x);
  }
  CallNative(info.Env(), [&] { t.Load(params, exp_avg, exp_avg_sq, step ? &*step : nullptr); });
  return info.Env().Undefined();
}

Napi::Value Memory(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  CheckIdle(info, *h, "memory", Touches::kNothingCopied);
  return MemoryToJs(info.Env(), h->trainer->memory());
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  CheckIdle(info, *h, "resetPeak", Touches::kNothingCopied);
  h->trainer->ResetPeak();
  return info.Env().Undefined();
}

// close(): frees the trainer's memory now. Closing twice is a no-op; closing while busy throws.
Napi::Value Close(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  if (!h->trainer) return info.Env().Undefined();
  CheckIdle(info, *h, "close");
  h->trainer.reset();
  return info.Env().Undefined();
}

Napi::Value ParameterViews(const Napi::CallbackInfo& info, const std::shared_ptr<TrainerHandle>& h) {
  CheckIdle(info, *h, "parameterViews", Touches::kNothingCopied);
  Napi::Env env = info.Env();
  const auto& views = h->trainer->layout().views();
  Napi::Array out = Napi::Array::New(env, views.size());
  for (size_t i = 0; i < views.size(); ++i) {
    const model::ParamView& v = views[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", v.name);
    o.Set("offset", static_cast<double>(v.offset));
    Napi::Array shape = Napi::Array::New(env, v.shape.size());
    for (size_t d = 0; d < v.shape.size(); ++d) shape.Set(d, static_cast<double>(v.shape[d]));
    o.Set("shape", shape);
    o.Set("numel", static_cast<double>(v.numel));
    o.Set("weightDecay", v.weight_decay);
    out.Set(i, o);
  }
  return out;
}

Napi::Object TrainerObject(Napi::Env env, std::unique_ptr<Trainer> trainer) {
  auto h = std::make_shared<TrainerHandle>();
  h->trainer = std::move(trainer);
  const Trainer& t = *h->trainer;
  Napi::Object out = Napi::Object::New(env);
  out.Set("numParameters", static_cast<double>(t.num_parameters()));
  out.Set("rank", t.rank());
  out.Set("world", t.world());
  Napi::Object shard = Napi::Object::New(env);
  shard.Set("begin", static_cast<double>(t.shard().begin));
  shard.Set("end", static_cast<double>(t.shard().end));
  out.Set("shard", shard);
  out.Set("activationCheckpointing", t.options().checkpointing.name());
  out.Set("offload", train::OffloadName(t.options().offload));
  out.Set("backend", t.backend().name());
  out.Set("collectives", t.backend().collectives());
  auto method = [&](const char* name, Method fn) {
    out.Set(name, Napi::Function::New(
                      env, [h, fn](const Napi::CallbackInfo& info) { return fn(info, h); }, name));
  };
  method("accumulate", Accumulate);
  method("evaluate", Evaluate);
  method("reduceGradients", ReduceGradients);
  method("step", Step);
  method("gradients", Gradients);
  method("snapshot", Snapshot);
  method("startSnapshot", StartSnapshot);
  method("load", Load);
  method("memory", Memory);
  method("resetPeak", ResetPeak);
  method("close", Close);
  method("parameterViews", ParameterViews);
  return out;
}

// createTrainer(communicator | null, options) → Promise<Trainer>
Napi::Value CreateTrainer(const Napi::CallbackInfo& info) {
  std::shared_ptr<comm::Communicator> comm;
  if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) comm = CommunicatorFromJs(info[0]);
  train::TrainerOptions options = OptionsFromJs(info, ObjectArg(info, 1, "options"), comm ? comm->rank() : 0);
  return Queue<std::unique_ptr<Trainer>>(
      info.Env(), [comm, options] { return std::make_unique<Trainer>(comm, options); },
      [](Napi::Env env, std::unique_ptr<Trainer>& trainer) -> Napi::Value {
        return TrainerObject(env, std::move(trainer));
      });
}

}  // namespace

void RegisterTrainer(Napi::Env env, Napi::Object exports) {
  exports.Set("createTrainer", Napi::Function::New(env, CreateTrainer, "createTrainer"));
}

}  // namespace longctx::addon
