// SPDX-License-Identifier: MIT
// The retention of recordings (config recording.retention_days): files older than that are
// removed, at start-up and hourly.
//
// Owns: the hourly main-loop timer. Each sweep runs on GIO's thread pool (a folder of many
// files, or a slow disk, never holds the main loop) and only removes what the gateway writes
// there: {call_id}.client.ogg, {call_id}.upstream.ogg and {call_id}.json, by their mtime (a
// recording's files are last written when its call ends).
//
// Threads: RetentionSweeper on the main loop; sweep_dir() on any thread.
#pragma once

#include <glib.h>

#include <cstddef>
#include <string>

#include "common/ref.h"

namespace rtgw::recording {

// Removes the recording files in `dir` last modified more than `days` days before `now_unix_s`.
// Returns how many were removed.
std::size_t sweep_dir(const std::string& dir, int days, gint64 now_unix_s);
// A file name the gateway writes in the recording folder.
bool is_recording_file(const std::string& name);

class RetentionSweeper {
 public:
  // days <= 0: keeps everything (no timer). Otherwise sweeps now and then every hour.
  RetentionSweeper(std::string dir, int days);
  RetentionSweeper(const RetentionSweeper&) = delete;
  RetentionSweeper& operator=(const RetentionSweeper&) = delete;

 private:
  void sweep_async() const;

  std::string dir_;
  int days_;
  SourceGuard timer_;
};

}  // namespace rtgw::recording
