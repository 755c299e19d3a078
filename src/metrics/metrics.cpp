// SPDX-License-Identifier: MIT
#include "metrics/metrics.h"

#include <cmath>
#include <sstream>

namespace rtgw::metrics {
namespace {

std::string escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream out;
  out.precision(15);
  out << v;
  return out.str();
}

}  // namespace

std::string format_labels(const Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); i++) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + escape(labels[i].second) + "\"";
  }
  return out + "}";
}

Registry::Family& Registry::family(const std::string& name, const std::string& help,
                                   const char* type) {
  Family& f = families_[name];
  if (f.type.empty()) {
    f.help = help;
    f.type = type;
  }
  return f;
}

void Registry::add_counter(const std::string& name, const std::string& help, const Labels& labels,
                           double value) {
  family(name, help, "counter").values[format_labels(labels)] += value;
}

void Registry::set_gauge(const std::string& name, const std::string& help, const Labels& labels,
                         double value) {
  family(name, help, "gauge").values[format_labels(labels)] = value;
}

void Registry::reset_gauge(const std::string& name) {
  auto it = families_.find(name);
  if (it != families_.end()) it->second.values.clear();
}

void Registry::observe(const std::string& name, const std::string& help, const Labels& labels,
                       double value, const std::vector<double>& buckets) {
  Histogram& h = family(name, help, "histogram").histograms[format_labels(labels)];
  if (h.buckets.empty()) {
    h.buckets = buckets;
    h.raw.assign(buckets.size(), 0);
  }
  for (size_t i = 0; i < h.buckets.size(); i++)
    if (value <= h.buckets[i]) {
      h.raw[i] += 1;
      break;
    }
  h.sum += value;
  h.count += 1;
}

std::string Registry::render() {
  if (collector_) collector_(*this);
  std::ostringstream out;
  for (const auto& [name, f] : families_) {
    out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << f.type << "\n";
    if (f.type == "histogram") {
      for (const auto& [labels, h] : f.histograms) {
        std::string inner = labels.empty() ? "" : labels.substr(1, labels.size() - 2) + ",";
        double cumulative = 0;
        for (size_t i = 0; i < h.buckets.size(); i++) {
          cumulative += h.raw[i];
          out << name << "_bucket{" << inner << "le=\"" << number(h.buckets[i]) << "\"} "
              << number(cumulative) << "\n";
        }
        out << name << "_bucket{" << inner << "le=\"+Inf\"} " << number(h.count) << "\n";
        out << name << "_sum" << labels << " " << number(h.sum) << "\n";
        out << name << "_count" << labels << " " << number(h.count) << "\n";
      }
      continue;
    }
    for (const auto& [labels, value] : f.values)
      out << name << labels << " " << number(value) << "\n";
  }
  return out.str();
}

}  // namespace rtgw::metrics
