// A process's stdio as the shim holds it: output pipes (or the pty master) read into
// a sink, and stdin (a pipe, or the master) written from a small queue so that a
// slow reader never blocks the shim's loop.
#pragma once

#include <utility>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "shim/lib/cri_log.hpp"
#include "shim/lib/event_loop.hpp"

namespace berth::shim {

struct ProcessStdio {
  bool tty = false;
  UniqueFd out; // stdout pipe, or the pty master (output and input)
  UniqueFd err; // stderr pipe (none with a tty)
  UniqueFd in;  // stdin pipe (none with a tty, or without stdin)
};

class StdioPump final : public EventHandler {
public:
  class Sink {
  public:
    virtual void on_output(Stream stream, std::string_view data) = 0;
    // Every output reached end of file (or was closed).
    virtual void on_outputs_closed() = 0;
    // The stdin queue emptied (writers that were paused may go on).
    virtual void on_stdin_drained() {}

  protected:
    ~Sink() = default;
  };

  StdioPump(EventLoop& loop, Sink& sink, ProcessStdio stdio);
  ~StdioPump() { close_all(); }
  StdioPump(const StdioPump&) = delete;
  StdioPump& operator=(const StdioPump&) = delete;

  bool tty() const { return stdio_.tty; }
  bool outputs_open() const { return stdio_.out || stdio_.err; }
  bool stdin_open() const { return stdio_.tty ? static_cast<bool>(stdio_.out) && !stdin_closed_ : static_cast<bool>(stdio_.in); }
  // Queues bytes for stdin. Returns false when they could not all be written at once
  // (the caller should pause its input until on_stdin_drained).
  bool write_stdin(std::string_view data);
  bool stdin_busy() const { return !pending_.empty(); }
  void close_stdin();
  void resize(unsigned rows, unsigned cols); // throws without a tty
  // The protocol's resize payload, "ROWS COLS": as {rows, cols}, or a clear error.
  static std::pair<unsigned, unsigned> parse_size(std::string_view payload);
  // Stops (or resumes) reading output: backpressure from a slow consumer.
  void pause_output(bool paused);
  // Reads whatever the outputs hold right now, without waiting.
  void drain_now();
  void close_all();

  void on_event(int tag, uint32_t events) override;

private:
  enum Tag { kOut, kErr, kIn };
  // false at end of file
  bool read_some(UniqueFd& fd, Stream stream, int max_reads);
  void close_output(UniqueFd& fd);
  void flush_stdin();
  void update_watches();
  int input_fd() const { return stdio_.tty ? stdio_.out.get() : stdio_.in.get(); }

  EventLoop& loop_;
  Sink& sink_;
  ProcessStdio stdio_;
  Watch out_watch_{this, kOut}, err_watch_{this, kErr}, in_watch_{this, kIn};
  std::string pending_;
  bool paused_ = false;
  bool in_watched_ = false;
  bool out_registered_ = false;
  bool err_registered_ = false;
  bool stdin_closed_ = false;
  bool close_when_drained_ = false;
  bool closed_reported_ = false;
};

} // namespace berth::shim
