// SPDX-License-Identifier: MIT
// Keeps usrsctp, the SCTP stack every data channel runs on, initialised for the life of the
// process.
//
// GStreamer 1.22's sctp plugin initialises usrsctp when the first SCTP association of the process
// is created and calls usrsctp_finish() when the last one is freed (sctpassociation.c,
// `number_of_associations`). A gateway that goes idle between calls therefore tears the stack
// down (joining its `SCTP timer` thread) and builds it again for the next call, and
// usrsctp_finish() refuses (returns -1, stack still up) while a closed association's socket is
// still shutting down, after which the next call runs usrsctp_init() on a live stack.
//
// The hold is one `sctpdec` in PAUSED with association id 65535: PAUSED is where sctpdec takes
// its association (configure_association), and an sctpdec with no stream has no task, so the
// hold costs no thread, no socket (the association stays NEW: nothing starts it) and no traffic.
// 65535 is the one id sctpdec accepts that no webrtcbin uses: webrtcbin 1.22 draws its ids from
// [0, 65535) (webrtcsctptransport.c), and so does sctp_ids, so the hold never takes an id a call
// could be given.
//
// Owns: that element. Threads: created and dropped on the main thread, before the first call and
// after the last pipeline was reaped.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <string>

#include "common/ref.h"

namespace rtgw::webrtc {

class SctpStackHold {
 public:
  // The association id the hold uses: outside the range webrtcbin and sctp_ids hand out.
  static constexpr std::uint16_t kAssociationId = 65535;

  // Brings the holding element to PAUSED. `error()` says why not (no sctp plugin, the state
  // change failed); the gateway then runs as before.
  SctpStackHold();
  ~SctpStackHold();
  SctpStackHold(const SctpStackHold&) = delete;
  SctpStackHold& operator=(const SctpStackHold&) = delete;

  bool held() const { return element_ != nullptr; }
  const std::string& error() const { return error_; }

 private:
  Ref<GstElement> element_;
  std::string error_;
};

}  // namespace rtgw::webrtc
