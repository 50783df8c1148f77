/*
 * chat_load.c - a closed-loop load client for the line chat room (protocols/chat.py's
 * contract), cheap enough per delivery that the server, not the client, is the limit.
 *
 * Built by examples/bench/load.py (build_load) into the bench's build cache; it includes
 * loadkit.h, which it shares with echo_load.c, from this folder.
 *
 *   chat_load --port P [--other-ports P2,...] [--host H] [--conns N] [--size BYTES]
 *             [--pipeline K] [--seconds T] [--warmup W]
 *
 * The method is chatload.py's.  --conns members join one room (with --other-ports, the room
 * shared by several servers, in contiguous blocks: with two, members 0..N/2-1 on the first
 * server, the rest on the second); the
 * client waits until every member has its welcome and the room's join notices have arrived.
 * Each member then keeps --pipeline lines of --size bytes ("SEQ letters...\n") in flight; a
 * line is done when every *other* member has received "NAME: SEQ letters...", and only then
 * may its sender send another.  Every delivery is checked byte for byte: it must be the next
 * line of that sender for that receiver, so loss, duplication, reordering and misattribution
 * are all caught.  A delivery is one line written by the server to one member.
 *
 * Latency: of every delivery (from sending the line until that member has it), of every
 * line (until its last delivery), and of the deliveries that crossed servers.  A room notice
 * during the run ("* NAME left", "... too slow") is an error; with several servers a late
 * "* NAME joined" (the joins travel through Redis and may come after the count) is counted
 * apart and is not one.
 *
 * Prints ONE JSON line on stdout, with chatload.py's keys.  Exit status: 0 ok; 1 mismatches,
 * notices or lost connections during the run; 2 usage or setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadkit.h"

#define PATBASE 65521u            /* prime: distinct line offsets, as in chatload.py */
#define RBUF_SIZE (1u << 20)
#define MAX_LINE 8192             /* above the room's 4096-byte lines plus a name */
#define MAX_NAME 128
#define MAX_PORTS 16
#define SETUP_TIMEOUT_S 30
#define WELCOME "* welcome, you are "

typedef struct {
    uint64_t sent_ns;
    int waiting;                  /* members that have not received it yet */
} line_t;

typedef struct member {
    int fd, number, server, alive, want_out;
    char name[MAX_NAME];
    size_t name_len;
    char partial[MAX_LINE];       /* an incomplete line left by the last read */
    size_t partial_len;
    char *out;                    /* queued bytes not yet written */
    size_t out_len;
    uint64_t next_seq;            /* seq of the next line to send */
    uint64_t first_in_flight;     /* seq of ring[first_in_flight % pipeline] */
    int in_flight;
    line_t *ring;
} member_t;

typedef struct {                  /* a growable array of latencies in ns */
    uint64_t *v;
    size_t n, cap;
} lats_t;

static const char *opt_host = "127.0.0.1";
static char *opt_port = NULL;
static char *opt_other_ports = NULL;
static int opt_conns = 10;
static size_t opt_size = 128;
static int opt_pipeline = 1;
static double opt_seconds = 5.0, opt_warmup = 1.0;

static member_t *members;
static uint64_t *expect_seq;      /* [receiver * conns + sender]: next seq due */
static int *by_name;              /* open-addressing table of member numbers, -1 empty */
static size_t by_name_mask;
static unsigned char letters[PATBASE + MAX_LINE];
static char rbuf[RBUF_SIZE];
static int epfd, alive_members, nports;
static int setup_done = 0, stopping = 0;
static uint64_t t_open, t_close;  /* the measured window */
static uint64_t deliveries, lines_done, setup_notices, late_joins;
static uint64_t errors, mismatches;
static lats_t delivery_lat, line_lat, remote_lat;

static void lat_add(lats_t *l, uint64_t value) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 65536;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) { perror("realloc"); exit(2); }
    }
    l->v[l->n++] = value;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles of a sorted array, in ms, as JSON (null when empty). */
