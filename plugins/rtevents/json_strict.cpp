// SPDX-License-Identifier: MIT
#include "json_strict.h"

#include <cstdint>

#include "json_chars.h"

namespace rtgw::rtevents::strict_json {
namespace {

using json_chars::hex4;
using json_chars::is_digit;
using json_chars::is_ws;

// Length of the well-formed UTF-8 sequence at `i` (RFC 3629's table: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_length(std::string_view t, std::size_t i) {
  const auto b = [&](std::size_t k) -> unsigned {
    return i + k < t.size() ? static_cast<unsigned char>(t[i + k]) : 0x100u;
  };
  const auto cont = [&](std::size_t k) { return b(k) >= 0x80 && b(k) <= 0xBF; };
  const unsigned c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return b(1) >= 0xA0 && b(1) <= 0xBF && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return b(1) >= 0x80 && b(1) <= 0x9F && cont(2) ? 3 : 0;
  if (c == 0xF0) return b(1) >= 0x90 && b(1) <= 0xBF && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return b(1) >= 0x80 && b(1) <= 0x8F && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

class Checker {
 public:
  Checker(std::string_view text, int max_depth, bool json_glib)
      : t_(text), max_depth_(max_depth), json_glib_(json_glib) {}

  Result run() {
    // Expectations between tokens. The stack holds '{' or '[' per open container.
    enum class Want { kValue, kValueOrClose, kKey, kKeyOrClose, kAfterValue };
    Want want = Want::kValue;
    for (;;) {
      skip_ws();
      if (want == Want::kAfterValue) {
        if (stack_.empty()) {
          if (i_ != t_.size())
            return fail(t_[i_] == '/' ? "comments are not JSON"
                                      : "unexpected characters after the JSON value");
          Result r;
          r.ok = true;
          r.max_depth = max_depth_;
          if (repaired_used_) r.repaired = std::move(repaired_);
          return r;
        }
        if (i_ == t_.size()) return fail("unexpected end of the text (unclosed array or object)");
        const char c = t_[i_];
        const char top = stack_.back();
        if (c == ',') {
          ++i_;
          want = top == '{' ? Want::kKey : Want::kValue;
        } else if ((c == '}' && top == '{') || (c == ']' && top == '[')) {
          ++i_;
          stack_.pop_back();
        } else if (c == '/') {
          return fail("comments are not JSON");
        } else {
          return fail(top == '{' ? "expected ',' or '}' after an object member"
                                 : "expected ',' or ']' after an array element");
        }
        continue;
      }
      if (i_ == t_.size())
        return fail(t_.empty() || (stack_.empty() && want == Want::kValue)
                        ? "no JSON value (empty text)"
                        : "unexpected end of the text");
      const char c = t_[i_];
      if (want == Want::kKey || want == Want::kKeyOrClose) {
        if (want == Want::kKeyOrClose && c == '}') {
          ++i_;
          stack_.pop_back();
          want = Want::kAfterValue;
          continue;
        }
        if (c != '"') return fail(lexical_reason(c, "expected a member name (a string)"));
        if (!string()) return failed();
        skip_ws();
        if (i_ == t_.size() || t_[i_] != ':') return fail("expected ':' after a member name");
        ++i_;
        want = Want::kValue;
        continue;
      }
      // A value (or, right after '[', the close).
      if (want == Want::kValueOrClose && c == ']') {
        ++i_;
        stack_.pop_back();
        want = Want::kAfterValue;
        continue;
      }
      if (c == '{' || c == '[') {
        if (static_cast<int>(stack_.size()) >= max_depth_) {
          too_deep_ = true;
          return fail("JSON nested deeper than the bound");
        }
        stack_.push_back(c);
        ++i_;
        want = c == '{' ? Want::kKeyOrClose : Want::kValueOrClose;
        continue;
      }
      if (c == '"') {
        if (!string()) return failed();
      } else if (c == '-' || is_digit(c)) {
        if (!number()) return failed();
      } else if (c == 't' || c == 'f' || c == 'n') {
        if (!literal()) return failed();
      } else {
        return fail(lexical_reason(c, "expected a JSON value"));
      }
      want = Want::kAfterValue;
    }
  }

 private:
  Result fail(const char* reason) {
    reason_ = reason;
    return failed();
  }
  // The failure recorded at i_ (by fail_at or fail).
  Result failed() const {
    Result r;
    r.offset = i_;
    r.reason = reason_;
    r.too_deep = too_deep_;
    r.max_depth = max_depth_;
    return r;
  }
  bool fail_at(std::size_t at, const char* reason) {
    i_ = at;
    reason_ = reason;
    return false;
  }

  // Names what lenient parsers accept and JSON does not, for a clearer error.
  static const char* lexical_reason(char c, const char* otherwise) {
    switch (c) {
      case '/':
        return "comments are not JSON";
      case '\'':
        return "single-quoted strings are not JSON";
      case 'N':
      case 'I':
        return "NaN and Infinity are not JSON";
      case ',':
      case ']':
      case '}':
        return "trailing comma or missing value";
      case '\xEF':
        return "a byte order mark is not JSON text";
      default:
        return otherwise;
    }
  }

