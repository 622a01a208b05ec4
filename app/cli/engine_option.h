// Where a command's model runs: this computer, or a remote engine (`l2a serve`) named by
// --engine tcp://HOST:PORT | tls://HOST:PORT | unix:PATH | ssh://[USER@]HOST[:PORT][/PATH/TO/l2a].
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "arguments.h"
#include "l2a/profiler/study.h"

namespace l2a::cli {

inline const OptionSpec kEngineOption{"--engine", true};
inline const OptionSpec kTokenFileOption{"--token-file", true};
inline const OptionSpec kTlsCaOption{"--tls-ca", true};

// Whether --engine names a remote engine.
bool remote_engine(const Arguments& args);

// The study the command runs on. Remote: connects (and for ssh:// first starts `l2a serve` on the
// host through the user's own ssh, forwarding a local socket to it); errors name the engine.
// Local with `tensor_parallel` > 1 (tensor_parallel_option.h): one rank of a group of that many
// processes, which rank 0 starts here.
std::unique_ptr<Study> open_study(const Arguments& args, int tensor_parallel = 1);

// The model the arguments name, as a study opens it: --model DIR (on a remote engine a folder
// under its --models), --demo (the engine's demo model), with the placement left at defaults.
ModelSpec model_spec(const Arguments& args);

// Threads and device for a command that computes: on this computer --threads is applied here
// (apply_threads) and the device checked (unless ""); on a remote engine both are the engine's, and
// `threads` gets --threads (0: the engine's default) for the run's spec. Returns what run
// summaries print about threads.
std::string prepare_compute(const Arguments& args, const std::string& device, int& threads);

// A token file's token: its first line, without surrounding white space. Throws l2a::Error
// naming the file when it cannot be read or is empty.
std::string read_token(const std::filesystem::path& path);

// --tls-ca's certificate authority for an engine at `url` ("" without the option): a usage error
// unless `url` is tls://, and read_pem_file's errors.
std::string read_tls_ca(const Arguments& args, const std::string& url);

}  // namespace l2a::cli
