#pragma once
// What a run may ask of the machine, checked before any work: memory for the batch a command
// asks for, and text files (JSON specs and mixtures) read whole with clear errors.
#include <cstdint>
#include <string>

namespace sdekit {

/// Bytes of memory this process can still use: the smaller of /proc/meminfo's MemAvailable and
/// the cgroup's memory.max less memory.current, where they exist; 0 when neither is known.
uint64_t available_memory_bytes();

/// Throws std::invalid_argument("WHAT: needs about X GiB of memory, more than the Y GiB
/// available") when `bytes` exceeds available_memory_bytes() (no check when that is unknown).
/// `what` names the flag or field and its value, e.g. "--n 1000000000".
void require_memory(const std::string& what, double bytes);

/// The whole text file at `path`. Throws std::invalid_argument naming `what` and the path when
/// it does not exist, is a directory or not a regular file, cannot be read, or is larger than
/// `max_bytes`.
std::string read_text_file(const std::string& path, const std::string& what,
                           std::uintmax_t max_bytes = std::uintmax_t{64} << 20);

}  // namespace sdekit
