#ifndef SIM_SOCKET_H
#define SIM_SOCKET_H
#include <stdint.h>
#include <sys/socket.h>
#include <spawn.h>

/// A UDP socket bound to `address` (non-blocking), or -1 with errno set.
int sim_socket_udp_bound(const struct sockaddr *address, socklen_t length);

/// The kernel's receive time (CLOCK_REALTIME, ns) of the last datagram read from `fd`
/// (SIOCGSTAMPNS; the first call turns time-stamping on). Returns 0, or -1 with errno set.
/// In C because ioctl is variadic, which Swift cannot call.
int sim_socket_last_receive_time(int fd, int64_t *realtime_ns);

/// Pins the calling thread to CPU `cpu` (threads and processes it starts inherit that), or with
/// `cpu` < 0 gives it back the CPUs it had before the last pin. Returns 0, or -1 with errno set.
int sim_thread_pin(int cpu);

/// How many CPUs this process may run on (its affinity mask, e.g. under `taskset`), or -1.
int sim_usable_cpus(void);

/// Runs the calling thread at real-time priority `priority` (SCHED_FIFO), or with 0 back at the
/// normal policy (threads it starts afterwards inherit that). Returns 0, or -1 with errno set.
int sim_thread_realtime(int priority);

/// Grows this process's file-descriptor table once to hold `count` descriptors (at most the soft
/// RLIMIT_NOFILE): growing it later, in a multi-threaded process, waits for an RCU grace period
/// inside whichever call opened the descriptor (8-28 ms here, over a second under load), which on
/// the simulator's event loop stalls every caller's RTP. Returns the size, or -1 with errno set.
int sim_reserve_descriptors(int count);

/// Adds "close every descriptor from `lowest` up" to spawn actions (glibc's
/// posix_spawn_file_actions_addclosefrom_np, which needs _GNU_SOURCE). Returns 0 or an errno.
int sim_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

#endif
