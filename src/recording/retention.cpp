// SPDX-License-Identifier: MIT
#include "recording/retention.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

#include "common/main_thread.h"
#include "recording/recording_plan.h"

namespace rtgw::recording {
namespace {

constexpr guint kSweepEverySeconds = 3600;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool is_recording_file(const std::string& name) {
  for (const char* suffix : {".client.ogg", ".upstream.ogg", ".json"})
    if (ends_with(name, suffix)) return valid_call_id(name.substr(0, name.size() - strlen(suffix)));
  return false;
}

std::size_t sweep_dir(const std::string& dir, int days, gint64 now_unix_s) {
  if (days <= 0) return 0;
  GDir* raw = g_dir_open(dir.c_str(), 0, nullptr);
  if (!raw) return 0;
  std::unique_ptr<GDir, decltype(&g_dir_close)> d(raw, &g_dir_close);
  const gint64 cutoff = now_unix_s - gint64{days} * 86400;
  std::size_t removed = 0;
  while (const char* name = g_dir_read_name(d.get())) {
    if (!is_recording_file(name)) continue;
    std::string path = dir + "/" + name;
    GStatBuf st;
    if (g_stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (st.st_mtime >= cutoff) continue;
    if (g_unlink(path.c_str()) == 0) removed++;
  }
  return removed;
}

RetentionSweeper::RetentionSweeper(std::string dir, int days) : dir_(std::move(dir)), days_(days) {
  if (days_ <= 0 || dir_.empty()) return;
  sweep_async();
  timer_ = run_every_seconds(kSweepEverySeconds, [this] {
    sweep_async();
    return true;
  });
}

void RetentionSweeper::sweep_async() const {
  struct Job {
    std::string dir;
    int days;
    std::size_t removed = 0;
  };
  // The thread gets its own copy: the sweeper may be gone when it ends (only a log line follows).
  auto ready = async_ready([](GObject*, GAsyncResult* result) {
    auto* job = static_cast<Job*>(g_task_get_task_data(G_TASK(result)));
    if (job->removed)
      g_message("recording retention: removed %zu file(s) older than %d day(s) from %s",
                job->removed, job->days, job->dir.c_str());
  });
  auto task = Ref<GTask>::adopt(g_task_new(nullptr, nullptr, ready.callback, ready.user_data));
  g_task_set_task_data(task.get(), new Job{dir_, days_},
                       [](gpointer p) { delete static_cast<Job*>(p); });
  g_task_run_in_thread(task.get(), [](GTask* t, gpointer, gpointer data, GCancellable*) {
    auto* job = static_cast<Job*>(data);
    job->removed = sweep_dir(job->dir, job->days, g_get_real_time() / G_USEC_PER_SEC);
    g_task_return_boolean(t, TRUE);
  });
}

}  // namespace rtgw::recording
