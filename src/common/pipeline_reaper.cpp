// SPDX-License-Identifier: MIT
#include "common/pipeline_reaper.h"

#include <condition_variable>
#include <deque>
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

 private:
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

  static void stop(Job& job) {
    if (!job.pipeline) return;
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
    for (const Ref<GstElement>& element : job.options.flush_first) flush_sink_pads(element.get());
    if (!job.options.flush_first.empty()) lap("flush-start");
    for (const Ref<GstElement>& element : job.options.stop_first) {
      gst_element_set_locked_state(element.get(), TRUE);
      gst_element_set_state(element.get(), GST_STATE_NULL);
      lap(GST_OBJECT_NAME(element.get()));
    }
    gst_element_set_state(job.pipeline.get(), GST_STATE_NULL);
    lap("the rest");
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
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<Job> queue_;
  int pending_ = 0;
  bool started_ = false;
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

}  // namespace rtgw
