#include "experiments/distributed.hpp"

#include <atomic>
#include <cstdlib>
#include <sstream>
#include <thread>

#if SDEKIT_WITH_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace sdekit::dist {
namespace {

int env_int(const char* name, int fallback, bool* given = nullptr) {
  const char* v = std::getenv(name);
  if (given) *given = v != nullptr && *v != '\0';
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1000000)
    throw std::invalid_argument(std::string("environment variable ") + name +
                                ": expected a non-negative integer, got '" + v + "'");
  return static_cast<int>(x);
}

std::string seconds_text(std::chrono::milliseconds t) {
  std::ostringstream os;
  os << double(t.count()) / 1000.0 << " s";
  return os.str();
}

}  // namespace

LaunchEnv launch_env() {
  LaunchEnv e;
  bool world_given = false, rank_given = false, port_given = false;
  e.world = env_int("WORLD_SIZE", 1, &world_given);
  if (world_given && e.world < 1)
    throw std::invalid_argument("environment variable WORLD_SIZE: expected >= 1, got 0");
  e.rank = env_int("RANK", 0, &rank_given);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.port = env_int("MASTER_PORT", 29500, &port_given);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.addr = a;
  if (const char* a = std::getenv("TORCHELASTIC_USE_AGENT_STORE"); a && std::string(a) == "True")
    e.agent_store = true;
  e.attempt = env_int("TORCHELASTIC_RESTART_COUNT", 0);
  if (e.world > 1) {
    if (!rank_given)
      throw std::invalid_argument("WORLD_SIZE=" + std::to_string(e.world) +
                                  " but RANK is not set (launch with torchrun or sdekit launch)");
    if (e.rank >= e.world)
      throw std::invalid_argument("environment variable RANK=" + std::to_string(e.rank) +
                                  " lies outside [0, WORLD_SIZE=" + std::to_string(e.world) + ")");
    if (!std::getenv("MASTER_ADDR") || !port_given)
      throw std::invalid_argument("WORLD_SIZE=" + std::to_string(e.world) +
                                  " needs MASTER_ADDR and MASTER_PORT (the rendezvous store)");
    if (e.port < 1 || e.port > 65535)
      throw std::invalid_argument("environment variable MASTER_PORT: expected 1..65535, got " +
                                  std::to_string(e.port));
  }
  return e;
}

#if SDEKIT_WITH_GLOO
bool gloo_available() {
  return true;
}

struct Session::Impl {
  LaunchEnv env;
  std::chrono::milliseconds timeout{};
  c10::intrusive_ptr<c10d::TCPStore> store, beat_store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::thread beat;
  std::atomic<bool> stop{false};
  int64_t seq = 0, bcast = 0;
  uint64_t bytes = 0;

  std::string where() const { return env.addr + ":" + std::to_string(env.port); }
  std::string key(const std::string& k) const {
    return "sdekit/attempt_" + std::to_string(env.attempt) + "/" + k;
  }

