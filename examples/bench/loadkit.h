/*
 * loadkit.h - what the two C load clients, echo_load.c and chat_load.c, share: the clock,
 * the client's own CPU time, option parsing, and the set-up of a freshly connected socket.
 *
 * Both include it ("loadkit.h", found beside them), so each still builds from its one .c
 * file; load.py's build_load hashes this header with the source, so editing it rebuilds
 * both.  Everything is static: each client is one translation unit.
 */
#ifndef LOADKIT_H
#define LOADKIT_H

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* A bad option value is a usage error: say which option, exit 2. */
static double parse_double(const char *s, const char *name) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || v < 0) { fprintf(stderr, "bad %s: %s\n", name, s); exit(2); }
    return v;
}

static long parse_long(const char *s, const char *name, long lo) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo) { fprintf(stderr, "bad %s: %s\n", name, s); exit(2); }
    return v;
}

/* A connected socket FD made ready for the client's loop: Nagle off (a message must not wait
 * for the previous one's acknowledgement, or latency measures the delayed ACK), non-blocking,
 * and in EPFD for input with PTR as its data.  epoll_ctl's result: -1 (errno set) on failure. */
static int watch_socket(int epfd, int fd, void *ptr) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ptr};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

#endif
