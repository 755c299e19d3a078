// SPDX-License-Identifier: MIT
// Lenient, span-preserving JSON reader. See json.h for what it accepts and why.
#include "json.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "json_chars.h"

namespace rtgw::rtevents::json {
namespace {

using json_chars::hex_value;
using json_chars::is_digit;
using json_chars::is_ws;

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int read_hex4(std::string_view s, std::size_t i) { return json_chars::hex4(s, i); }

// Decodes the inside of a string literal (already validated by the parser).
std::string decode_string(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    ++i;
    const char e = i < body.size() ? body[i] : '\0';
    switch (e) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        std::uint32_t cp = static_cast<std::uint32_t>(read_hex4(body, i + 1));
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          // A high surrogate: combine with a following low surrogate, if any.
          if (i + 2 < body.size() && body[i + 1] == '\\' && body[i + 2] == 'u') {
            const int lo = read_hex4(body, i + 3);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<std::uint32_t>(lo) - 0xDC00);
              i += 6;
            } else {
              cp = 0xFFFD;
            }
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD;  // lone low surrogate
        }
        append_utf8(out, cp);
        break;
      }
      default:
        out.push_back(e);
        break;  // unreachable: the parser rejects other escapes
    }
  }
  return out;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : t_(text) {}

  ParseResult run() {
    ParseResult r;
    // A UTF-8 byte-order mark is tolerated.
    if (t_.substr(0, 3) == "\xEF\xBB\xBF") p_ = 3;
    skip_ws();
    Value v;
    if (!value(v, 0)) {
      r.error = err_ + " at byte " + std::to_string(p_);
      return r;
    }
    skip_ws();
    r.trailing = p_ < t_.size();
    r.root = std::move(v);
    return r;
  }

 private:
  bool fail(const char* why) {
    if (err_.empty()) err_ = why;
    return false;
  }
  bool at_end() const { return p_ >= t_.size(); }
  char peek() const { return t_[p_]; }
  void skip_ws() {
    while (!at_end() && is_ws(peek())) ++p_;
  }

  // String literal at p_ (which is a '"'); leaves p_ after the closing quote. Raw control bytes
  // and invalid UTF-8 are tolerated. Runs of plain bytes are skipped with memchr (base64 audio
  // makes most of the bytes of an event).
  bool string_token(bool* has_escapes) {
    ++p_;
    bool esc = false;
    std::size_t quote = std::string_view::npos;  // next '"' at or after p_, cached
    for (;;) {
      if (quote == std::string_view::npos || quote < p_) quote = t_.find('"', p_);
      if (quote == std::string_view::npos) return fail("unterminated string");
      const void* bs = std::memchr(t_.data() + p_, '\\', quote - p_);
      if (!bs) {
        p_ = quote + 1;
        if (has_escapes) *has_escapes = esc;
        return true;
      }
      esc = true;
      p_ = static_cast<std::size_t>(static_cast<const char*>(bs) - t_.data()) + 1;
      if (at_end()) return fail("unterminated string");
      const char e = t_[p_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          break;
        case 'u':
          if (read_hex4(t_, p_) < 0) return fail("bad \\u escape");
          p_ += 4;
          break;
        default:
          return fail("bad escape");
      }
    }
  }

  bool word(std::string_view w) {
    if (t_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }

  bool number_token() {
    if (word("NaN")) return true;
    if (peek() == '-' || peek() == '+') ++p_;
    if (word("Infinity")) return true;
    const std::size_t digits_start = p_;
    while (!at_end() && is_digit(peek())) ++p_;
    bool any = p_ > digits_start;
    if (!at_end() && peek() == '.') {
      ++p_;
      const std::size_t f = p_;
      while (!at_end() && is_digit(peek())) ++p_;
      any = any || p_ > f;
    }
    if (!any) return fail("bad number");
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++p_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++p_;
      const std::size_t e = p_;
      while (!at_end() && is_digit(peek())) ++p_;
      if (p_ == e) return fail("bad exponent");
    }
    return true;
  }

  // A scalar at p_ (not '{' or '[').
  bool scalar(Value* out) {
    const std::size_t start = p_;
    const char c = peek();
    Type type;
    bool b = false, esc = false;
    if (c == '"') {
      if (!string_token(&esc)) return false;
      type = Type::kString;
    } else if (word("true")) {
      type = Type::kBool;
      b = true;
    } else if (word("false")) {
      type = Type::kBool;
    } else if (word("null")) {
      type = Type::kNull;
    } else if (c == '-' || c == '+' || c == '.' || is_digit(c) || c == 'N' || c == 'I') {
      if (!number_token()) return false;
      type = Type::kNumber;
    } else {
      return fail("unexpected character");
    }
    if (out) {
      out->type = type;
      out->boolean = b;
      out->has_escapes = esc;
      out->raw = t_.substr(start, p_ - start);
    }
    return true;
  }

  bool value(Value& out, int depth) {
    if (at_end()) return fail("unexpected end");
    const char c = peek();
    if (c != '{' && c != '[') return scalar(&out);
    const std::size_t start = p_;
    if (depth >= kMaxDepth) {
      if (!skip_nested()) return false;
      out.type = Type::kOpaque;
      out.raw = t_.substr(start, p_ - start);
      return true;
    }
    ++p_;
    if (c == '{') {
      out.type = Type::kObject;
      for (;;) {
        skip_ws();
        if (at_end()) return fail("unterminated object");
        if (peek() == '}') break;  // empty object, or a tolerated trailing comma
        if (peek() != '"') return fail("expected a key");
        Member m;
        m.begin = p_;
        bool esc = false;
        if (!string_token(&esc)) return false;
        const std::string_view key_body = t_.substr(m.begin + 1, p_ - m.begin - 2);
        m.key = esc ? decode_string(key_body) : std::string(key_body);
        skip_ws();
        if (at_end() || peek() != ':') return fail("expected ':'");
        ++p_;
        skip_ws();
        if (!value(m.value, depth + 1)) return false;
        m.end = p_;
        out.members.push_back(std::move(m));
        skip_ws();
        if (at_end()) return fail("unterminated object");
        if (peek() == ',') {
          ++p_;
          continue;
        }
        if (peek() != '}') return fail("expected ',' or '}'");
        break;
      }
    } else {
      out.type = Type::kArray;
      for (;;) {
        skip_ws();
        if (at_end()) return fail("unterminated array");
        if (peek() == ']') break;
        Value item;
        if (!value(item, depth + 1)) return false;
        out.items.push_back(std::move(item));
        skip_ws();
        if (at_end()) return fail("unterminated array");
        if (peek() == ',') {
          ++p_;
          continue;
        }
        if (peek() != ']') return fail("expected ',' or ']'");
        break;
      }
    }
    ++p_;  // the closing bracket
    out.raw = t_.substr(start, p_ - start);
    return true;
  }

  // Validates the object or array at p_ without building it and without recursion.
  bool skip_nested() {
    enum class St { kValue, kValueOrClose, kKeyOrClose, kAfter };
    std::vector<char> stack;
    St st = St::kValue;
    for (;;) {
      if (st == St::kAfter && stack.empty()) return true;
      skip_ws();
      if (at_end()) return fail("unexpected end");
      const char c = peek();
      switch (st) {
        case St::kKeyOrClose:
          if (c == '}') {
            ++p_;
            stack.pop_back();
            st = St::kAfter;
            break;
          }
          if (c != '"') return fail("expected a key");
          if (!string_token(nullptr)) return false;
          skip_ws();
          if (at_end() || peek() != ':') return fail("expected ':'");
          ++p_;
          st = St::kValue;
          break;
        case St::kValueOrClose:
          if (c == ']') {
            ++p_;
            stack.pop_back();
            st = St::kAfter;
            break;
          }
          [[fallthrough]];
        case St::kValue:
          if (c == '{' || c == '[') {
            ++p_;
            stack.push_back(c);
            st = c == '{' ? St::kKeyOrClose : St::kValueOrClose;
          } else {
            if (!scalar(nullptr)) return false;
            st = St::kAfter;
          }
          break;
        case St::kAfter:
          if (c == ',') {
            ++p_;
            st = stack.back() == '{' ? St::kKeyOrClose : St::kValueOrClose;
          } else if ((c == '}' && stack.back() == '{') || (c == ']' && stack.back() == '[')) {
            ++p_;
            stack.pop_back();
          } else {
            return fail("expected ',' or a closing bracket");
          }
          break;
      }
    }
  }

  std::string_view t_;
  std::size_t p_ = 0;
  std::string err_;
};

}  // namespace

