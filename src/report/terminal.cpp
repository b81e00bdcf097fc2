#include "report/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace kiln {
namespace {

// Alternate screen, cursor hidden, autowrap off (so the bottom-right cell
// cannot scroll the screen); undone in reverse by kLeave.
constexpr std::string_view kEnter = "\x1b[?1049h\x1b[?25l\x1b[?7l\x1b[H\x1b[2J";
constexpr std::string_view kLeave = "\x1b[0m\x1b[?7h\x1b[?25h\x1b[?1049l";

void append_sgr(std::string& out, const Cell& c) {
  out += "\x1b[0";
  if (c.attr & kBold) out += ";1";
  if (c.attr & kInverse) out += ";7";
  if (c.fg != kDefault) {
    out += ';';
    out += std::to_string(c.fg < 8 ? 30 + c.fg : 90 + (c.fg - 8));
  }
  out += 'm';
}

}  // namespace

std::string encode_frame(const CellBuffer& next, const CellBuffer* prev) {
  const int W = next.width(), H = next.height();
  const bool full = !prev || prev->width() != W || prev->height() != H;
  std::string out;
  if (full) out += "\x1b[0m\x1b[H\x1b[2J";
  Cell pen{U' ', 255, 255};  // no attributes sent yet
  for (int y = 0; y < H; ++y) {
    int first = -1, last = -1;
    for (int x = 0; x < W; ++x)
      if (full || !(next.at(x, y) == prev->at(x, y))) {
        if (first < 0) first = x;
        last = x;
      }
    if (first < 0) continue;
    if (full) {  // unchanged trailing blanks need not be sent after a clear
      while (last >= first && next.at(last, y) == Cell{}) --last;
      if (last < first) continue;
    }
    while (first > 0 && next.at(first, y).ch == 0) --first;  // start at a wide glyph's left half
    out += "\x1b[" + std::to_string(y + 1) + ";" + std::to_string(first + 1) + "H";
    for (int x = first; x <= last; ++x) {
      const Cell& c = next.at(x, y);
      if (c.ch == 0) continue;  // covered by the wide glyph before it
      if (c.fg != pen.fg || c.attr != pen.attr) append_sgr(out, c), pen = c;
      append_utf8(out, c.ch);
    }
  }
  out += "\x1b[0m";
  return out;
}

bool locale_is_utf8() {
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(name);
    if (!v || !*v) continue;
    std::string s(v);
    for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
  }
  return false;
}

Terminal::Terminal() {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
    fail_input("kiln dash", "needs a terminal on stdin and stdout", "an interactive terminal",
               "a pipe or file (use --once for a single frame as text)");
  if (tcgetattr(STDIN_FILENO, &saved_) != 0)
    fail_runtime("kiln dash", "cannot read the terminal settings");
  termios raw = saved_;
  // No echo, no line buffering, and Ctrl-C arrives as a key (0x03) so the
  // dashboard, not the kernel, decides what quitting does to a child trainer.
  raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG | IEXTEN);
  raw.c_iflag &= ~tcflag_t(IXON | ICRNL);
  raw.c_cc[VMIN] = 0;
  raw.c_cc[VTIME] = 0;
  if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0)
    fail_runtime("kiln dash", "cannot set raw mode");
  active_ = true;
  write_all(std::string(kEnter));
}

Terminal::~Terminal() { restore(); }

void Terminal::restore() {
  if (!active_) return;
  active_ = false;
  write_all(std::string(kLeave));
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
}

void Terminal::size(int* width, int* height) const {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    *width = ws.ws_col, *height = ws.ws_row;
  } else {
    *width = 80, *height = 24;
  }
}

void Terminal::draw(const CellBuffer& frame) {
  write_all(encode_frame(frame, have_last_ ? &last_ : nullptr));
  last_ = frame;
  have_last_ = true;
}

void Terminal::write_all(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the terminal went away (ssh dropped): nothing left to show
    done += size_t(n);
  }
}

}  // namespace kiln
