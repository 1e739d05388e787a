#include "addon/registry.h"
namespace longctx::addon {
void RegisterComm(Napi::Env env, Napi::Object exports) {}
}  // namespace longctx::addon