  void skip_ws() {
    while (i_ < t_.size() && is_ws(t_[i_])) ++i_;
  }

  bool literal() {
    for (std::string_view word :
         {std::string_view("true"), std::string_view("false"), std::string_view("null")}) {
      if (t_.substr(i_, word.size()) == word) {
        i_ += word.size();
        return true;
      }
    }
    return fail_at(i_, "expected a JSON value (true, false or null?)");
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number() {
    const std::size_t start = i_;
    if (t_[i_] == '-') ++i_;
    const std::size_t digits = i_;
    if (i_ == t_.size() || !is_digit(t_[i_]))
      return fail_at(i_, i_ < t_.size() && t_[i_] == 'I' ? "NaN and Infinity are not JSON"
                                                         : "a digit must follow '-'");
    if (t_[i_] == '0') {
      ++i_;
      if (i_ < t_.size() && is_digit(t_[i_]))
        return fail_at(i_ - 1, "numbers with leading zeros are not JSON");
    } else {
      while (i_ < t_.size() && is_digit(t_[i_])) ++i_;
    }
    const bool integer = i_ == t_.size() || (t_[i_] != '.' && t_[i_] != 'e' && t_[i_] != 'E');
    if (json_glib_ && integer) {
      // Beyond int64 (no leading zeros here, so longer is larger).
      const std::string_view magnitude = t_.substr(digits, i_ - digits);
      const std::string_view bound =
          t_[start] == '-' ? "9223372036854775808" : "9223372036854775807";
      if (magnitude.size() > bound.size() ||
          (magnitude.size() == bound.size() && magnitude > bound))
        return fail_at(start, "an integer is out of range (beyond 64 bits)");
    }
    if (i_ < t_.size() && t_[i_] == '.') {
      ++i_;
      if (i_ == t_.size() || !is_digit(t_[i_]))
        return fail_at(i_, "a digit must follow a decimal point");
      while (i_ < t_.size() && is_digit(t_[i_])) ++i_;
    }
    if (i_ < t_.size() && (t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
      if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-')) ++i_;
      if (i_ == t_.size() || !is_digit(t_[i_]))
        return fail_at(i_, "a digit must follow an exponent");
      while (i_ < t_.size() && is_digit(t_[i_])) ++i_;
    }
    return true;
  }

  // The string at i_ (its opening quote); leaves i_ past the closing quote.
  bool string() {
    ++i_;
    for (;;) {
      if (i_ >= t_.size()) return fail_at(t_.size(), "unterminated string");
      const auto c = static_cast<unsigned char>(t_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return fail_at(i_, "a control character in a string must be escaped");
      if (c == '\\') {
        if (!escape()) return false;
        continue;
      }
      if (c < 0x80) {
        ++i_;
        continue;
      }
      const std::size_t n = utf8_length(t_, i_);
      if (n == 0) return fail_at(i_, "a string is not valid UTF-8");
      i_ += n;
    }
  }

  // The escape at i_ (its backslash); leaves i_ past it.
  bool escape() {
    const char kind = i_ + 1 < t_.size() ? t_[i_ + 1] : '\0';
    switch (kind) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        i_ += 2;
        return true;
      case 'u':
        break;
      default:
        return fail_at(i_, "invalid escape in a string");
    }
    const int unit = hex4(t_, i_ + 2);
    if (unit < 0) return fail_at(i_, "invalid escape in a string");
    if (unit == 0 && json_glib_) return fail_at(i_, "\\u0000 in a string is not accepted here");
    if (unit < 0xD800 || unit > 0xDFFF) {
      i_ += 6;
      return true;
    }
    if (unit <= 0xDBFF && i_ + 7 < t_.size() && t_[i_ + 6] == '\\' && t_[i_ + 7] == 'u') {
      const int low = hex4(t_, i_ + 8);
      if (low >= 0xDC00 && low <= 0xDFFF) {  // a proper pair
        i_ += 12;
        return true;
      }
    }
    // A lone surrogate: valid JSON text, no character. Replaced, same length.
    if (!repaired_used_) repaired_.assign(t_);
    repaired_used_ = true;
    repaired_.replace(i_, 6, "\\uFFFD");
    i_ += 6;
    return true;
  }

  std::string_view t_;
  int max_depth_;
  bool json_glib_;
  std::size_t i_ = 0;
  std::string stack_;
  const char* reason_ = "";
  bool too_deep_ = false;
  std::string repaired_;  // the text with lone surrogate escapes replaced, once one was seen
  bool repaired_used_ = false;
};

}  // namespace

std::string Result::message() const {
  if (ok) return {};
  std::string what = too_deep ? "JSON nested deeper than " + std::to_string(max_depth) + " levels"
                              : std::string(reason);
  return what + " (at byte " + std::to_string(offset) + ")";
}

Result check(std::string_view text, int max_depth, bool json_glib) {
  return Checker(text, max_depth, json_glib).run();
}

}  // namespace rtgw::rtevents::strict_json
