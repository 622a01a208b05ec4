// --engine ssh://[USER@]HOST[:PORT][/PATH/TO/l2a][?models=DIR&docs=DIR&shape=NAME]: starts
// `l2a serve` on HOST through the user's own ssh (their keys, agent and ~/.ssh/config: no new
// credentials), on a Unix socket of the host that ssh forwards to a private local socket, and
// connects to it. The server ends when the connection does. L2A_SSH replaces the ssh program
// and its options ("ssh -F my_config").
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "l2a/profiler/study.h"

namespace l2a::remote {

std::unique_ptr<Study> open_ssh_study(const std::string& url,
                                      const std::atomic<bool>* cancel = nullptr);

// Throws l2a::Error naming the URL when it is not a valid ssh:// engine.
void check_ssh_url(const std::string& url);

}  // namespace l2a::remote
