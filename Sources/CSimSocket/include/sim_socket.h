#ifndef SIM_SOCKET_H
#define SIM_SOCKET_H
#include <stdint.h>
#include <sys/socket.h>

/// A UDP socket bound to `address` (non-blocking), or -1 with errno set.
int sim_socket_udp_bound(const struct sockaddr *address, socklen_t length);

/// The kernel's receive time (CLOCK_REALTIME, ns) of the last datagram read from `fd`
/// (SIOCGSTAMPNS; the first call turns time-stamping on). Returns 0, or -1 with errno set.
/// In C because ioctl is variadic, which Swift cannot call.
int sim_socket_last_receive_time(int fd, int64_t *realtime_ns);

/// Pins the calling thread to CPU `cpu` (threads and processes it starts inherit that), or with
/// `cpu` < 0 gives it back the CPUs it had before the last pin. Returns 0, or -1 with errno set.
int sim_thread_pin(int cpu);

#endif
