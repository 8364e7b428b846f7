/*
 * Load generator for bench/relay-throughput.ts: one sender thread and one receiver thread, each with its own
 * UDP socket on 127.0.0.1, moving datagrams with sendmmsg(2)/recvmmsg(2) so the generator is not what limits
 * the measurement.
 *
 *   udpgen --size N [--rate PPS (0 = as fast as possible)] [--duration S] [--warmup S] [--ports SEND,RECV] < PLAN
 *
 * --ports binds the two sockets to fixed ports (default: any), so that consecutive runs keep the addresses a
 * forwarder has learned and nothing is ever sent to a socket that no longer exists.
 *
 * Everything is on 127.0.0.1 unless told otherwise. For a forwarder in another network namespace
 * (bench/relay-offload.ts) the two sockets can live in two namespaces, still in this one process so that
 * latency is measured against one clock (a socket stays in the namespace it was created in):
 *   --ns-a NAME / --ns-b NAME      create the sender (a) / receiver (b) socket in /var/run/netns/NAME
 *   --addr-a IP / --addr-b IP      bind address of the sender / receiver socket
 *   --dest-a IP / --dest-b IP      where the sender's targets and hello-a go / where hello-b goes
 * "target self" then sends to the receiver's --addr-b (through whatever routes lie between the namespaces).
 *
 * PLAN (stdin), one item a line:
 *   template HEX      bytes every data datagram starts with (e.g. a WireGuard type-4 header)
 *   hello-b PORT HEX  before the run, the receiver socket sends HEX to 127.0.0.1:PORT (a forwarder learns it)
 *   hello-a PORT HEX  then the sender socket does the same
 *   target PORT       data destinations, used round robin (one per relay session); "target self" = the receiver
 *
 * Data datagram: template, then "LRBN" (magic), u64 sequence, u64 CLOCK_MONOTONIC send time in ns, zero padding
 * up to --size. Both threads share the clock, so the receiver measures one-way latency exactly.
 *
 * Only datagrams sent inside the measurement window (after --warmup, for --duration) are counted. Prints one
 * JSON line: offered and delivered datagrams/s and latency percentiles (1 us buckets).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define BATCH 64
#define MAXDGRAM 2048
#define MAXTARGETS 4096
#define MAXHELLOS 8192
#define HIST_US 1000000 /* latency histogram: 1 us buckets up to 1 s, then one overflow bucket */
#define MAGIC 0x4e42524cu /* "LRBN" little endian */

static int size = 200;
static double rate = 0, duration = 3, warmup = 0.5;
static unsigned char template_bytes[256];
static int template_len;
static int targets[MAXTARGETS], ntargets;
struct hello { int side; int port; int len; unsigned char bytes[512]; };
static struct hello hellos[MAXHELLOS];
static int nhellos;

static int send_fd, recv_fd, recv_port;
static uint64_t t_start, win_start, win_end, recv_until;
static uint64_t sent_total, sent_window, send_short, sender_lagging;
static uint64_t recv_total, recv_window, recv_other, recv_bytes_window;
static uint32_t *hist;

static int send_port_opt, recv_port_opt;
static const char *ns_a, *ns_b;
static struct in_addr addr_a, addr_b, dest_a, dest_b;

static void enter_ns(const char *name) {
  char path[300];
  snprintf(path, sizeof path, "/var/run/netns/%s", name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) { perror(path); exit(1); }
  close(fd);
}

static int bind_udp(struct in_addr addr, int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("socket"); exit(1); }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = addr };
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
  return fd;
}

static struct sockaddr_in sockaddr(struct in_addr addr, int port) {
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = addr };
  return a;
}

static void parse_addr(const char *opt, const char *s, struct in_addr *out) {
  if (inet_pton(AF_INET, s, out) != 1) { fprintf(stderr, "udpgen: %s wants an IPv4 address, got %s\n", opt, s); exit(2); }
}

static int unhex(const char *s, unsigned char *out, int max) {
  int n = 0;
  while (s[0] && s[1] && n < max) {
    unsigned v;
    if (sscanf(s, "%2x", &v) != 1) break;
    out[n++] = (unsigned char)v;
    s += 2;
  }
  return n;
}

