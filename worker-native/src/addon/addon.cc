// Entry point of the longctx native addon: the production areas, then the bindings that exist
// for tests and benchmarks only. Both land on one exports object, so JavaScript sees one API.
#include <napi.h>

#include "addon/registry.h"
#include "addon/testing/testing.h"

static Napi::Object InitLongctx(Napi::Env env, Napi::Object exports) {
  longctx::addon::RegisterSystem(env, exports);
  longctx::addon::RegisterComm(env, exports);
  longctx::addon::RegisterData(env, exports);
  longctx::addon::RegisterArena(env, exports);
  longctx::addon::RegisterModel(env, exports);
  longctx::addon::RegisterTrainer(env, exports);
  longctx::addon::RegisterCuda(env, exports);
  longctx::addon::testing::Register(env, exports);
  return exports;
}

NODE_API_MODULE(longctx, InitLongctx)
