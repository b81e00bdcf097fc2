// The dashboard's terminal: raw keyboard input (termios), the alternate
// screen, and frames sent as plain ANSI escapes (cursor moves, 16 colours,
// bold/inverse) for only the cells that changed, so it works over ssh and in
// tmux without terminfo. The destructor restores the terminal on every path.
#pragma once
#include <termios.h>

#include <string>

#include "report/cell_buffer.h"

namespace kiln {

// The escapes that turn `prev` into `next` on screen (prev == nullptr or of
// another size: clear and paint everything).
std::string encode_frame(const CellBuffer& next, const CellBuffer* prev);

// True when the locale says the terminal speaks UTF-8 (LC_ALL, LC_CTYPE, LANG).
bool locale_is_utf8();

class Terminal {
 public:
  Terminal();  // InputError when stdin or stdout is not a terminal
  ~Terminal();
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  void size(int* width, int* height) const;  // TIOCGWINSZ, 80x24 when unknown
  void draw(const CellBuffer& frame);        // sends the difference to the last frame
  void invalidate() { have_last_ = false; }  // the next draw repaints the screen
  void restore();  // leaves raw mode and the alternate screen (idempotent)

 private:
  void write_all(const std::string& bytes);
  termios saved_{};
  bool active_ = false, have_last_ = false;
  CellBuffer last_;
};

}  // namespace kiln