static void read_plan(void) {
  char line[2048], word[32], arg[1100];
  int port;
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "%31s", word) != 1) continue;
    if (!strcmp(word, "template") && sscanf(line, "%*s %1099s", arg) == 1) {
      template_len = unhex(arg, template_bytes, sizeof template_bytes);
    } else if ((!strcmp(word, "hello-a") || !strcmp(word, "hello-b")) && nhellos < MAXHELLOS &&
               sscanf(line, "%*s %d %1099s", &port, arg) == 2) {
      struct hello *h = &hellos[nhellos++];
      h->side = word[6];
      h->port = port;
      h->len = unhex(arg, h->bytes, sizeof h->bytes);
    } else if (!strcmp(word, "target") && ntargets < MAXTARGETS) {
      if (sscanf(line, "%*s %d", &port) == 1) targets[ntargets++] = port;
      else targets[ntargets++] = -1; /* "target self" */
    }
  }
}

static void *sender(void *unused) {
  (void)unused;
  static struct mmsghdr msgs[BATCH];
  static struct iovec iovs[BATCH];
  static unsigned char bufs[BATCH][MAXDGRAM];
  static struct sockaddr_in *dest;
  dest = calloc(ntargets, sizeof *dest);
  for (int i = 0; i < ntargets; i++) dest[i] = targets[i] < 0 ? sockaddr(addr_b, recv_port) : sockaddr(dest_a, targets[i]);
  int batch = BATCH;
  uint64_t interval = 0;
  if (rate > 0) {
    /* Small batches at a steady pace: at half load the latency must not be made of our own bursts. */
    batch = (int)(rate / 20000);
    if (batch < 1) batch = 1;
    if (batch > BATCH) batch = BATCH;
    interval = (uint64_t)(batch * 1e9 / rate);
  }
  for (int i = 0; i < BATCH; i++) {
    memset(bufs[i], 0, MAXDGRAM);
    memcpy(bufs[i], template_bytes, template_len);
    uint32_t m = MAGIC;
    memcpy(bufs[i] + template_len, &m, 4);
    iovs[i].iov_base = bufs[i];
    iovs[i].iov_len = size;
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
  }
  uint64_t seq = 0, next = t_start;
  int t = 0;
  for (;;) {
    uint64_t now = now_ns();
    if (now >= win_end) break;
    for (int i = 0; i < batch; i++) {
      memcpy(bufs[i] + template_len + 4, &seq, 8);
      memcpy(bufs[i] + template_len + 12, &now, 8);
      msgs[i].msg_hdr.msg_name = &dest[t];
      if (++t == ntargets) t = 0;
      seq++;
    }
    int n = sendmmsg(send_fd, msgs, batch, 0);
    if (n < 0) n = 0;
    if (n < batch) send_short++;
    sent_total += n;
    if (now >= win_start) sent_window += n;
    if (interval) {
      next += interval;
      now = now_ns();
      if (next > now) sleep_until(next);
      else if (now - next > 1000000) { next = now; sender_lagging++; } /* more than 1 ms behind: do not burst */
    }
  }
  return NULL;
}

