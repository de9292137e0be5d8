#pragma once
// Runs over several processes (docs/theory.md section 10): torchrun's launch contract (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), a c10d TCPStore for the rendezvous and a
// ProcessGroupGloo for the collectives. Without WORLD_SIZE (or with WORLD_SIZE=1) there is one
// process and every call here is a local no-op, so the commands run as in one process.
//
// Failures: a collective or a store wait that does not complete within the session's timeout
// throws DistributedError naming the ranks that are behind or gone (each rank keeps a
// heartbeat and the count of collectives it entered in the store); a rank that cannot reach the
// store fails with a message naming MASTER_ADDR:MASTER_PORT.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sdekit::dist {

/// A distributed run failed (a peer died, hung, or the store is gone).
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// torchrun's variables. world == 1 when WORLD_SIZE is absent.
struct LaunchEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string addr = "127.0.0.1";
  int port = 29500;
  /// torchrun's static rendezvous (TORCHELASTIC_USE_AGENT_STORE=True): its agent already hosts
  /// the store at MASTER_ADDR:MASTER_PORT, so every rank joins it as a client; the keys of this
  /// attempt (TORCHELASTIC_RESTART_COUNT) are kept apart from earlier ones.
  bool agent_store = false;
  int attempt = 0;
};
/// Reads the environment; std::invalid_argument naming the variable for a malformed value, a
/// rank outside [0, WORLD_SIZE), or WORLD_SIZE > 1 without MASTER_ADDR / MASTER_PORT.
LaunchEnv launch_env();
/// Whether this build has the Gloo process group.
bool gloo_available();

/// The process group of this process while it lives (one per process): created by
/// Session::start, torn down by its destructor.
class Session {
 public:
  /// Joins the group described by `env` (a no-op for world 1). `timeout`: how long a rank
  /// waits for the store and for the others at any collective.
  static std::unique_ptr<Session> start(const LaunchEnv& env, std::chrono::milliseconds timeout);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  struct Impl;

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

int rank();
int world();
/// LOCAL_RANK: the rank on this machine (the GPU a rank takes: cuda:LOCAL_RANK).
int local_rank();
inline bool active() {
  return world() > 1;
}
/// Rank 0 writes results and prints; the others compute their share.
inline bool writer() {
  return rank() == 0;
}
/// This rank's contiguous share [lo, hi) of n rows: lo = floor(n r / W).
std::pair<int64_t, int64_t> shard(int64_t n);

/// Sums a float64 (or int64) tensor over the ranks, in place, and returns it (a tensor that is
/// not a contiguous CPU tensor travels through a contiguous CPU copy). `what` names the collective
/// in errors.
at::Tensor& all_reduce_sum(at::Tensor& t, const std::string& what);
/// Every rank's shard of rows (each [n_r, ...], same trailing shape and dtype), concatenated in
/// rank order on every rank, on `local`'s device: the rows of shard() put back together.
at::Tensor all_gather_rows(const at::Tensor& local, const std::string& what);
/// Rank 0's tensor in `t` on every rank (same shape and dtype everywhere), in place.
void broadcast_tensor(at::Tensor& t, const std::string& what);
/// `text` of rank 0 on every rank.
std::string broadcast_text(const std::string& text, const std::string& what);

/// A shared counter (first call returns 0, then 1, ...): the cells of a queue.
int64_t queue_next(const std::string& name);
/// Key-value pairs through the store, for results handed to rank 0.
void put(const std::string& key, const std::string& value);
/// Waits (the session's timeout) for `key`; DistributedError naming the ranks that are late.
std::string take(const std::string& key, const std::string& what);
/// Waits for `key`, which rank `owner` puts: DistributedError naming the owner when its
/// heartbeat stops (within a few seconds) or when the key has not come within the session's
/// timeout.
std::string take_from(const std::string& key, int owner, const std::string& what);
/// The end of a run: rank 0 (which hosts the store) waits until the others have left; the others
/// wait while rank 0 lives (its heartbeat) for it to finish. A no-op in one process.
void finish();
bool has(const std::string& key);

/// Bytes this rank sent through collectives and the store since the counter was last reset.
uint64_t bytes_sent();
void reset_bytes_sent();

}  // namespace sdekit::dist