std::optional<std::string> Value::as_string() const {
  if (type != Type::kString) return std::nullopt;
  const std::string_view body = raw.substr(1, raw.size() - 2);
  return has_escapes ? decode_string(body) : std::string(body);
}

std::optional<std::int64_t> Value::as_int() const {
  if (type != Type::kNumber || raw.empty()) return std::nullopt;
  const std::size_t digits = raw[0] == '-' ? 1 : 0;
  if (digits >= raw.size()) return std::nullopt;
  for (std::size_t i = digits; i < raw.size(); ++i) {
    if (!is_digit(raw[i])) return std::nullopt;
  }
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), v);
  if (ec != std::errc() || ptr != raw.data() + raw.size()) return std::nullopt;
  return v;
}

const Value* Value::last(std::string_view key) const {
  for (auto it = members.rbegin(); it != members.rend(); ++it) {
    if (it->key == key) return &it->value;
  }
  return nullptr;
}

std::vector<const Value*> Value::all(std::string_view key) const {
  std::vector<const Value*> out;
  for (const auto& m : members) {
    if (m.key == key) out.push_back(&m.value);
  }
  return out;
}

std::optional<std::string> Value::last_string(std::string_view key) const {
  const Value* v = last(key);
  return v ? v->as_string() : std::nullopt;
}

std::vector<std::string> Value::all_strings(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& m : members) {
    if (m.key == key && m.value.is_string()) out.push_back(*m.value.as_string());
  }
  return out;
}

ParseResult parse(std::string_view text) { return Parser(text).run(); }

std::string cut(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  for (const auto& [from, to] : ranges) {
    if (from < pos) continue;  // overlapping range: ignore (callers never produce one)
    out.append(text.substr(pos, from - pos));
    pos = to;
  }
  out.append(text.substr(std::min(pos, text.size())));
  return out;
}

}  // namespace rtgw::rtevents::json
