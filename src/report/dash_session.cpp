#include "report/dash_session.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "report/terminal.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

volatile sig_atomic_t g_resized = 0;
volatile sig_atomic_t g_quit = 0;
void on_winch(int) { g_resized = 1; }
void on_quit(int) { g_quit = 1; }

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double mono_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Installs handlers without SA_RESTART so poll() wakes at once, and puts the
// old ones back when the session ends.
class SignalScope {
 public:
  SignalScope() {
    install(SIGWINCH, on_winch, 0);
    install(SIGINT, on_quit, 1);
    install(SIGTERM, on_quit, 2);
    install(SIGHUP, on_quit, 3);
  }
  ~SignalScope() {
    const int sigs[] = {SIGWINCH, SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 4; ++i) sigaction(sigs[i], &old_[i], nullptr);
  }

 private:
  void install(int sig, void (*fn)(int), int slot) {
    struct sigaction sa {};
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, &old_[slot]);
  }
  struct sigaction old_[4]{};
};

// A trainer started by the dashboard: stdin from /dev/null, stdout and
// stderr into one pipe that the dashboard reads without blocking.
struct Child {
  pid_t pid = -1;
  int out_fd = -1;
  bool running = false;
  int exit_code = 0;
  std::string status, pending;  // pending: an unfinished output line

  void start(const std::vector<std::string>& command) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
      fail_runtime("kiln dash", std::string("cannot create a pipe: ") + strerror(errno));
    std::vector<std::string> args = command;
    std::string program = args[0];
    if (program == "kiln") {  // run this very binary, wherever it lives
      std::error_code ec;
      const fs::path self = fs::read_symlink("/proc/self/exe", ec);
      if (!ec) program = self.string();
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid = fork();
    if (pid < 0)
      fail_runtime("kiln dash", std::string("cannot start the command: ") + strerror(errno));
    if (pid == 0) {
      const int null_fd = open("/dev/null", O_RDONLY);
      if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      execvp(program.c_str(), argv.data());
      std::fprintf(stderr, "kiln dash: cannot run %s: %s\n", program.c_str(), strerror(errno));
      _exit(127);
    }
    close(fds[1]);
    out_fd = fds[0];
    fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
    running = true;
    status = "training pid " + std::to_string(pid);
  }

  // Moves complete lines of output into the dashboard; false at end of file.
  bool read_output(Dashboard& dash) {
    char buf[4096];
    for (;;) {
      const ssize_t n = read(out_fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return true;  // EAGAIN: nothing more now
      if (n == 0) {
        if (!pending.empty()) dash.add_output_line(pending), pending.clear();
        return false;
      }
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == '\n' || buf[i] == '\r') {
          if (!pending.empty() || buf[i] == '\n') dash.add_output_line(pending);
          pending.clear();
        } else if (pending.size() < 4096) {
          pending += buf[i];
        }
      }
    }
  }

  void reap(bool block) {
    if (!running) return;
    int st = 0;
    const pid_t r = waitpid(pid, &st, block ? 0 : WNOHANG);
    if (r != pid) return;
    running = false;
    if (WIFEXITED(st)) {
      exit_code = WEXITSTATUS(st);
      status = exit_code == 0     ? std::string("training finished (exit 0)")
               : exit_code == 130 ? std::string("training stopped (exit 130)")
                                  : "training failed (exit " + std::to_string(exit_code) + ")";
    } else if (WIFSIGNALED(st)) {
      exit_code = 128 + WTERMSIG(st);
      status = std::string("training killed by signal ") + strsignal(WTERMSIG(st));
    }
  }
};

// Handles the keys waiting on stdin; returns false when asked to quit.
bool handle_keys(Dashboard& dash, Terminal& term, bool* changed) {
  char keys[64];
  const ssize_t n = read(STDIN_FILENO, keys, sizeof(keys));
  if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EINTR);
  for (ssize_t i = 0; i < n; ++i) {
    switch (keys[i]) {
      case 'q':
      case 'Q':
      case 0x03:
      case 0x04:  // q, Ctrl-C, Ctrl-D
        return false;
      case 'l':
      case 'L':
        dash.toggle_log_x(), *changed = true;
        break;
      case '\t':
      case 'n':
        dash.next_run(), *changed = true;
        break;
      case 'r':
      case 0x0C:  // Ctrl-L repaints
        term.invalidate(), *changed = true;
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace

std::string child_run_dir(std::vector<std::string>& command) {
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] == "--out" && i + 1 < command.size()) return command[i + 1];
    if (command[i].rfind("--out=", 0) == 0) return command[i].substr(6);
  }
  const bool is_train = command.size() >= 2 && command[1] == "train" &&
                        (command[0] == "kiln" || fs::path(command[0]).filename() == "kiln");
  if (!is_train)
    fail_input("kiln dash --", "cannot tell which run directory the command writes",
               "a `kiln train` command, --out DIR in the command, or RUN_DIR before --",
               command[0]);
  char stamp[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  const std::string dir = (fs::path("runs") / stamp).string();
  command.push_back("--out");
  command.push_back(dir);
  return dir;
}

