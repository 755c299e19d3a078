// SPDX-License-Identifier: MIT
// What the config reader needs from an upstream dialect (`models[].workers[].provider`).
//
// Owns: nothing but the contract. The dialects live in workers/providers/ and implement it there
// (workers/providers/registry.cpp defines the two functions below); config only declares what it
// asks, so config never includes workers and the two folders form no include cycle.
//
// Threads: any (the dialects are immutable singletons).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace rtgw::config {

// One problem in a worker entry: the member at fault (under the worker's JSON path) and why.
struct WorkerProblem {
  std::string member;  // e.g. "deployment"
  std::string message;
};

class WorkerDialect {
 public:
  virtual ~WorkerDialect() = default;
  // Reached over HTTP at the worker's `url`, which is then required; false: served in process
  // (the built-in echo worker), `url` is not read.
  virtual bool remote() const = 0;
  // The dialect's own checks of a worker read from the file, after every member is read; fills
  // the dialect's defaults for members the file left out. `given`: the members the file set.
  virtual void check(WorkerConfig& worker, const std::set<std::string>& given,
                     std::vector<WorkerProblem>& problems) const = 0;
};

// The dialect of a `provider` name; nullptr when there is none.
const WorkerDialect* find_worker_dialect(const std::string& provider);
// Every provider name, in registry order, for error messages ("openai, azure, generic, echo").
std::string worker_dialect_names();

}  // namespace rtgw::config
