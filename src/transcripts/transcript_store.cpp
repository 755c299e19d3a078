// SPDX-License-Identifier: MIT
#include "transcripts/transcript_store.h"

#include <fcntl.h>
#include <glib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <thread>

#include "rtevents/json.h"

#include "common/json.h"
#include "common/main_thread.h"
#include "common/ref.h"
#include "usage/postgres_ledger.h"
#include "usage/usage_report.h"

namespace rtgw::transcripts {
namespace {

// JSONL reads running at once (each scans the whole file on its own thread).
std::atomic<int> scans_running{0};

double now_unix() { return static_cast<double>(g_get_real_time()) / 1e6; }

template <typename Map>
void remember_id(Map& ids, const std::string& id, std::int64_t turn) {
  if (id.empty()) return;
  ids.emplace_back(id, turn);
  if (ids.size() > TranscriptStore::kRememberedIds) ids.pop_front();
}

template <typename Map>
std::optional<std::int64_t> turn_of(const Map& ids, const std::string& id) {
  for (auto it = ids.rbegin(); it != ids.rend(); ++it)
    if (it->first == id) return it->second;
  return std::nullopt;
}

// Worth parsing: the event's type is among these (a cheap substring test first; audio deltas
// and the rest pass by untouched).
bool may_matter(const std::string& text) {
  return text.find("transcript") != std::string::npos ||
         text.find("response.created") != std::string::npos ||
         text.find("input_audio_buffer.committed") != std::string::npos;
}

}  // namespace

std::string to_json_line(const Entry& e) {
  json::ObjectBuilder line;
  line.set("call_id", e.call_id)
      .set("key_name", e.key_name)
      .set("model", e.model)
      .set("turn", static_cast<gint64>(e.turn))
      .set("role", e.role)
      .set("item_id", e.item_id);
  if (e.response_id.empty())
    line.set_null("response_id");
  else
    line.set("response_id", e.response_id);
  line.set("text", e.text).set("at", e.at);
  return line.str();
}

std::optional<Entry> parse_json_line(std::string_view line) {
  auto node = json::parse(line);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) return std::nullopt;
  JsonObject* o = json_node_get_object(node.get());
  Entry e;
  auto call_id = json::get_string(o, "call_id");
  auto role = json::get_string(o, "role");
  auto text = json::get_string(o, "text");
  if (!call_id || !role || !text) return std::nullopt;
  e.call_id = *call_id;
  e.role = *role;
  e.text = *text;
  e.key_name = json::get_string(o, "key_name").value_or("");
  e.model = json::get_string(o, "model").value_or("");
  e.item_id = json::get_string(o, "item_id").value_or("");
  e.response_id = json::get_string(o, "response_id").value_or("");
  if (json_object_has_member(o, "turn")) e.turn = json_object_get_int_member(o, "turn");
  if (json_object_has_member(o, "at")) e.at = json_object_get_double_member(o, "at");
  return e;
}

TranscriptCapture::TranscriptCapture(std::shared_ptr<TranscriptStore> store, std::string call_id,
                                     std::string key_name, std::string model)
    : store_(std::move(store)),
      call_id_(std::move(call_id)),
      key_name_(std::move(key_name)),
      model_(std::move(model)) {}

void TranscriptCapture::on_upstream_event(const std::string& text) {
  if (!may_matter(text)) return;
  auto parsed = rtevents::json::parse(text);
  if (!parsed.root || !parsed.root->is_object()) return;
  const rtevents::json::Value& root = *parsed.root;
  const std::string type = root.last_string("type").value_or("");
  if (type == "response.created") {
    responses_++;
    const rtevents::json::Value* response = root.last("response");
    if (response && response->is_object())
      remember_id(response_turns_, response->last_string("id").value_or(""), responses_);
    return;
  }
  if (type == "input_audio_buffer.committed") {
    remember_id(item_turns_, root.last_string("item_id").value_or(""), responses_ + 1);
    return;
  }
  Entry e;
  if (type == "conversation.item.input_audio_transcription.completed") {
    e.role = "user";
    e.item_id = root.last_string("item_id").value_or("");
    e.turn = turn_of(item_turns_, e.item_id).value_or(responses_ + 1);
  } else if (type == "response.output_audio_transcript.done" ||
             type == "response.audio_transcript.done") {
    e.role = "assistant";
    e.item_id = root.last_string("item_id").value_or("");
    e.response_id = root.last_string("response_id").value_or("");
    e.turn =
        turn_of(response_turns_, e.response_id).value_or(std::max<std::int64_t>(responses_, 1));
  } else {
    return;
  }
  auto transcript = root.last_string("transcript");
  if (!transcript) return;
  e.text = std::move(*transcript);
  e.call_id = call_id_;
  e.key_name = key_name_;
  e.model = model_;
  e.at = now_unix();
  store_->add(std::move(e));
}

