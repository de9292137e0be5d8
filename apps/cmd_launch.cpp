// `sdekit launch --nproc N -- SUBCOMMAND ...`: N processes of this program on one machine with
// torchrun's environment (docs/theory.md section 10), for machines without Python. When a rank
// fails, the others are stopped and the launcher exits with its status.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ostream>
#include <stdexcept>
#include <thread>

#include "apps/command.hpp"

namespace sdekit {
namespace {

// A port the kernel has free on the loopback interface now (bound, read back, released).
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("launch: socket(): ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("launch: no free port on 127.0.0.1: " + why);
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string status_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

class LaunchCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand(
        "launch",
        "Run a subcommand over N local processes with torchrun's environment (RANK, WORLD_SIZE, "
        "LOCAL_RANK, MASTER_ADDR, MASTER_PORT): sdekit launch --nproc 2 -- fid-table ...");
    sub_->add_option("--nproc", nproc_, "Number of processes (ranks)")->capture_default_str();
    sub_->add_option("--master-port", port_,
                     "Port of the rendezvous store on 127.0.0.1 (0: a free one)")
        ->capture_default_str();
    sub_->add_option("command", args_, "The subcommand and its options, after --")->required();
  }
  bool shards() const override { return true; }  // it may run under nothing but itself
  bool joins_group() const override { return false; }

  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    if (nproc_ < 1 || nproc_ > 1024)
      throw std::invalid_argument("--nproc: expected 1..1024, got " + std::to_string(nproc_));
    if (port_ < 0 || port_ > 65535)
      throw std::invalid_argument("--master-port: expected 0..65535, got " + std::to_string(port_));
    if (const char* w = std::getenv("WORLD_SIZE"); w && std::string(w) != "1")
      throw std::invalid_argument("launch: already inside a run of WORLD_SIZE=" + std::string(w));
    if (args_.empty() || args_[0] == "launch")
      throw std::invalid_argument(
          "launch: give the subcommand to run after --, e.g. "
          "sdekit launch --nproc 2 -- fid-table --out runs/t");
    const int port = port_ > 0 ? port_ : free_loopback_port();
    std::vector<std::string> argv_s = {"sdekit"};
    argv_s.insert(argv_s.end(), args_.begin(), args_.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    out.flush();
    err.flush();
    std::vector<pid_t> pids(nproc_, -1);
    for (int r = 0; r < nproc_; ++r) {
      const pid_t pid = ::fork();
      if (pid < 0) {
        stop_all(pids, SIGKILL);
        throw std::runtime_error(std::string("launch: fork(): ") + std::strerror(errno));
      }
      if (pid == 0) {
        ::setenv("RANK", std::to_string(r).c_str(), 1);
        ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
        ::setenv("WORLD_SIZE", std::to_string(nproc_).c_str(), 1);
        ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc_).c_str(), 1);
        ::setenv("MASTER_ADDR", "127.0.0.1", 1);
        ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
        ::execv("/proc/self/exe", argv.data());
        std::fprintf(stderr, "launch: rank %d: exec failed: %s\n", r, std::strerror(errno));
        ::_exit(127);
      }
      pids[r] = pid;
    }
    // Wait for every rank; the first that fails stops the others.
    int rc = 0, left = nproc_;
    while (left > 0) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, 0);
      if (pid < 0) {
        if (errno == EINTR) continue;
        break;
      }
      int r = 0;
      while (r < nproc_ && pids[r] != pid) ++r;
      if (r == nproc_) continue;
      pids[r] = -1;
      --left;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && rc == 0) {
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        err << "launch: rank " << r << " (pid " << pid << ") " << status_text(status);
        if (left > 0) err << "; stopping the other " << left << " rank(s)";
        err << "\n";
        err.flush();
        stop_all(pids, SIGTERM);
        // Ranks that do not end within 10 s are killed.
        std::thread([pids] {
          std::this_thread::sleep_for(std::chrono::seconds(10));
          for (pid_t p : pids)
            if (p > 0) ::kill(p, SIGKILL);
        }).detach();
      }
    }
    return rc;
  }

 private:
  static void stop_all(const std::vector<pid_t>& pids, int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  }
  int nproc_ = 2;
  int port_ = 0;
  std::vector<std::string> args_;
};
}  // namespace

std::unique_ptr<Command> make_launch_command() {
  return std::make_unique<LaunchCommand>();
}

}  // namespace sdekit
