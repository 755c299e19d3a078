// SPDX-License-Identifier: MIT
// The operator console's live stream: `GET /console/stream` (Server-Sent Events).
//
// Owns: the open console streams (at most kMaxStreams; one more is refused 429), each a held-open
// chunked `text/event-stream` response, and the one 1 s timer that writes a snapshot to each of
// them. The timer runs only while a stream is open, so the console costs nothing when no console
// is open. A snapshot (one `event: snapshot` per second) carries the live calls and sessions
// (id, key, model, worker, transport, state, age, turns, cost), the events per second each way,
// the watched call's per-leg media figures (`?watch=<call id>`: only that call's webrtcbins are
// read, console/leg_stats.h), spend per key and model over the last hour and day, and the errors
// and refusals noted since the stream's previous snapshot (console/console_feed.h).
//
// A stream ends when its client goes (ClientWatch sees the close; libsoup's "finished" or
// "disconnected" too), or when the gateway stops. A client that does not read does not grow
// memory: while more than kMaxQueuedChunks of its snapshots are unwritten, it gets no new ones.
// Its connection is one of the ConnectionGuard's, counted as any other.
//
// Threads: main loop only.
#pragma once

#include <libsoup/soup.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "calls/call_registry.h"
#include "common/ref.h"
#include "console/console_feed.h"
#include "sessions/session_registry.h"

namespace rtgw::http {

class ConsoleStreams {
 public:
  static constexpr std::size_t kMaxStreams = 8;
  static constexpr int kMaxQueuedChunks = 4;

  ConsoleStreams(calls::CallRegistry& calls, relay::SessionRegistry& sessions,
                 const console::ConsoleFeed* feed);
  ~ConsoleStreams();
  ConsoleStreams(const ConsoleStreams&) = delete;
  ConsoleStreams& operator=(const ConsoleStreams&) = delete;

  // Answers `msg` (already authorised) with the stream, its first snapshot at once. `socket`:
  // the connection's, to notice the client's close (ConnectionGuard::socket_of). Throws
  // HttpError 429 when kMaxStreams are open.
  void open(SoupServerMessage* msg, GSocket* socket, std::string watch_id);
  std::size_t open_streams() const { return streams_.size(); }

 private:
  struct Stream;
  void tick();
  void write_snapshot(Stream& stream);
  std::string snapshot(Stream& stream);
  // Marks `stream` closed; it is dropped on the next main-loop turn (never inside a libsoup
  // signal of its own message).
  void close_later(Stream* stream);
  void drop_closed();

  calls::CallRegistry& calls_;
  relay::SessionRegistry& sessions_;
  const console::ConsoleFeed* feed_;  // may be null (no spend, no errors)
  std::vector<std::unique_ptr<Stream>> streams_;
  SourceGuard timer_;
  SourceGuard sweep_;
};

}  // namespace rtgw::http