TranscriptStore::TranscriptStore(config::TranscriptsConfig config, std::string log_path)
    : config_(std::move(config)), log_path_(std::move(log_path)) {}

TranscriptStore::~TranscriptStore() {
  if (log_fd_ >= 0) ::close(log_fd_);
}

std::string TranscriptStore::log_path_for(const config::Config& config) {
  if (!config.transcripts.log.empty()) return config.transcripts.log;
  if (!config.usage_log.empty()) return config.usage_log + ".transcripts.jsonl";
  return "";
}

const char* TranscriptStore::table_sql() {
  return "CREATE TABLE IF NOT EXISTS transcripts ("
         "id BIGSERIAL PRIMARY KEY, call_id TEXT NOT NULL, key_name TEXT NOT NULL, "
         "model TEXT NOT NULL, turn BIGINT NOT NULL, "
         "role TEXT NOT NULL CHECK (role IN ('user', 'assistant')), item_id TEXT, "
         "response_id TEXT, text TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL); "
         "CREATE INDEX IF NOT EXISTS transcripts_call_id ON transcripts (call_id, id)";
}

const char* TranscriptStore::insert_sql() {
  return "INSERT INTO transcripts (call_id, key_name, model, turn, role, item_id, response_id, "
         "text, created_at) VALUES ($1, $2, $3, $4::bigint, $5, $6, $7, $8, "
         "to_timestamp($9::float8))";
}

const char* TranscriptStore::select_sql() {
  return "SELECT key_name, model, turn, role, item_id, response_id, text, "
         "extract(epoch FROM created_at)::float8 FROM transcripts WHERE call_id = $1 ORDER BY id";
}

void TranscriptStore::set_ledger(usage::PostgresLedger* ledger) {
  ledger_ = ledger;
  // Queued before any entry: the writer runs statements in order.
  if (ledger_ && !ledger_->statement(table_sql(), {}))
    g_warning("transcripts: the ledger refused the table's creation");
}

bool TranscriptStore::wants(const std::string& key_name, const std::string& model) const {
  for (const auto& p : config_.keys)
    if (config::glob_match(p, key_name)) return true;
  for (const auto& p : config_.models)
    if (config::glob_match(p, model)) return true;
  return false;
}

std::shared_ptr<TranscriptCapture> TranscriptStore::capture_for(const std::string& call_id,
                                                                const std::string& key_name,
                                                                const std::string& model) {
  if (!wants(key_name, model)) return nullptr;
  remember(call_id, key_name, model);
  return std::make_shared<TranscriptCapture>(shared_from_this(), call_id, key_name, model);
}

void TranscriptStore::remember(const std::string& call_id, const std::string& key_name,
                               const std::string& model) {
  if (owners_.emplace(call_id, Owner{key_name, model}).second) owner_order_.push_back(call_id);
  while (owner_order_.size() > kRememberedCalls) {
    owners_.erase(owner_order_.front());
    owner_order_.pop_front();
  }
}

void TranscriptStore::add(Entry e) {
  if (ledger_) {
    char turn[32], at[64];
    std::snprintf(turn, sizeof turn, "%lld", static_cast<long long>(e.turn));
    std::snprintf(at, sizeof at, "%.6f", e.at);
    auto or_null = [](const std::string& s) {
      return s.empty() ? std::nullopt : std::optional<std::string>(s);
    };
    if (!ledger_->statement(
            insert_sql(), {e.call_id, e.key_name, e.model, std::string(turn), e.role,
                           or_null(e.item_id), or_null(e.response_id), e.text, std::string(at)})) {
      if (dropped_++ == 0)
        g_warning("[%s] transcripts: the ledger's queue is full: entries dropped",
                  e.call_id.c_str());
    }
    return;
  }
  if (log_path_.empty()) return;
  if (log_fd_ < 0) {
    log_fd_ = ::open(log_path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log_fd_ < 0) {
      if (dropped_++ == 0)
        g_warning("transcripts: cannot open %s (%s): entries dropped", log_path_.c_str(),
                  g_strerror(errno));
      return;
    }
  }
  // One write per line (O_APPEND): a reader sees whole lines, or a last one without its newline.
  std::string line = to_json_line(e) + "\n";
  if (::write(log_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()) &&
      dropped_++ == 0)
    g_warning("transcripts: writing %s failed (%s)", log_path_.c_str(), g_strerror(errno));
}

