// SPDX-License-Identifier: MIT
// Prometheus metrics.
//
// Owns: counters, gauges and histograms with labels, and their Prometheus text exposition for
// GET /metrics. Gauges that are cheaper to read at scrape time (live calls, worker load) are
// filled by a collector callback just before rendering.
//
// Threads: main loop only.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rtgw::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Registry {
 public:
  void add_counter(const std::string& name, const std::string& help, const Labels& labels,
                   double value = 1);
  void set_gauge(const std::string& name, const std::string& help, const Labels& labels,
                 double value);
  // Histogram in seconds-or-whatever units; `buckets` ascending.
  void observe(const std::string& name, const std::string& help, const Labels& labels, double value,
               const std::vector<double>& buckets);
  // Called at every render, before output: sets scrape-time gauges.
  void set_collector(std::function<void(Registry&)> collector) {
    collector_ = std::move(collector);
  }
  // Clears a gauge family (before a collector refills it).
  void reset_gauge(const std::string& name);

  std::string render();

 private:
  struct Histogram {
    std::vector<double> buckets;
    std::vector<double> counts;  // cumulative per bucket, computed at render
    std::vector<double> raw;     // per-bucket (non-cumulative)
    double sum = 0;
    double count = 0;
  };
  struct Family {
    std::string help;
    std::string type;                             // counter | gauge | histogram
    std::map<std::string, double> values;         // label text -> value
    std::map<std::string, Histogram> histograms;  // label text -> histogram
  };
  Family& family(const std::string& name, const std::string& help, const char* type);

  std::map<std::string, Family> families_;
  std::function<void(Registry&)> collector_;
};

std::string format_labels(const Labels& labels);

}  // namespace rtgw::metrics
