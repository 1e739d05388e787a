// Entry point of the longctx native addon.
#include <napi.h>

#include "addon/registry.h"

static Napi::Object InitLongctx(Napi::Env env, Napi::Object exports) {
  longctx::addon::RegisterSystem(env, exports);
  longctx::addon::RegisterComm(env, exports);
  longctx::addon::RegisterKernels(env, exports);
  longctx::addon::RegisterAttention(env, exports);
  longctx::addon::RegisterData(env, exports);
  longctx::addon::RegisterRing(env, exports);
  longctx::addon::RegisterTrainer(env, exports);
  longctx::addon::RegisterCuda(env, exports);
  return exports;
}

NODE_API_MODULE(longctx, InitLongctx)