void TranscriptStore::read(const std::string& call_id,
                           std::function<bool(const std::string&)> may_access,
                           std::function<void(Transcript)> done) {
  std::optional<Owner> owner;
  if (auto it = owners_.find(call_id); it != owners_.end()) owner = it->second;
  if (owner && !may_access(owner->key_name)) {
    post_to_main([done = std::move(done)] { done({}); });
    return;
  }
  // What the store returned: the owner from the entries when this process does not remember it.
  auto finish = [owner, may_access = std::move(may_access), done = std::move(done)](
                    std::vector<Entry> entries, std::string unavailable) {
    Transcript t;
    if (!unavailable.empty()) {
      t.unavailable = std::move(unavailable);
      done(std::move(t));
      return;
    }
    std::optional<Owner> who = owner;
    if (!who && !entries.empty()) who = Owner{entries.front().key_name, entries.front().model};
    if (!who || !may_access(who->key_name)) {
      done({});
      return;
    }
    t.found = true;
    t.model = who->model;
    t.entries = std::move(entries);
    done(std::move(t));
  };
  if (ledger_) {
    bool asked =
        ledger_->statement(select_sql(), {call_id}, [finish](usage::PostgresLedger::Rows rows) {
          if (!rows.error.empty()) {
            finish({}, rows.error);
            return;
          }
          std::vector<Entry> entries;
          for (auto& r : rows.rows) {
            if (r.size() < 8) continue;
            Entry e;
            e.key_name = r[0].value_or("");
            e.model = r[1].value_or("");
            e.turn = std::strtoll(r[2].value_or("0").c_str(), nullptr, 10);
            e.role = r[3].value_or("");
            e.item_id = r[4].value_or("");
            e.response_id = r[5].value_or("");
            e.text = r[6].value_or("");
            e.at = std::strtod(r[7].value_or("0").c_str(), nullptr);
            entries.push_back(std::move(e));
          }
          finish(std::move(entries), "");
        });
    if (!asked) post_to_main([finish] { finish({}, "too many transcript reads at once"); });
    return;
  }
  if (log_path_.empty()) {
    post_to_main([finish] { finish({}, ""); });
    return;
  }
  if (scans_running.fetch_add(1) >= usage::kMaxConcurrentScans) {
    scans_running.fetch_sub(1);
    post_to_main([finish] { finish({}, "too many transcript reads at once"); });
    return;
  }
  std::thread([path = log_path_, call_id, finish]() mutable {
    std::vector<Entry> entries;
    if (g_file_test(path.c_str(), G_FILE_TEST_IS_REGULAR)) {
      std::ifstream in(path);
      std::string line;
      const std::string needle = "\"call_id\":\"" + call_id + "\"";
      // A line being appended as we read is cut short: not valid JSON, skipped.
      while (std::getline(in, line)) {
        if (line.find(needle) == std::string::npos) continue;
        if (auto e = parse_json_line(line); e && e->call_id == call_id)
          entries.push_back(std::move(*e));
      }
    }
    scans_running.fetch_sub(1);
    post_to_main([finish = std::move(finish), entries = std::move(entries)]() mutable {
      finish(std::move(entries), "");
    });
  }).detach();
}

std::optional<std::string> with_input_transcription(const std::optional<std::string>& session_json,
                                                    const std::string& upstream_model,
                                                    const std::string& transcription_model) {
  Ref<JsonNode> root;
  if (session_json) {
    root = json::parse(*session_json);
    if (!root || JSON_NODE_TYPE(root.get()) != JSON_NODE_OBJECT) return std::nullopt;
  } else {
    root = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_OBJECT));
    json_node_take_object(root.get(), json_object_new());
    JsonObject* o = json_node_get_object(root.get());
    json_object_set_string_member(o, "type", "realtime");
    json_object_set_string_member(o, "model", upstream_model.c_str());
  }
  JsonObject* session = json_node_get_object(root.get());
  JsonObject* at = session;
  for (const char* name : {"audio", "input"}) {
    if (!json_object_has_member(at, name))
      json_object_set_object_member(at, name, json_object_new());
    JsonNode* child = json_object_get_member(at, name);
    if (JSON_NODE_TYPE(child) != JSON_NODE_OBJECT) return std::nullopt;
    at = json_node_get_object(child);
  }
  if (json_object_has_member(at, "transcription")) return std::nullopt;
  JsonObject* transcription = json_object_new();
  json_object_set_string_member(transcription, "model", transcription_model.c_str());
  json_object_set_object_member(at, "transcription", transcription);
  return json::to_string(root.get());
}

}  // namespace rtgw::transcripts
