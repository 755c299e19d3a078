// SPDX-License-Identifier: MIT
#include "common/pipeline_reaper.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/main_thread.h"

namespace rtgw {
namespace {

constexpr int kReaperThreads = 2;
constexpr auto kReadyPoll = std::chrono::milliseconds(5);
constexpr double kSlowStopMs = 1000;

struct Job {
  Ref<GstElement> pipeline;
  std::function<void()> done;
  StopOptions options;
};

// Stops pad tasks still running in `element` (recursively) after it reached NULL; see the header.
void stop_pad_tasks_below(GstElement* element, int& stopped) {
  gst_element_foreach_pad(
      element,
      [](GstElement* owner, GstPad* pad, gpointer data) -> gboolean {
        Ref<GstTask> task;
        GST_OBJECT_LOCK(pad);
        if (GST_PAD_TASK(pad)) task = Ref<GstTask>::retain(GST_PAD_TASK(pad));
        GST_OBJECT_UNLOCK(pad);
        if (!task || gst_task_get_state(task.get()) == GST_TASK_STOPPED) return TRUE;
        g_message("pad %s:%s still runs a task after its element stopped: flushing and stopping it",
                  GST_OBJECT_NAME(owner), GST_OBJECT_NAME(pad));
        // What the element's own stop does (sctpdec: flush the pad's queue, then stop the task).
        gst_pad_send_event(pad, gst_event_new_flush_start());
        gst_pad_stop_task(pad);
        gst_pad_set_active(pad, FALSE);
        ++*static_cast<int*>(data);
        return TRUE;
      },
      &stopped);
  if (!GST_IS_BIN(element)) return;
  std::vector<Ref<GstElement>> children;
  GST_OBJECT_LOCK(element);
  for (GList* l = GST_BIN_CHILDREN(GST_BIN(element)); l; l = l->next)
    children.push_back(Ref<GstElement>::retain(GST_ELEMENT(l->data)));
  GST_OBJECT_UNLOCK(element);
  for (const Ref<GstElement>& child : children) stop_pad_tasks_below(child.get(), stopped);
}

// A flush-start into each sink pad of `element`: it travels downstream, setting each pad it
// passes flushing and waking a push blocked on one of them (a blocking probe, a preroll wait).
// No flush-stop follows: the element is about to be stopped.
void flush_sink_pads(GstElement* element) {
  std::vector<Ref<GstPad>> pads;
  GST_OBJECT_LOCK(element);
  for (GList* l = element->sinkpads; l; l = l->next)
    pads.push_back(Ref<GstPad>::retain(GST_PAD(l->data)));
  GST_OBJECT_UNLOCK(element);
  for (const Ref<GstPad>& pad : pads) gst_pad_send_event(pad.get(), gst_event_new_flush_start());
}

class Reaper {
 public:
  void push(Job job) {
    std::lock_guard lock(mutex_);
    if (!started_) {
      started_ = true;
      // Detached: they live as long as the process; wait_for_pipeline_reaps() bounds the exit.
      for (int i = 0; i < kReaperThreads; ++i) std::thread([this] { run(); }).detach();
      std::thread([this] { watch(); }).detach();
    }
    queue_.push_back(std::move(job));
    pending_++;
    wake_.notify_one();
  }

  int pending() {
    std::lock_guard lock(mutex_);
    return pending_;
  }

  bool wait(std::chrono::milliseconds bound) {
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, bound, [this] { return pending_ == 0; });
  }

  void set_stuck_bound(std::chrono::milliseconds bound) {
    std::lock_guard lock(mutex_);
    stuck_bound_ = bound;
    watch_wake_.notify_all();
  }

  ReaperStats stats() {
    std::lock_guard lock(mutex_);
    ReaperStats s;
    s.stuck_total = stuck_total_;
    for (const auto& [id, r] : running_) s.stuck_now += r.stuck ? 1 : 0;
    return s;
  }

 private:
  // A stop in progress, as the watchdog sees it.
  struct Running {
    std::string name;
    std::string step;  // what the reaper thread is doing now
    std::chrono::steady_clock::time_point started;
    bool stuck = false;
  };

  std::uint64_t begin(const std::string& name) {
    std::lock_guard lock(mutex_);
    std::uint64_t id = ++next_id_;
    running_[id] = {name, "starting", std::chrono::steady_clock::now(), false};
    return id;
  }

  void note_step(std::uint64_t id, const std::string& step) {
    std::lock_guard lock(mutex_);
    if (auto it = running_.find(id); it != running_.end()) it->second.step = step;
  }

  void end(std::uint64_t id) {
    bool was_stuck = false;
    std::string name;
    double ms = 0;
    {
      std::lock_guard lock(mutex_);
      auto it = running_.find(id);
      if (it == running_.end()) return;
      was_stuck = it->second.stuck;
      name = it->second.name;
      ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                     it->second.started)
               .count();
      running_.erase(it);
    }
    if (was_stuck)
      g_warning("pipeline %s: the stuck stop ended after all, after %.0f ms", name.c_str(), ms);
  }

