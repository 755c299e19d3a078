// SPDX-License-Identifier: MIT
// The metrics catalogue (metrics/catalogue.h) and the Registry's exposition: every family is
// declared once and well formed, every family is rendered with HELP and TYPE, and a use that does
// not match its declaration is refused rather than rendered.
#include <glib.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <set>
#include <string>

#include "metrics/catalogue.h"
#include "metrics/metrics.h"

namespace rtgw::metrics {
namespace {

const char* type_text(Type t) {
  return t == Type::kCounter ? "counter" : t == Type::kGauge ? "gauge" : "histogram";
}

TEST(MetricsCatalogue, EachFamilyIsDeclaredOnceAndWellFormed) {
  const std::regex name_re("^rtgw_[a-z0-9_]+$");
  const std::regex label_re("^[a-z_][a-z0-9_]*$");
  std::set<std::string> names;
  ASSERT_GT(catalogue().size(), 30u);
  for (const Family* f : catalogue()) {
    SCOPED_TRACE(f->name);
    EXPECT_TRUE(names.insert(f->name).second) << "declared twice";
    EXPECT_TRUE(std::regex_match(f->name, name_re));
    EXPECT_FALSE(std::string(f->help).empty());
    EXPECT_EQ(std::string(f->help).find('\n'), std::string::npos);
    const std::string name = f->name;
    const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    // Prometheus naming: counters end in _total, nothing else does.
    EXPECT_EQ(total, f->type == Type::kCounter);
    if (f->type == Type::kHistogram) {
      EXPECT_FALSE(f->buckets.empty());
      EXPECT_TRUE(std::is_sorted(f->buckets.begin(), f->buckets.end()));
      EXPECT_EQ(std::adjacent_find(f->buckets.begin(), f->buckets.end()), f->buckets.end());
    } else {
      EXPECT_TRUE(f->buckets.empty());
    }
    std::set<std::string> labels;
    for (const std::string& l : f->labels) {
      EXPECT_TRUE(std::regex_match(l, label_re)) << l;
      EXPECT_TRUE(labels.insert(l).second) << "label " << l << " twice";
      EXPECT_NE(l, "le");  // the histogram's own
    }
    EXPECT_EQ(find_family(f->name), f);
  }
  EXPECT_EQ(find_family("rtgw_no_such_metric"), nullptr);
}

TEST(MetricsCatalogue, EveryFamilyIsRenderedWithHelpAndType) {
  Registry registry;
  std::string text = registry.render();
  for (const Family* f : catalogue()) {
    std::string block = std::string("# HELP ") + f->name + " " + f->help + "\n# TYPE " + f->name +
                        " " + type_text(f->type) + "\n";
    EXPECT_NE(text.find(block), std::string::npos) << f->name;
  }
  // Nothing but the catalogue's families: each HELP line names one of them.
  std::size_t helps = 0;
  for (std::size_t at = text.find("# HELP "); at != std::string::npos;
       at = text.find("# HELP ", at + 1))
    helps++;
  EXPECT_EQ(helps, catalogue().size());
}

TEST(MetricsRegistry, SamplesRenderWithTheirDeclaredLabels) {
  Registry registry;
  registry.add(kCallsTotal, {"gpt-realtime", "completed"});
  registry.add(kCallsTotal, {"gpt-realtime", "completed"}, 2);
  registry.add(kUsageLogErrorsTotal);
  registry.set(kLiveCalls, {"m\"x"}, 3);
  registry.observe(kCallSetupSeconds, {"gpt-realtime"}, 0.02);
  registry.observe(kCallSetupSeconds, {"gpt-realtime"}, 20);
  std::string text = registry.render();
  EXPECT_NE(text.find("\nrtgw_calls_total{model=\"gpt-realtime\",outcome=\"completed\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\nrtgw_usage_log_errors_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("\nrtgw_live_calls{model=\"m\\\"x\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("\nrtgw_call_setup_seconds_bucket{model=\"gpt-realtime\",le=\"0.01\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nrtgw_call_setup_seconds_bucket{model=\"gpt-realtime\",le=\"0.025\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nrtgw_call_setup_seconds_bucket{model=\"gpt-realtime\",le=\"10\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nrtgw_call_setup_seconds_bucket{model=\"gpt-realtime\",le=\"+Inf\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nrtgw_call_setup_seconds_count{model=\"gpt-realtime\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nrtgw_call_setup_seconds_sum{model=\"gpt-realtime\"} 20.02\n"),
            std::string::npos);
  registry.reset(kLiveCalls);
  EXPECT_EQ(registry.render().find("\nrtgw_live_calls{"), std::string::npos);
}

TEST(MetricsRegistry, AUseThatDoesNotMatchItsDeclarationIsRefused) {
  Registry registry;
  // Said loudly (g_critical), not rendered: a wrong label set would break the family.
  g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*rtgw_calls_total*");
  registry.add(kCallsTotal, {"gpt-realtime"});
  g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*rtgw_live_calls*");
  registry.add(kLiveCalls, {"gpt-realtime"});
  g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*rtgw_events_total*");
  registry.observe(kEventsTotal, {"client_to_upstream"}, 1);
  g_test_assert_expected_messages();
  std::string text = registry.render();
  EXPECT_EQ(text.find("\nrtgw_calls_total{"), std::string::npos);
  EXPECT_EQ(text.find("\nrtgw_live_calls{"), std::string::npos);
  EXPECT_EQ(text.find("\nrtgw_events_total"), std::string::npos);
}

}  // namespace
}  // namespace rtgw::metrics
