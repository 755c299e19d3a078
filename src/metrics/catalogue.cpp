// SPDX-License-Identifier: MIT
#include "metrics/catalogue.h"

namespace rtgw::metrics {

#define RTGW_DEFINE_METRIC_FAMILY(id, type, name, help, buckets, ...) \
  const Family id{name, Type::type, help, buckets, {__VA_ARGS__}};
RTGW_METRIC_FAMILIES(RTGW_DEFINE_METRIC_FAMILY)
#undef RTGW_DEFINE_METRIC_FAMILY

const std::vector<const Family*>& catalogue() {
#define RTGW_LIST_METRIC_FAMILY(id, ...) &id,
  static const std::vector<const Family*> all = {RTGW_METRIC_FAMILIES(RTGW_LIST_METRIC_FAMILY)};
#undef RTGW_LIST_METRIC_FAMILY
  return all;
}

const Family* find_family(const std::string& name) {
  for (const Family* f : catalogue())
    if (name == f->name) return f;
  return nullptr;
}

}  // namespace rtgw::metrics