static void print_pct(const char *key, const lats_t *l, double fraction) {
    if (l->n == 0) { printf(", \"%s\": null", key); return; }
    size_t rank = (size_t)(fraction * (double)l->n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > l->n) rank = l->n;
    printf(", \"%s\": %.4f", key, (double)l->v[rank - 1] / 1e6);
}

static uint64_t hash_name(const char *name, size_t len) {
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
    return h;
}

static void add_name(member_t *m) {
    size_t slot = hash_name(m->name, m->name_len) & by_name_mask;
    while (by_name[slot] >= 0) slot = (slot + 1) & by_name_mask;
    by_name[slot] = m->number;
}

static member_t *find_name(const char *name, size_t len) {
    size_t slot = hash_name(name, len) & by_name_mask;
    for (int found; (found = by_name[slot]) >= 0; slot = (slot + 1) & by_name_mask) {
        member_t *m = &members[found];
        if (m->name_len == len && memcmp(m->name, name, len) == 0) return m;
    }
    return NULL;
}

/* The offset of line SEQ of member NUMBER in the letters pattern. */
static size_t line_offset(int number, uint64_t seq) {
    return (size_t)(((uint64_t)number * 7919u + seq * 40503u) % PATBASE);
}

static void member_fail(member_t *m, const char *what, int err) {
    if (!m->alive) return;
    if (!stopping) {
        errors++;
        fprintf(stderr, "chat_load: member %d: %s%s%s\n", m->number, what, err ? ": " : "",
                err ? strerror(err) : "");
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, m->fd, NULL);
    close(m->fd);
    m->alive = 0;
    alive_members--;
}

static void set_out(member_t *m, int want) {
    if (m->want_out == want) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = m};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, m->fd, &ev) < 0) { member_fail(m, "epoll_ctl", errno); return; }
    m->want_out = want;
}

static void flush(member_t *m) {
    while (m->alive && m->out_len) {
        ssize_t w = send(m->fd, m->out, m->out_len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) { set_out(m, 1); return; }
            member_fail(m, "send", errno);
            return;
        }
        memmove(m->out, m->out + w, m->out_len - (size_t)w);
        m->out_len -= (size_t)w;
    }
    if (m->alive) set_out(m, 0);
}

/* Queue lines until --pipeline are in flight; each is "SEQ letters...\n", --size bytes. */
static void send_lines(member_t *m, uint64_t t) {
    while (m->in_flight < opt_pipeline) {
        uint64_t seq = m->next_seq++;
        char *p = m->out + m->out_len;
        int head = sprintf(p, "%llu ", (unsigned long long)seq);
        size_t body = opt_size - 1 - (size_t)head;
        memcpy(p + head, letters + line_offset(m->number, seq), body);
        p[head + body] = '\n';
        m->out_len += opt_size;
        line_t *slot = &m->ring[seq % (uint64_t)opt_pipeline];
        slot->sent_ns = t;
        slot->waiting = opt_conns - 1;
        m->in_flight++;
    }
    flush(m);
}

static void mismatch(member_t *receiver, const char *line, size_t len, const char *why) {
    mismatches++;
    if (mismatches <= 5)
        fprintf(stderr, "chat_load: MISMATCH at member %d (%s): %.*s\n", receiver->number, why,
                (int)(len > 200 ? 200 : len), line);
    stopping = 1;  /* as chatload.py: the run ends at the first mismatch */
}

static void setup_line(member_t *m, const char *line, size_t len) {
    setup_notices++;
    size_t w = sizeof WELCOME - 1;
    if (len > w && memcmp(line, WELCOME, w) == 0 && !m->name_len) {
        const char *end = memchr(line + w, ';', len - w);
        size_t name_len = (size_t)((end ? end : line + len) - (line + w));
        if (name_len == 0 || name_len >= MAX_NAME) {
            fprintf(stderr, "chat_load: unexpected welcome: %.*s\n", (int)len, line);
            exit(2);
        }
        memcpy(m->name, line + w, name_len);
        m->name_len = name_len;
        add_name(m);
    }
}

