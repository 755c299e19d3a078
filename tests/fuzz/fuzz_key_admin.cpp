// SPDX-License-Identifier: MIT
// Fuzz target `key_admin`: the admin API's bodies (keys/admin_request.h).
// - The input through every body parser (generate, update, delete, regenerate): only ApiError
//   with status 400 may be thrown.
// - A body that parses as generate and update applies to a row, whose public view must be JSON
//   that does not hold the row's hash (unless the body itself carried that text).
// - The first two lines as GET /key/list's page and size, the input as /key/info's alias.
#include "common/api_error.h"
#include "common/json.h"
#include "fuzz_util.h"
#include "keys/admin_request.h"
#include "keys/key_secret.h"

using namespace rtgw;

namespace {

template <typename Fn>
void expect_400(Fn fn, const std::string& text) {
  try {
    fn();
  } catch (const ApiError& e) {
    if (e.status() != 400) fuzz::fail("an admin body error that is not a 400", text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(fuzz::as_view(data, size));
  expect_400([&] { (void)keys::parse_delete(text); }, text);
  expect_400([&] { (void)keys::parse_regenerate(text); }, text);
  expect_400(
      [&] {
        keys::UpdateRequest u = keys::parse_update(text);
        if (!u.ref.key && !u.ref.alias) fuzz::fail("an update that names no key", text);
      },
      text);
  expect_400(
      [&] {
        keys::GenerateRequest g = keys::parse_generate(text);
        keys::VirtualKey row;
        row.alias = g.fields.key_alias.value_or("vk-fuzz");
        if (!keys::valid_alias(row.alias)) fuzz::fail("an invalid alias was accepted", text);
        row.hash = keys::hash_key("sk-rtgw-fuzz");
        keys::apply_fields(row, g.fields, 1780000000);
        std::string view = keys::to_json(row);
        if (!json::parse(view)) fuzz::fail("a key's view is not JSON", view);
        // Metadata may hold any text the admin sent, the digest included: only the key's own
        // copy of it must stay out.
        if (view.find(row.hash) != std::string::npos && text.find(row.hash) == std::string::npos)
          fuzz::fail("a key's view holds its hash", view);
      },
      text);
  auto lines = fuzz::lines(text);
  std::optional<std::string> page, size_text;
  if (!lines.empty()) page = std::string(lines[0]);
  if (lines.size() > 1) size_text = std::string(lines[1]);
  expect_400(
      [&] {
        keys::ListQuery q = keys::parse_list_query(page, size_text);
        if (q.page < 1 || q.size < 1 || q.size > keys::kMaxPageSize)
          fuzz::fail("a list query out of range", text);
      },
      text);
  expect_400([&] { (void)keys::parse_info_query(std::nullopt, text); }, text);
  return 0;
}