  // Why the others did not answer: ranks whose heartbeat stopped (gone or stopped) and ranks
  // that entered fewer collectives than this one (behind), read from the store.
  std::string diagnose() {
    try {
      const auto read = [&](const std::string& k) -> int64_t {
        if (!store->check({key(k)})) return -1;
        const std::vector<uint8_t> v = store->get(key(k));
        return std::stoll(std::string(v.begin(), v.end()));
      };
      std::vector<int64_t> beats0(env.world), beats1(env.world), seqs(env.world);
      for (int r = 0; r < env.world; ++r)
        beats0[r] = store->add(key("beat/" + std::to_string(r)), 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      for (int r = 0; r < env.world; ++r) {
        beats1[r] = store->add(key("beat/" + std::to_string(r)), 0);
        seqs[r] = read("seq/" + std::to_string(r));
      }
      std::string gone, behind;
      for (int r = 0; r < env.world; ++r) {
        if (r == env.rank) continue;
        if (beats1[r] == beats0[r])
          gone += (gone.empty() ? "" : ", ") + std::to_string(r);
        else if (seqs[r] < seq)
          behind += (behind.empty() ? "" : ", ") + std::to_string(r);
      }
      std::string out;
      if (!gone.empty()) out += "rank " + gone + " stopped (no heartbeat)";
      if (!behind.empty())
        out += std::string(out.empty() ? "" : "; ") + "rank " + behind +
               " is alive but did not reach this point";
      return out.empty() ? "every rank still beats; the cause is in the message above" : out;
    } catch (const std::exception&) {
      return "the store at " + where() + " is gone: " +
             (env.agent_store ? std::string("torchrun's agent, which hosts it, has stopped")
                              : std::string("rank 0, which hosts it, has stopped"));
    }
  }

  [[noreturn]] void fail(const std::string& what, const std::exception& e) {
    std::string msg = e.what();
    if (const auto nl = msg.find('\n'); nl != std::string::npos) msg = msg.substr(0, nl);
    const bool timed_out =
        msg.find("imed out") != std::string::npos || msg.find("imeout") != std::string::npos;
    throw DistributedError(
        "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world) + ": " + what +
        (timed_out ? " did not complete within " + seconds_text(timeout) : std::string(" failed")) +
        " (" + msg + "): " + diagnose());
  }

  void enter(const std::string& what) {
    ++seq;
    try {
      const std::string v = std::to_string(seq);
      store->set(key("seq/" + std::to_string(env.rank)), std::vector<uint8_t>(v.begin(), v.end()));
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }

  void run(const std::string& what, const c10::intrusive_ptr<c10d::Work>& w) {
    try {
      w->wait(timeout);
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }
};

namespace {
Session::Impl* g_session = nullptr;
}

std::unique_ptr<Session> Session::start(const LaunchEnv& env, std::chrono::milliseconds timeout) {
  if (env.world <= 1) return std::unique_ptr<Session>(new Session(nullptr));
  if (g_session) throw std::logic_error("dist::Session::start: a session is already running");
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->timeout = timeout;
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(env.port);
  o.isServer = env.rank == 0 && !env.agent_store;
  o.numWorkers = env.world;
  o.waitWorkers = false;
  o.timeout = timeout;
  const std::string who = "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world);
  try {
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.addr, o);
    c10d::TCPStoreOptions b = o;
    b.isServer = false;
    impl->beat_store = c10::make_intrusive<c10d::TCPStore>(env.addr, b);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (const auto nl = msg.find('\n'); nl != std::string::npos) msg = msg.substr(0, nl);
    throw DistributedError(
        who + ": cannot " +
        (env.rank == 0 && !env.agent_store ? std::string("open") : std::string("reach")) +
        " the rendezvous store at " + impl->where() + " (MASTER_ADDR:MASTER_PORT) within " +
        seconds_text(timeout) + ": " + msg);
  }
  Impl* p = impl.get();
  p->beat_store->add(p->key("beat/" + std::to_string(env.rank)), 1);
  p->beat = std::thread([p] {
    const std::string k = p->key("beat/" + std::to_string(p->env.rank));
    while (!p->stop.load()) {
      try {
        p->beat_store->add(k, 1);
      } catch (const std::exception&) {
        return;  // the store is gone; the next collective reports it
      }
      for (int i = 0; i < 5 && !p->stop.load(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  try {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (env.addr == "localhost" || env.addr.rfind("127.", 0) == 0)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 1;
    c10::intrusive_ptr<c10d::Store> s =
        c10::make_intrusive<c10d::PrefixStore>(p->key("pg"), p->store);
    p->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(s, env.rank, env.world, opts);
  } catch (const std::exception& e) {
    p->stop = true;
    p->beat.join();
    g_session = p;
    try {
      p->fail("joining the process group", e);
    } catch (...) {
      g_session = nullptr;
      throw;
    }
  }
  g_session = p;
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Session::~Session() {
  if (!impl_) return;
  impl_->stop = true;
  if (impl_->beat.joinable()) impl_->beat.join();
  g_session = nullptr;
  impl_->pg.reset();
  impl_->beat_store.reset();
  impl_->store.reset();
}

int rank() {
  return g_session ? g_session->env.rank : 0;
}
int world() {
  return g_session ? g_session->env.world : 1;
}
int local_rank() {
  return g_session ? g_session->env.local_rank : 0;
}

at::Tensor& all_reduce_sum(at::Tensor& t, const std::string& what) {
  if (!g_session) return t;
  g_session->enter(what);
  // Gloo reduces contiguous host memory: anything else travels through a CPU copy.
  const bool direct = t.is_cpu() && t.is_contiguous();
  at::Tensor c = direct ? t : t.to(at::kCPU).contiguous();
  std::vector<at::Tensor> v{c};
  g_session->bytes += c.nbytes();
  g_session->run(what, g_session->pg->allreduce(v));
  if (!direct) t.copy_(c);
  return t;
}

at::Tensor all_gather_rows(const at::Tensor& local, const std::string& what) {
  if (!g_session) return local;
  const int W = g_session->env.world;
  at::Tensor counts = at::zeros({W}, at::kLong);
  counts[g_session->env.rank] = local.size(0);
  all_reduce_sum(counts, what + " (row counts)");
  const int64_t most = counts.max().item<int64_t>();
  std::vector<int64_t> shape(local.sizes().begin(), local.sizes().end());
  shape[0] = most;
  at::Tensor padded = at::zeros(shape, local.options().device(at::kCPU));
  padded.narrow(0, 0, local.size(0)).copy_(local);
  std::vector<std::vector<at::Tensor>> outs(1);
  for (int r = 0; r < W; ++r) outs[0].push_back(at::empty_like(padded));
  std::vector<at::Tensor> in{padded};
  g_session->enter(what);
  g_session->bytes += padded.nbytes();
  g_session->run(what, g_session->pg->allgather(outs, in));
  std::vector<at::Tensor> parts;
  for (int r = 0; r < W; ++r) parts.push_back(outs[0][r].narrow(0, 0, counts[r].item<int64_t>()));
  return at::cat(parts, 0).to(local.device());
}

void broadcast_tensor(at::Tensor& t, const std::string& what) {
  if (!g_session) return;
  at::Tensor c = t.to(at::kCPU).contiguous();
  std::vector<at::Tensor> v{c};
  g_session->enter(what);
  if (g_session->env.rank == 0) g_session->bytes += c.nbytes() * (g_session->env.world - 1);
  g_session->run(what, g_session->pg->broadcast(v));
  if (!c.is_same(t)) t.copy_(c);
}

std::string take_from(const std::string& key, int owner, const std::string& what) {
  if (!g_session) throw std::logic_error("dist::take_from outside a distributed session");
  Session::Impl& s = *g_session;
  using Clock = std::chrono::steady_clock;
  const std::string k = s.key("kv/" + key), beat = s.key("beat/" + std::to_string(owner));
  const auto start = Clock::now();
  auto last_change = start;
  int64_t last_beat = -1;
  const std::string who = "rank " + std::to_string(s.env.rank) + " of " +
                          std::to_string(s.env.world) + ": " + what + ": rank " +
                          std::to_string(owner);
  try {
    while (true) {
      if (s.store->check({k})) {
        const std::vector<uint8_t> v = s.store->get(k);
        return std::string(v.begin(), v.end());
      }
      const auto now = Clock::now();
      const int64_t b = s.store->add(beat, 0);
      if (b != last_beat) {
        last_beat = b;
        last_change = now;
      } else if (now - last_change > std::chrono::seconds(3)) {
        throw DistributedError(who + " stopped (no heartbeat for 3 s)");
      }
      if (now - start > s.timeout)
        throw DistributedError(who + " is alive but did not deliver within " +
                               seconds_text(s.timeout) +
                               " (--dist-timeout must exceed the longest cell)");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    s.fail(what, e);
  }
}

void finish() {
  if (!g_session) return;
  Session::Impl& s = *g_session;
  if (s.env.rank != 0) {
    take_from("done", 0, "waiting for rank 0 to finish");
    try {
      s.store->add(s.key("left"), 1);
    } catch (const std::exception&) {
    }
    return;
  }
  put("done", "1");
  // Rank 0 hosts the store: it leaves when the others have read that it is done.
  const auto start = std::chrono::steady_clock::now();
  try {
    while (s.store->add(s.key("left"), 0) < s.env.world - 1 &&
           std::chrono::steady_clock::now() - start < s.timeout)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } catch (const std::exception&) {
  }
}

std::string broadcast_text(const std::string& text, const std::string& what) {
  if (!g_session) return text;
  const std::string k = "bcast/" + std::to_string(++g_session->bcast);
  if (g_session->env.rank == 0) {
    put(k, text);
    return text;
  }
  return take(k, what);
}

int64_t queue_next(const std::string& name) {
  if (!g_session) throw std::logic_error("dist::queue_next outside a distributed session");
  try {
    g_session->bytes += 8;
    return g_session->store->add(g_session->key("queue/" + name), 1) - 1;
  } catch (const std::exception& e) {
    g_session->fail("taking the next cell of " + name, e);
  }
}

void put(const std::string& key, const std::string& value) {
  if (!g_session) throw std::logic_error("dist::put outside a distributed session");
  try {
    g_session->bytes += value.size();
    g_session->store->set(g_session->key("kv/" + key),
                          std::vector<uint8_t>(value.begin(), value.end()));
  } catch (const std::exception& e) {
    g_session->fail("handing over " + key, e);
  }
}

bool has(const std::string& key) {
  if (!g_session) return false;
  try {
    return g_session->store->check({g_session->key("kv/" + key)});
  } catch (const std::exception& e) {
    g_session->fail("looking up " + key, e);
  }
}

std::string take(const std::string& key, const std::string& what) {
  if (!g_session) throw std::logic_error("dist::take outside a distributed session");
  try {
    const std::string k = g_session->key("kv/" + key);
    g_session->store->wait({k}, g_session->timeout);
    const std::vector<uint8_t> v = g_session->store->get(k);
    return std::string(v.begin(), v.end());
  } catch (const std::exception& e) {
    g_session->fail(what, e);
  }
}

uint64_t bytes_sent() {
  return g_session ? g_session->bytes : 0;
}
void reset_bytes_sent() {
  if (g_session) g_session->bytes = 0;
}

#else  // no Gloo in this build: one process only

bool gloo_available() {
  return false;
}
struct Session::Impl {};
std::unique_ptr<Session> Session::start(const LaunchEnv& env, std::chrono::milliseconds) {
  if (env.world > 1)
    throw std::invalid_argument("WORLD_SIZE=" + std::to_string(env.world) +
                                ": this build has no Gloo process group (configure with "
                                "libgloo-dev installed); run in one process");
  return std::unique_ptr<Session>(new Session(nullptr));
}
Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;
int rank() {
  return 0;
}
int world() {
  return 1;
}
int local_rank() {
  return 0;
}
at::Tensor& all_reduce_sum(at::Tensor& t, const std::string&) {
  return t;
}
at::Tensor all_gather_rows(const at::Tensor& local, const std::string&) {
  return local;
}
void broadcast_tensor(at::Tensor&, const std::string&) {}
std::string take_from(const std::string&, int, const std::string&) {
  throw std::logic_error("dist::take_from outside a distributed session");
}
void finish() {}
std::string broadcast_text(const std::string& text, const std::string&) {
  return text;
}
int64_t queue_next(const std::string&) {
  throw std::logic_error("dist::queue_next outside a distributed session");
}
void put(const std::string&, const std::string&) {
  throw std::logic_error("dist::put outside a distributed session");
}
bool has(const std::string&) {
  return false;
}
std::string take(const std::string&, const std::string&) {
  throw std::logic_error("dist::take outside a distributed session");
}
uint64_t bytes_sent() {
  return 0;
}
void reset_bytes_sent() {}
#endif

std::pair<int64_t, int64_t> shard(int64_t n) {
  const int64_t W = world(), r = rank();
  return {n * r / W, n * (r + 1) / W};
}

}  // namespace sdekit::dist