static void delivered(member_t *receiver, const char *line, size_t len, uint64_t t) {
    if (len >= 2 && line[0] == '*' && line[1] == ' ') {
        if (nports > 1 && len >= 7 && memcmp(line + len - 7, " joined", 7) == 0) {
            late_joins++;  /* several servers: a join may come after the count, not an error */
            return;
        }
        errors++;  /* a member left or was dropped during the run */
        if (errors <= 5) fprintf(stderr, "chat_load: notice: %.*s\n", (int)len, line);
        return;
    }
    const char *colon = memmem(line, len, ": ", 2);
    member_t *sender = colon ? find_name(line, (size_t)(colon - line)) : NULL;
    if (!sender || sender == receiver) { mismatch(receiver, line, len, "no such sender"); return; }
    uint64_t *expect = &expect_seq[(size_t)receiver->number * (size_t)opt_conns + sender->number];
    uint64_t seq = *expect;
    if (seq < sender->first_in_flight || seq - sender->first_in_flight >= (uint64_t)sender->in_flight) {
        mismatch(receiver, line, len, "a line that is not in flight");
        return;
    }
    /* what must follow "NAME: ": the line the sender sent, byte for byte */
    const char *text = colon + 2;
    size_t text_len = len - (size_t)(text - line);
    char head[24];
    int head_len = sprintf(head, "%llu ", (unsigned long long)seq);
    if (text_len != opt_size - 1 || memcmp(text, head, (size_t)head_len) != 0 ||
        memcmp(text + head_len, letters + line_offset(sender->number, seq),
               text_len - (size_t)head_len) != 0) {
        mismatch(receiver, line, len, "not the next line of its sender");
        return;
    }
    *expect = seq + 1;
    line_t *entry = &sender->ring[seq % (uint64_t)opt_pipeline];
    entry->waiting--;
    int inside = t >= t_open && t < t_close;
    if (inside) {
        deliveries++;
        lat_add(&delivery_lat, t - entry->sent_ns);
        if (sender->server != receiver->server) lat_add(&remote_lat, t - entry->sent_ns);
    }
    int completed = 0;
    while (sender->in_flight) {
        line_t *first = &sender->ring[sender->first_in_flight % (uint64_t)opt_pipeline];
        if (first->waiting) break;
        if (inside) { lines_done++; lat_add(&line_lat, t - first->sent_ns); }
        sender->first_in_flight++;
        sender->in_flight--;
        completed = 1;
    }
    if (completed && t < t_close && !stopping) send_lines(sender, t);
}

/* Read what the server sent to M and hand each complete line on; keep a partial one. */
static void on_readable(member_t *m) {
    memcpy(rbuf, m->partial, m->partial_len);
    ssize_t r = read(m->fd, rbuf + m->partial_len, sizeof rbuf - m->partial_len);
    if (r == 0) { member_fail(m, "the server closed the connection", 0); return; }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) member_fail(m, "read", errno);
        return;
    }
    uint64_t t = now_ns();
    size_t end = m->partial_len + (size_t)r, start = 0;
    char *nl;
    while ((nl = memchr(rbuf + start, '\n', end - start)) != NULL) {
        size_t len = (size_t)(nl - (rbuf + start));
        if (len && rbuf[start + len - 1] == '\r') len--;
        if (setup_done) delivered(m, rbuf + start, len, t);
        else setup_line(m, rbuf + start, len);
        start = (size_t)(nl - rbuf) + 1;
        if (stopping) return;
    }
    if (end - start >= MAX_LINE) { mismatch(m, rbuf + start, end - start, "line too long"); return; }
    memcpy(m->partial, rbuf + start, end - start);
    m->partial_len = end - start;
}

