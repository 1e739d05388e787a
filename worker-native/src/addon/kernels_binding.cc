#include "addon/registry.h"
namespace longctx::addon {
void RegisterKernels(Napi::Env env, Napi::Object exports) {}
}  // namespace longctx::addon
