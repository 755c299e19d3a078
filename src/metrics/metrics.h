// SPDX-License-Identifier: MIT
// Prometheus metrics.
//
// Owns: the samples of every family of the catalogue (metrics/catalogue.h: counters, gauges and
// histograms with labels) and their Prometheus text exposition for GET /metrics. Every use names
// its family's declaration and gives the label values in the declared order; every family is
// rendered with its HELP and TYPE, samples or not. Gauges that are cheaper to read at scrape time
// (live calls, worker load) are filled by a collector callback just before rendering.
//
// Threads: main loop only.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "metrics/catalogue.h"

namespace rtgw::metrics {

// Label values, in the order of the family's label names.
using LabelValues = std::vector<std::string>;

class Registry {
 public:
  Registry();

  // A counter grows by `amount`.
  void add(const Family& family, const LabelValues& values = {}, double amount = 1);
  // A gauge's value.
  void set(const Family& family, const LabelValues& values, double value);
  // A histogram's observation (its buckets are the family's).
  void observe(const Family& family, const LabelValues& values, double value);
  // Drops a gauge family's samples (before a collector refills it).
  void reset(const Family& family);
  // Called at every render, before output: sets scrape-time gauges.
  void set_collector(std::function<void(Registry&)> collector) {
    collector_ = std::move(collector);
  }

  std::string render();

 private:
  struct Histogram {
    std::vector<double> raw;  // per-bucket (non-cumulative)
    double sum = 0;
    double count = 0;
  };
  struct Samples {
    const Family* family = nullptr;
    std::map<std::string, double> values;         // label text -> value
    std::map<std::string, Histogram> histograms;  // label text -> histogram
  };
  // The family's samples, or nullptr (logged) when the use does not match its declaration.
  Samples* samples(const Family& family, Type type, const LabelValues& values);

  std::map<std::string, Samples> families_;  // by name: the exposition's order
  std::function<void(Registry&)> collector_;
};

using Labels = std::vector<std::pair<std::string, std::string>>;
std::string format_labels(const Labels& labels);

}  // namespace rtgw::metrics