int run_dash(DashSessionOptions o) {
  if (!o.command.empty()) {
    const std::string dir = child_run_dir(o.command);
    if (std::find(o.run_dirs.begin(), o.run_dirs.end(), dir) == o.run_dirs.end())
      o.run_dirs.push_back(dir);
  }
  if (o.run_dirs.empty())
    fail_input("kiln dash", "no run to watch", "RUN_DIR... or -- kiln train ...", "nothing");
  o.dash.unicode = o.force_unicode || (!o.force_ascii && locale_is_utf8());
  Dashboard dash(o.run_dirs, o.dash);

  if (o.once) {
    if (!o.command.empty())
      fail_input("--once", "cannot start a command", "RUN_DIR... only", "-- " + o.command[0]);
    dash.poll();
    for (size_t i = 0; i < dash.run_count(); ++i)
      if (dash.run(i).empty() && !fs::exists(dash.run(i).source))
        fail_input(dash.run(i).source, "no metrics log here",
                   "a run directory written by kiln train", "nothing");
    SystemSampler machine(getpid());
    dash.set_live_system(machine.sample(), false);
    CellBuffer frame(o.once_width, o.once_height);
    dash.render(frame, wall_now());
    const std::string text = frame.to_text();
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }

  g_quit = 0;
  g_resized = 0;
  SignalScope signals;
  Terminal term;
  Child child;
  if (!o.command.empty()) {
    child.start(o.command);
    dash.set_child_status(child.status);
  }
  SystemSampler sampler(child.pid > 0 ? child.pid : getpid());
  const double frame_s = 1.0 / std::max(0.5, std::min(o.max_hz, 4.0));
  double next_metrics = 0, next_system = 0, last_draw = -1e9, draw_cost = 0;
  bool changed = true, resized = false;
  CellBuffer frame;
  for (;;) {
    const double t = mono_now();
    if (t >= next_metrics) {
      changed = dash.poll() || changed;
      next_metrics = t + frame_s;
    }
    if (t >= next_system) {
      child.reap(false);
      if (child.pid > 0) dash.set_child_status(child.status);
      // Once the trainer has exited its last reading stays on screen.
      if (child.pid <= 0 || child.running) dash.set_live_system(sampler.sample(), child.running);
      next_system = t + 1.0;
      changed = true;
    }
    if (g_resized) {
      g_resized = 0;
      term.invalidate();
      resized = true;
    }
    // At most max_hz frames, once a second for the clocks, and never more
    // often than keeps drawing under ~2% of a core (a frame of a very long
    // run costs more, so it is drawn less often).
    const double gap = std::max(frame_s, std::min(5.0, 50 * draw_cost));
    if (resized || (t - last_draw >= gap && (changed || t - last_draw >= 1.0))) {
      const double cpu0 = thread_cpu_seconds();
      int w, h;
      term.size(&w, &h);
      if (frame.width() != w || frame.height() != h) frame.resize(w, h);
      dash.render(frame, wall_now());
      term.draw(frame);
      draw_cost = thread_cpu_seconds() - cpu0;
      last_draw = t, changed = false, resized = false;
    }
    // Sleep until a key, trainer output, a signal, or the next scheduled poll.
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {child.out_fd, POLLIN, 0}};
    const int nfds = child.out_fd >= 0 ? 2 : 1;
    const double next_draw = last_draw + std::max(1.0, std::min(5.0, 50 * draw_cost));
    const double wait_s =
        std::max(0.0, std::min({next_metrics, next_system, next_draw}) - mono_now());
    const int r = poll(fds, nfds_t(nfds), int(wait_s * 1000) + 1);
    if (g_quit) break;
    if (r <= 0) continue;
    if (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) break;  // the terminal went away
    if ((fds[0].revents & POLLIN) && !handle_keys(dash, term, &changed)) break;
    if (nfds == 2 && fds[1].revents) {
      if (!child.read_output(dash)) {
        close(child.out_fd);
        child.out_fd = -1;
        child.reap(false);  // usually gone by now; otherwise the next system tick reaps it
        dash.set_child_status(child.status);
      }
      changed = true;
    }
  }
  term.restore();

  if (child.pid <= 0) return 0;
  if (child.running) {
    // Quitting stops the training the way Ctrl-C would: it checkpoints and
    // prints its efficiency report, which we pass through until it exits.
    std::fprintf(stderr,
                 "kiln dash: asking the training (pid %d) to stop; it saves a checkpoint first\n",
                 int(child.pid));
    kill(child.pid, SIGINT);
    if (child.out_fd >= 0) {
      fcntl(child.out_fd, F_SETFL, fcntl(child.out_fd, F_GETFL) & ~O_NONBLOCK);
      char buf[4096];
      ssize_t n;
      while ((n = read(child.out_fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (fwrite(buf, 1, size_t(n), stdout) != size_t(n)) break;
        fflush(stdout);
      }
    }
    child.reap(true);
  } else {
    // The trainer's last words (its report, or why it failed) stay on screen.
    const auto& lines = dash.output_lines();
    for (size_t i = lines.size() > 30 ? lines.size() - 30 : 0; i < lines.size(); ++i)
      std::printf("%s\n", lines[i].c_str());
  }
  if (child.out_fd >= 0) close(child.out_fd);
  std::fprintf(stderr, "kiln dash: %s\n", child.status.c_str());
  return child.exit_code;
}

}  // namespace kiln
