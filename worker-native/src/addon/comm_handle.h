// Lets other bindings (ring attention, the trainer) use the native communicator behind a
// JavaScript Communicator object from createCommunicator().
#pragma once

#include <napi.h>

#include <memory>

#include "comm/communicator.h"

namespace longctx::addon {

// Throws a TypeError when `value` is not a Communicator, and an Error when it was closed.
std::shared_ptr<comm::Communicator> CommunicatorFromJs(Napi::Value value);

}  // namespace longctx::addon
