// Turns SIGINT/SIGTERM into a readable file descriptor that a zmq::poll loop can watch.
#pragma once

namespace simpleci {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (call it in main before starting
// threads, so every thread inherits the mask) and returns a signalfd that becomes readable when
// one arrives; -1 on failure. Read with read_signal(). Note: the blocked mask survives exec, so
// code that starts child processes must call unblock_signals_in_child() in the child.
int make_signal_fd();

// Reads one pending signal from the fd; returns its number, or 0 when none was pending.
int read_signal(int fd);

// Restores default dispositions and an empty mask; for a forked child before exec.
void unblock_signals_in_child();

}  // namespace simpleci
