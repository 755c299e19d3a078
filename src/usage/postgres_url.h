// SPDX-License-Identifier: MIT
// PostgreSQL connection strings for `usage.postgres_url`.
//
// Owns: checking a libpq connection string (a `postgresql://` / `postgres://` URI or a
// `key=value` string, parsed by libpq's own PQconninfoParse, so what passes here is what libpq
// will accept at connect time) and masking its password for logs and --check-config.
//
// Threads: any (pure functions).
#pragma once

#include <optional>
#include <string>

namespace rtgw::usage {

// Why libpq would refuse `conninfo`, or nullopt when it parses.
std::optional<std::string> conninfo_error(const std::string& conninfo);

// `conninfo` with its password (URI user info, a `password=` query parameter or keyword)
// replaced by `***`.
std::string mask_conninfo(const std::string& conninfo);

}  // namespace rtgw::usage