  // The watchdog thread: every quarter of the bound, each stop past it is logged and counted once.
  void watch() {
    std::unique_lock lock(mutex_);
    for (;;) {
      auto period = std::max(std::chrono::milliseconds(5), stuck_bound_ / 4);
      watch_wake_.wait_for(lock, period);
      const auto now = std::chrono::steady_clock::now();
      std::vector<std::string> messages;
      for (auto& [id, r] : running_) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - r.started);
        if (r.stuck || ms < stuck_bound_) continue;
        r.stuck = true;
        stuck_total_++;
        messages.push_back("pipeline " + r.name + ": STUCK STOP, running for " +
                           std::to_string(ms.count()) + " ms (bound " +
                           std::to_string(stuck_bound_.count()) + " ms) in '" + r.step +
                           "': set_state(NULL) has not returned and holds a reaper thread (" +
                           std::to_string(stuck_total_) + " stuck so far)");
      }
      if (messages.empty()) continue;
      lock.unlock();  // never log under the lock the reaper threads take
      for (const std::string& m : messages) g_warning("%s", m.c_str());
      lock.lock();
    }
  }

  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      stop(job);
      {
        std::lock_guard lock(mutex_);
        if (--pending_ == 0) idle_.notify_all();
      }
      if (job.done) post_to_main(std::move(job.done));
    }
  }

  void stop(Job& job) {
    if (!job.pipeline) return;
    const std::uint64_t id = begin(GST_OBJECT_NAME(job.pipeline.get()));
    if (job.options.ready) {
      auto deadline = std::chrono::steady_clock::now() + job.options.max_wait;
      while (!job.options.ready() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(kReadyPoll);
    }
    // Each step timed: a slow stop says which element took the time (a hang shows as none).
    std::string steps;
    gint64 t0 = g_get_monotonic_time();
    gint64 step = t0;
    auto lap = [&](const char* name) {
      gint64 now = g_get_monotonic_time();
      steps += std::string(steps.empty() ? "" : ", ") + name + " " +
               std::to_string((now - step) / 1000) + " ms";
      step = now;
    };
    // What the watchdog reports if this step does not return.
    auto next = [&](const std::string& what) { note_step(id, what); };
    next("flush-start");
    for (const Ref<GstElement>& element : job.options.flush_first) flush_sink_pads(element.get());
    if (!job.options.flush_first.empty()) lap("flush-start");
    for (const Ref<GstElement>& element : job.options.stop_first) {
      next(std::string("set_state(NULL) of ") + GST_OBJECT_NAME(element.get()));
      gst_element_set_locked_state(element.get(), TRUE);
      gst_element_set_state(element.get(), GST_STATE_NULL);
      lap(GST_OBJECT_NAME(element.get()));
    }
    next("set_state(NULL) of the rest");
    gst_element_set_state(job.pipeline.get(), GST_STATE_NULL);
    lap("the rest");
    next("leftover pad tasks, freeing");
    if (int late = stop_leftover_pad_tasks(job.pipeline.get()); late > 0)
      g_message("pipeline %s: stopped %d pad task(s) left running after NULL",
                GST_OBJECT_NAME(job.pipeline.get()), late);
    std::string name = GST_OBJECT_NAME(job.pipeline.get());
    job.options.stop_first.clear();
    job.options.flush_first.clear();
    job.pipeline.reset();  // usually the last reference: the pipeline is freed here
    lap("freeing");
    double total_ms = (g_get_monotonic_time() - t0) / 1000.0;
    if (total_ms >= kSlowStopMs)
      g_message("pipeline %s: slow stop off the main loop, %.1f ms (%s)", name.c_str(), total_ms,
                steps.c_str());
    else
      g_debug("pipeline %s stopped in %.1f ms off the main loop", name.c_str(), total_ms);
    job.options.ready = nullptr;
    end(id);
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<Job> queue_;
  int pending_ = 0;
  bool started_ = false;
  std::condition_variable watch_wake_;
  std::map<std::uint64_t, Running> running_;
  std::uint64_t next_id_ = 0;
  std::uint64_t stuck_total_ = 0;
  std::chrono::milliseconds stuck_bound_ = kStuckStopBound;
};

Reaper& reaper() {
  // Never destroyed: detached threads may still use it while static destructors run.
  static auto* instance = new Reaper;
  return *instance;
}

}  // namespace

int stop_leftover_pad_tasks(GstElement* element) {
  int stopped = 0;
  stop_pad_tasks_below(element, stopped);
  return stopped;
}

void stop_pipeline_async(Ref<GstElement> pipeline, std::function<void()> done_on_main,
                         StopOptions options) {
  reaper().push({std::move(pipeline), std::move(done_on_main), std::move(options)});
}

int pending_pipeline_reaps() { return reaper().pending(); }

bool wait_for_pipeline_reaps(std::chrono::milliseconds bound) { return reaper().wait(bound); }

void set_stuck_stop_bound(std::chrono::milliseconds bound) { reaper().set_stuck_bound(bound); }

ReaperStats reaper_stats() { return reaper().stats(); }

}  // namespace rtgw