static void *receiver(void *unused) {
  (void)unused;
  static struct mmsghdr msgs[BATCH];
  static struct iovec iovs[BATCH];
  static unsigned char bufs[BATCH][MAXDGRAM];
  for (int i = 0; i < BATCH; i++) {
    iovs[i].iov_base = bufs[i];
    iovs[i].iov_len = MAXDGRAM;
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  while (now_ns() < recv_until) {
    int n = recvmmsg(recv_fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue; /* SO_RCVTIMEO: look at the clock again */
    uint64_t now = now_ns();
    for (int i = 0; i < n; i++) {
      unsigned char *b = bufs[i];
      uint32_t m;
      uint64_t ts;
      if (msgs[i].msg_len < (unsigned)template_len + 20) { recv_other++; continue; }
      memcpy(&m, b + template_len, 4);
      if (m != MAGIC) { recv_other++; continue; }
      recv_total++;
      memcpy(&ts, b + template_len + 12, 8);
      if (ts < win_start || ts >= win_end) continue;
      recv_window++;
      recv_bytes_window += msgs[i].msg_len;
      uint64_t us = (now - ts) / 1000;
      hist[us < HIST_US ? us : HIST_US]++;
    }
  }
  return NULL;
}

static double percentile(double p) {
  if (!recv_window) return -1;
  uint64_t want = (uint64_t)(p * recv_window), acc = 0;
  if (want >= recv_window) want = recv_window - 1;
  for (int i = 0; i <= HIST_US; i++) {
    acc += hist[i];
    if (acc > want) return i;
  }
  return HIST_US;
}

int main(int argc, char **argv) {
  addr_a.s_addr = addr_b.s_addr = dest_a.s_addr = dest_b.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--duration")) duration = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--ports")) sscanf(argv[i + 1], "%d,%d", &send_port_opt, &recv_port_opt);
    else if (!strcmp(argv[i], "--ns-a")) ns_a = argv[i + 1];
    else if (!strcmp(argv[i], "--ns-b")) ns_b = argv[i + 1];
    else if (!strcmp(argv[i], "--addr-a")) parse_addr(argv[i], argv[i + 1], &addr_a);
    else if (!strcmp(argv[i], "--addr-b")) parse_addr(argv[i], argv[i + 1], &addr_b);
    else if (!strcmp(argv[i], "--dest-a")) parse_addr(argv[i], argv[i + 1], &dest_a);
    else if (!strcmp(argv[i], "--dest-b")) parse_addr(argv[i], argv[i + 1], &dest_b);
    else { fprintf(stderr, "udpgen: unknown option %s\n", argv[i]); return 2; }
  }
  read_plan();
  if (size < template_len + 20 || size > MAXDGRAM) { fprintf(stderr, "udpgen: --size too small or too large\n"); return 2; }
  if (!ntargets) { fprintf(stderr, "udpgen: no target in the plan\n"); return 2; }
  if (duration <= 0 || duration > 60 || warmup < 0 || warmup > 10) { fprintf(stderr, "udpgen: duration must be in (0, 60] s\n"); return 2; }
  hist = calloc(HIST_US + 1, sizeof *hist);
  prctl(PR_SET_TIMERSLACK, 1);

  if (ns_a) enter_ns(ns_a);
  send_fd = bind_udp(addr_a, send_port_opt);
  if (ns_b) enter_ns(ns_b);
  recv_fd = bind_udp(addr_b, recv_port_opt);
  int big = 4 << 20;
  if (setsockopt(recv_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0) setsockopt(recv_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  if (setsockopt(send_fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0) setsockopt(send_fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  struct timeval tv = { .tv_usec = 50000 };
  setsockopt(recv_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  getsockname(recv_fd, (struct sockaddr *)&a, &alen);
  recv_port = ntohs(a.sin_port);

  /* Hellos: the receiver's side first, so a forwarder already knows where to send when the sender's arrives. */
  for (int pass = 0; pass < 2; pass++) {
    int want = pass == 0 ? 'b' : 'a';
    for (int i = 0, n = 0; i < nhellos; i++) {
      if (hellos[i].side != want) continue;
      struct sockaddr_in d = sockaddr(want == 'a' ? dest_a : dest_b, hellos[i].port);
      sendto(want == 'a' ? send_fd : recv_fd, hellos[i].bytes, hellos[i].len, 0, (struct sockaddr *)&d, sizeof d);
      if (++n % 32 == 0) usleep(1000); /* do not overflow the forwarder's queue with hellos */
    }
    usleep(100000);
  }

  t_start = now_ns();
  win_start = t_start + (uint64_t)(warmup * 1e9);
  win_end = win_start + (uint64_t)(duration * 1e9);
  recv_until = win_end + 300000000ull; /* stragglers still count if they arrive within 300 ms */
  pthread_t ts, tr;
  pthread_create(&tr, NULL, receiver, NULL);
  pthread_create(&ts, NULL, sender, NULL);
  pthread_join(ts, NULL);
  pthread_join(tr, NULL);

  printf("{\"size\":%d,\"rate\":%.0f,\"duration_s\":%.3f,\"targets\":%d,\"sent_total\":%llu,\"sent_window\":%llu,"
         "\"received_total\":%llu,\"received_window\":%llu,\"received_other\":%llu,\"offered_pps\":%.0f,\"delivered_pps\":%.0f,"
         "\"delivered_bytes_per_s\":%.0f,\"loss\":%.6f,\"send_short\":%llu,\"sender_lagging\":%llu,"
         "\"lat_us\":{\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"p999\":%.0f,\"max\":%.0f}}\n",
         size, rate, duration, ntargets, (unsigned long long)sent_total, (unsigned long long)sent_window,
         (unsigned long long)recv_total, (unsigned long long)recv_window, (unsigned long long)recv_other, sent_window / duration,
         recv_window / duration, recv_bytes_window / duration, sent_window ? 1.0 - (double)recv_window / sent_window : 0,
         (unsigned long long)send_short, (unsigned long long)sender_lagging, percentile(0.5), percentile(0.9), percentile(0.99),
         percentile(0.999), percentile(1.0));
  return 0;
}
