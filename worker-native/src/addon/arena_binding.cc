// The Arena as a JavaScript class, so tests (and later the host-side offload code) can allocate
// counted memory and read the counters:
//   const a = new Arena('device cpu:3', 64 << 20);  a.allocate(bytes) → block id;  a.free(id);
//   a.stats() → {current, peak, budget, liveBlocks};  a.resetPeak()
// An allocation past the budget throws an Error with the arena's message and code
// 'ERR_LONGCTX_OUT_OF_MEMORY' (plus requested, inUse and budget in bytes).
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "addon/napi_toolkit.h"
#include "addon/registry.h"
#include "tensor/arena.h"

namespace longctx::addon {

Napi::Object ArenaStatsToJs(Napi::Env env, const ArenaStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("current", static_cast<double>(s.current));
  out.Set("peak", static_cast<double>(s.peak));
  out.Set("budget", static_cast<double>(s.budget));
  out.Set("liveBlocks", static_cast<double>(s.live_blocks));
  return out;
}

namespace {

class ArenaWrap : public Napi::ObjectWrap<ArenaWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "Arena",
        {InstanceMethod<&ArenaWrap::Allocate>("allocate"), InstanceMethod<&ArenaWrap::Free>("free"),
         InstanceMethod<&ArenaWrap::Stats>("stats"), InstanceMethod<&ArenaWrap::ResetPeak>("resetPeak")});
  }

  explicit ArenaWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ArenaWrap>(info) {
    std::string label = StringArg(info, 0, "label");
    size_t budget = ByteCount(info, 1, "budgetBytes");
    if (label.empty()) ThrowTypeError(info.Env(), "argument 0 (label) must not be empty");
    arena_ = std::make_shared<Arena>(std::move(label), budget);
  }

 private:
  Napi::Value Allocate(const Napi::CallbackInfo& info) {
    const size_t bytes = ByteCount(info, 0, "bytes");
    try {
      blocks_.emplace(next_id_, ArenaBlock(arena_, bytes));
    } catch (const OutOfMemoryError& e) {
      throw OutOfMemoryToJs(info.Env(), e);
    }
    return Napi::Number::New(info.Env(), static_cast<double>(next_id_++));
  }

  Napi::Value Free(const Napi::CallbackInfo& info) {
    const double id = NumberArg(info, 0, "id");
    auto it = blocks_.find(static_cast<int64_t>(id));
    if (it == blocks_.end() || id != std::trunc(id)) {
      char text[32];
      std::snprintf(text, sizeof(text), "%.17g", id);
      throw Napi::Error::New(info.Env(),
                             std::string("no live block with id ") + text + " in " + arena_->label());
    }
    blocks_.erase(it);
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) { return ArenaStatsToJs(info.Env(), arena_->stats()); }

  Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
    arena_->ResetPeak();
    return info.Env().Undefined();
  }

  std::shared_ptr<Arena> arena_;
  std::map<int64_t, ArenaBlock> blocks_;
  int64_t next_id_ = 1;
};

}  // namespace

void RegisterArena(Napi::Env env, Napi::Object exports) { exports.Set("Arena", ArenaWrap::Define(env)); }

}  // namespace longctx::addon
