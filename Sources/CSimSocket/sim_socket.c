#define _GNU_SOURCE
#include "sim_socket.h"
#include <sched.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <spawn.h>
#if defined(__linux__)
#include <linux/sockios.h>
#endif

int sim_socket_last_receive_time(int fd, int64_t *realtime_ns) {
#if defined(SIOCGSTAMPNS)
    struct timespec ts;
    if (ioctl(fd, SIOCGSTAMPNS, &ts) != 0) return -1;
    *realtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    return 0;
#else
    (void)fd; (void)realtime_ns;
    errno = ENOTSUP;
    return -1;
#endif
}

int sim_socket_udp_bound(const struct sockaddr *address, socklen_t length) {
    int fd = socket(address->sa_family, SOCK_DGRAM, 0);
    if (fd < 0) return -1;
    if (bind(fd, address, length) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int sim_thread_pin(int cpu) {
#if defined(__linux__)
    static __thread cpu_set_t saved;
    static __thread int pinned = 0;
    if (cpu < 0) {
        if (!pinned) return 0;
        pinned = 0;
        return sched_setaffinity(0, sizeof saved, &saved);
    }
    if (!pinned && sched_getaffinity(0, sizeof saved, &saved) != 0) return -1;
    pinned = 1;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one);
#else
    (void)cpu;
    errno = ENOTSUP;
    return -1;
#endif
}

int sim_usable_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
#else
    errno = ENOTSUP;
    return -1;
#endif
}

int sim_thread_realtime(int priority) {
#if defined(__linux__)
    struct sched_param param = { .sched_priority = priority };
    return sched_setscheduler(0, priority > 0 ? SCHED_FIFO : SCHED_OTHER, &param);
#else
    (void)priority;
    errno = ENOTSUP;
    return -1;
#endif
}

int sim_reserve_descriptors(int count) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    if ((rlim_t)count > limit.rlim_cur) count = (int)limit.rlim_cur;
    if (count < 4) return 0;
    int probe = fcntl(2, F_DUPFD_CLOEXEC, count - 1);
    if (probe < 0) return -1;
    close(probe);
    return count;
}

int sim_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