static void poll_once(int timeout_ms, struct epoll_event *evs, int maxev) {
    int n = epoll_wait(epfd, evs, maxev, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return;
        perror("epoll_wait");
        exit(2);
    }
    for (int i = 0; i < n && !stopping; i++) {
        member_t *m = evs[i].data.ptr;
        if (!m->alive) continue;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(m);
        if (m->alive && (evs[i].events & EPOLLOUT)) flush(m);
    }
}

static int everyone_welcomed(void) {
    for (int i = 0; i < opt_conns; i++)
        if (!members[i].name_len) return 0;
    return 1;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s --port P [--other-ports P2,...] [--host H] [--conns N]\n"
                    "          [--size BYTES] [--pipeline K] [--seconds T] [--warmup W]\n", argv0);
    exit(2);
}

int main(int argc, char **argv) {
    static struct option lo[] = {
        {"host", required_argument, 0, 'h'},     {"port", required_argument, 0, 'p'},
        {"other-ports", required_argument, 0, 'o'},
        {"conns", required_argument, 0, 'c'},    {"size", required_argument, 0, 's'},
        {"pipeline", required_argument, 0, 'k'}, {"seconds", required_argument, 0, 't'},
        {"warmup", required_argument, 0, 'w'},   {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h:p:o:c:s:k:t:w:", lo, NULL)) != -1) {
        switch (o) {
        case 'h': opt_host = optarg; break;
        case 'p': opt_port = optarg; break;
        case 'o': opt_other_ports = optarg; break;
        case 'c': opt_conns = (int)parse_long(optarg, "conns", 2); break;
        case 's': opt_size = (size_t)parse_long(optarg, "size", 24); break;
        case 'k': opt_pipeline = (int)parse_long(optarg, "pipeline", 1); break;
        case 't': opt_seconds = parse_double(optarg, "seconds"); break;
        case 'w': opt_warmup = parse_double(optarg, "warmup"); break;
        default: usage(argv[0]);
        }
    }
    if (!opt_port || optind != argc || opt_seconds <= 0) usage(argv[0]);
    if (opt_size > 4097) { fprintf(stderr, "chat_load: --size at most 4097\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);

    uint64_t x = 0x9E3779B97F4A7C15ull;  /* xorshift: lowercase letters, as chatload.py */
    for (size_t i = 0; i < sizeof letters; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        letters[i] = (unsigned char)('a' + (x >> 24) % 26);
    }

    char *ports[MAX_PORTS] = {opt_port};
    nports = 1;
    char *save = NULL;
    for (char *p = opt_other_ports ? strtok_r(opt_other_ports, ",", &save) : NULL; p;
         p = strtok_r(NULL, ",", &save)) {
        if (nports == MAX_PORTS) usage(argv[0]);
        ports[nports++] = p;
    }
    if (nports > opt_conns) usage(argv[0]);

    members = calloc((size_t)opt_conns, sizeof *members);
    expect_seq = calloc((size_t)opt_conns * (size_t)opt_conns, sizeof *expect_seq);
    size_t table = 4;
    while (table < 4 * (size_t)opt_conns) table *= 2;
    by_name = malloc(table * sizeof *by_name);
    if (!members || !expect_seq || !by_name) { perror("calloc"); return 2; }
    memset(by_name, 0xff, table * sizeof *by_name);
    by_name_mask = table - 1;
    epfd = epoll_create1(0);
    if (epfd < 0) { perror("epoll_create1"); return 2; }

    for (int i = 0; i < opt_conns; i++) {
        member_t *m = &members[i];
        m->number = i;
        m->server = (int)((long)i * nports / opt_conns);
        m->ring = calloc((size_t)opt_pipeline, sizeof *m->ring);
        m->out = malloc((size_t)opt_pipeline * opt_size);
        if (!m->ring || !m->out) { perror("malloc"); return 2; }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
        int gai = getaddrinfo(opt_host, ports[m->server], &hints, &ai);
        if (gai != 0) { fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(gai)); return 2; }
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            fprintf(stderr, "chat_load: connect #%d to %s:%s: %s\n", i, opt_host,
                    ports[m->server], strerror(errno));
            return 2;
        }
        freeaddrinfo(ai);
        m->fd = fd;
        m->alive = 1;
        alive_members++;
        if (watch_socket(epfd, fd, m) < 0) { perror("epoll_ctl"); return 2; }
    }

    int maxev = opt_conns < 1024 ? opt_conns : 1024;
    struct epoll_event *evs = calloc((size_t)maxev, sizeof *evs);
    /* setup: every welcome, and N + N(N-1)/2 notices (welcomes and joins) */
    uint64_t expected = (uint64_t)opt_conns + (uint64_t)opt_conns * (opt_conns - 1) / 2;
    uint64_t deadline = now_ns() + SETUP_TIMEOUT_S * 1000000000ull;
    while (setup_notices < expected || !everyone_welcomed()) {
        if (now_ns() > deadline || alive_members < opt_conns) {
            fprintf(stderr, "chat_load: room setup: %llu of %llu notices arrived\n",
                    (unsigned long long)setup_notices, (unsigned long long)expected);
            return 2;
        }
        poll_once(100, evs, maxev);
    }
    setup_done = 1;

    uint64_t t = now_ns();
    t_open = t + (uint64_t)(opt_warmup * 1e9);
    t_close = t_open + (uint64_t)(opt_seconds * 1e9);
    double cpu_open = 0;
    int measuring = 0;
    for (int i = 0; i < opt_conns; i++) send_lines(&members[i], t);
    while (t < t_close && !stopping && alive_members == opt_conns) {
        if (!measuring && t >= t_open) { measuring = 1; cpu_open = cpu_seconds(); }
        uint64_t next = measuring ? t_close : t_open;
        int tmo = (int)((next - t) / 1000000ull) + 1;
        poll_once(tmo > 100 ? 100 : tmo, evs, maxev);
        t = now_ns();
    }
    double cpu_used = measuring ? cpu_seconds() - cpu_open : 0;
    stopping = 1;

    qsort(delivery_lat.v, delivery_lat.n, sizeof(uint64_t), cmp_u64);
    qsort(line_lat.v, line_lat.n, sizeof(uint64_t), cmp_u64);
    qsort(remote_lat.v, remote_lat.n, sizeof(uint64_t), cmp_u64);
    double rate = (double)deliveries / opt_seconds;
    int lost = opt_conns - alive_members;
    printf("{\"rps\": %.1f, \"mbps\": %.3f", rate, rate * (double)opt_size / 1e6);
    print_pct("p50_ms", &line_lat, 0.50);
    print_pct("p99_ms", &line_lat, 0.99);
    print_pct("delivery_p50_ms", &delivery_lat, 0.50);
    print_pct("delivery_p99_ms", &delivery_lat, 0.99);
    print_pct("remote_p50_ms", &remote_lat, 0.50);
    print_pct("remote_p99_ms", &remote_lat, 0.99);
    printf(", \"conns\": %d, \"size\": %zu, \"pipeline\": %d, \"seconds\": %.3f, \"rtts\": %llu",
           opt_conns, opt_size, opt_pipeline, opt_seconds, (unsigned long long)deliveries);
    printf(", \"mode\": \"chat\", \"servers\": %d, \"errors\": %llu, \"mismatches\": %llu",
           nports, (unsigned long long)errors, (unsigned long long)mismatches);
    printf(", \"lines_sent_per_s\": %.1f, \"late_join_notices\": %llu, \"conns_lost\": %d",
           (double)lines_done / opt_seconds, (unsigned long long)late_joins, lost);
    printf(", \"client_cpu_pct\": %.1f}\n", measuring ? 100.0 * cpu_used / opt_seconds : 0.0);
    fflush(stdout);
    return (errors || mismatches || lost) ? 1 : 0;
}
