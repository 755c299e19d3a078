// SPDX-License-Identifier: MIT
#include "metrics/metrics.h"

#include <glib.h>

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

static const char* type_name(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

Registry::Registry() {
  for (const Family* f : catalogue()) families_[f->name].family = f;
}

Registry::Samples* Registry::samples(const Family& family, Type type, const LabelValues& values) {
  auto it = families_.find(family.name);
  // A use that does not match its declaration is a programming error: said loudly, not rendered
  // (a wrong label set would break the family for every scraper).
  if (it == families_.end() || it->second.family != &family || family.type != type ||
      values.size() != family.labels.size()) {
    g_critical("metrics: %s used as a %s with %zu label value(s); declared a %s with %zu",
               family.name, type_name(type), values.size(), type_name(family.type),
               family.labels.size());
    return nullptr;
  }
  return &it->second;
}

namespace {

std::string label_text(const Family& family, const LabelValues& values) {
  Labels labels;
  for (std::size_t i = 0; i < values.size(); i++) labels.emplace_back(family.labels[i], values[i]);
  return format_labels(labels);
}

}  // namespace

void Registry::add(const Family& family, const LabelValues& values, double amount) {
  if (Samples* s = samples(family, Type::kCounter, values))
    s->values[label_text(family, values)] += amount;
}

void Registry::set(const Family& family, const LabelValues& values, double value) {
  if (Samples* s = samples(family, Type::kGauge, values))
    s->values[label_text(family, values)] = value;
}

void Registry::reset(const Family& family) {
  auto it = families_.find(family.name);
  if (it != families_.end()) it->second.values.clear();
}

void Registry::observe(const Family& family, const LabelValues& values, double value) {
  Samples* s = samples(family, Type::kHistogram, values);
  if (!s) return;
  Histogram& h = s->histograms[label_text(family, values)];
  if (h.raw.empty()) h.raw.assign(family.buckets.size(), 0);
  for (size_t i = 0; i < family.buckets.size(); i++)
    if (value <= family.buckets[i]) {
      h.raw[i] += 1;
      break;
    }
  h.sum += value;
  h.count += 1;
}

std::string Registry::render() {
  if (collector_) collector_(*this);
  std::ostringstream out;
  for (const auto& [name, s] : families_) {
    const Family& f = *s.family;
    out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << type_name(f.type)
        << "\n";
    if (f.type == Type::kHistogram) {
      for (const auto& [labels, h] : s.histograms) {
        std::string inner = labels.empty() ? "" : labels.substr(1, labels.size() - 2) + ",";
        double cumulative = 0;
        for (size_t i = 0; i < f.buckets.size(); i++) {
          cumulative += h.raw[i];
          out << name << "_bucket{" << inner << "le=\"" << number(f.buckets[i]) << "\"} "
              << number(cumulative) << "\n";
        }
        out << name << "_bucket{" << inner << "le=\"+Inf\"} " << number(h.count) << "\n";
        out << name << "_sum" << labels << " " << number(h.sum) << "\n";
        out << name << "_count" << labels << " " << number(h.count) << "\n";
      }
      continue;
    }
    for (const auto& [labels, value] : s.values)
      out << name << labels << " " << number(value) << "\n";
  }
  return out.str();
}

}  // namespace rtgw::metrics
