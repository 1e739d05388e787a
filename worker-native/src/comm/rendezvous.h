// The rendezvous: how the ranks of one attempt of one job find each other through Redis and connect a
// full mesh of gloo TCP pairs.
//
// Every key lives under the attempt's prefix (gloo's PrefixStore over its RedisStore), so attempts and
// jobs never read each other's addresses. Before gloo exchanges addresses, each rank publishes an
// arrival key and waits for everyone's: when the timeout passes, the error names exactly the ranks
// whose keys are missing — gloo's own store timeout only lists key names, and only after a fixed 30 s.
#pragma once

#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <string>

#include "comm/communicator.h"

namespace gloo {
class Context;
}

namespace longctx::comm {

struct Mesh {
  std::shared_ptr<gloo::Context> context;  // connected to every other rank
  // The far end of the connection to each peer as gloo may print it ("[127.0.0.1]:40123") → its rank.
  std::map<std::string, int> peer_addresses;
};

// Throws CommError naming the option at fault.
void ValidateOptions(const CommOptions& options);

// Blocks until all options.size ranks arrived and connected, or throws CommError within about
// options.timeout (Redis unreachable, prefix already used by this rank, ranks missing, connect failed).
Mesh Rendezvous(const CommOptions& options);

namespace detail {
// A gloo exception's message without the "[/path/file.cc:123] " location gloo puts in front.
std::string GlooMessage(const std::exception& error);
// "2.0 s", "0.250 s".
std::string FormatSeconds(std::chrono::milliseconds duration);
}  // namespace detail

}  // namespace longctx::comm
