// Stopping a helper thread of the dispatcher (the ResultWriter's and the WalSyncer's): each runs
// one loop that waits on a condition variable for work or for its stop flag, both under one mutex.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

namespace simpleci::dispatcher {

// Raises *stop under mu, wakes the loop waiting on cv and joins its thread. The loop decides what
// it still finishes first (the writer empties its queue; the syncer ends after the flush under way).
inline void stop_worker(std::mutex& mu, std::condition_variable& cv, bool* stop, std::thread& t) {
  {
    std::lock_guard<std::mutex> lock(mu);
    *stop = true;
  }
  cv.notify_all();
  t.join();
}

}  // namespace simpleci::dispatcher
